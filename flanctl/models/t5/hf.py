"""Hugging Face T5 folders in and out of flanctl's packed T5 (T5 v1.1, Flan-T5, mT5, T5).

One weight map, `weight_map(backbone)`, pairs every transformers `T5ForConditionalGeneration`
tensor name with the flanctl variable that holds it and says whether it is transposed
(torch `Linear` weights are `[out, in]`, Keras `Dense` kernels `[in, out]`). Loading and
exporting both walk that one map, so a name cannot be right in one direction and wrong in the
other. The math is the same on both sides: no 1/sqrt(d_kv) attention scaling, RMS layer norm,
relative position bias (32 buckets, max distance 128) in the first layer of each stack, shared
input embedding, and an LM head that is either separate (T5 v1.1) or the embedding with the
decoder output scaled by d_model^-0.5 (the original T5).

The tokenizer is the folder's SentencePiece model (`spiece.model`): T5's ids (pad 0, eos 1,
unk 2) are the SentencePiece ids, the 100 sentinels sit above them, and flanctl frames encoder
inputs with EOS and starts the decoder from pad, as transformers does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from flanctl.errors import FlanctlError
from flanctl.models.hf_io import read_config, read_tensors, write_tensors

#: transformers' names of the gated feed-forward activations -> FlanT5Backbone's.
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                "gelu": "gelu", "gelu_python": "gelu", "relu": "relu", "silu": "silu"}
#: and back: FlanT5Backbone activation -> (feed_forward_proj of a gated model, of an ungated one).
_HF_PROJ = {"gelu_tanh": ("gated-gelu", "gelu_new"), "gelu": ("gated-gelu_python", "gelu_python"),
            "relu": ("gated-relu", "relu"), "silu": ("gated-silu", "silu")}
SUPPORTED_MODEL_TYPES = ("t5", "mt5")


def backbone_kwargs_from_hf(config: dict, dropout: float = 0.0) -> dict:
    """`FlanT5Backbone` keyword arguments of a transformers T5 config (raises when the config
    has a feature the packed T5 does not implement)."""
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise FlanctlError(f"Hugging Face model_type {model_type!r} is not a T5: family t5 loads {', '.join(SUPPORTED_MODEL_TYPES)}")
    buckets = config.get("relative_attention_num_buckets", 32)
    distance = config.get("relative_attention_max_distance", 128)
    if (buckets, distance) != (32, 128):
        raise FlanctlError(f"T5 relative attention with {buckets} buckets / max distance {distance} is not supported (32 / 128 only)")
    proj = str(config.get("feed_forward_proj", "relu"))
    gated = proj.startswith("gated-")
    act = "gelu_new" if proj == "gated-gelu" else proj.split("-")[-1]
    if act not in _ACTIVATIONS:
        raise FlanctlError(f"T5 feed_forward_proj {proj!r}: activation {act!r} is not supported")
    return {
        "vocabulary_size": int(config["vocab_size"]),
        "num_layers": int(config["num_layers"]),
        "num_decoder_layers": int(config.get("num_decoder_layers") or config["num_layers"]),
        "num_heads": int(config["num_heads"]),
        "hidden_dim": int(config["d_model"]),
        "intermediate_dim": int(config["d_ff"]),
        "key_value_dim": int(config["d_kv"]),
        "dropout": float(dropout),
        "activation": _ACTIVATIONS[act],
        "use_gated_activation": gated,
        "layer_norm_epsilon": float(config.get("layer_norm_epsilon", 1e-6)),
    }


def weight_map(backbone) -> list[tuple[str, object, bool]]:
    """(transformers name, flanctl variable, transposed) for every weight of `backbone`
    (a `FlanT5Backbone`), the LM head included when it is untied."""
    pairs: list[tuple[str, object, bool]] = [("shared.weight", backbone.token_embedding.embeddings, False)]
    if not backbone.tie_embedding_weights:
        pairs.append(("lm_head.weight", backbone.token_embedding.reverse_embeddings, True))

    def attention(prefix: str, attn, first: bool):
        for hf, ours in (("q", attn.query_projector), ("k", attn.key_projector), ("v", attn.value_projector), ("o", attn.output_projector)):
            pairs.append((f"{prefix}.{hf}.weight", ours.kernel, True))
        if first:
            pairs.append((f"{prefix}.relative_attention_bias.weight", attn.relative_attention_bias, False))

    def ffn(prefix: str, layer):
        if backbone.use_gated_activation:
            pairs.append((f"{prefix}.DenseReluDense.wi_0.weight", layer.input_projector.kernel, True))
            pairs.append((f"{prefix}.DenseReluDense.wi_1.weight", layer.gate_projector.kernel, True))
        else:
            pairs.append((f"{prefix}.DenseReluDense.wi.weight", layer.input_projector.kernel, True))
        pairs.append((f"{prefix}.DenseReluDense.wo.weight", layer.output_projector.kernel, True))
        pairs.append((f"{prefix}.layer_norm.weight", layer.layer_norm.weight, False))

    for i, layer in enumerate(backbone.encoder_transformer_layers):
        p = f"encoder.block.{i}.layer"
        attention(f"{p}.0.SelfAttention", layer.self_attention, i == 0)
        pairs.append((f"{p}.0.layer_norm.weight", layer.self_attention_layer_norm.weight, False))
        ffn(f"{p}.1", layer)
    pairs.append(("encoder.final_layer_norm.weight", backbone.encoder_layer_norm.weight, False))
    for i, layer in enumerate(backbone.decoder_transformer_layers):
        p = f"decoder.block.{i}.layer"
        attention(f"{p}.0.SelfAttention", layer.self_attention, i == 0)
        pairs.append((f"{p}.0.layer_norm.weight", layer.self_attention_layer_norm.weight, False))
        attention(f"{p}.1.EncDecAttention", layer.cross_attention, False)
        pairs.append((f"{p}.1.layer_norm.weight", layer.cross_attention_layer_norm.weight, False))
        ffn(f"{p}.2", layer)
    pairs.append(("decoder.final_layer_norm.weight", backbone.decoder_layer_norm.weight, False))
    return pairs


def _head_is_tied(config: dict, tensors: dict) -> tuple[bool, bool]:
    """(head tied to the embedding, decoder output scaled by d^-0.5) of a checkpoint.

    transformers 4 writes `tie_word_embeddings: false` for T5 v1.1; transformers 5 always says
    true and records `scale_decoder_outputs`, and saves `lm_head.weight` only when it differs."""
    has_head = "lm_head.weight" in tensors
    if "scale_decoder_outputs" in config:
        scaled = bool(config["scale_decoder_outputs"])
    else:
        scaled = config.get("tie_word_embeddings", True) is not False
    return not has_head, scaled


def load_hf_t5(folder, dropout: float = 0.0, dtype=None):
    """`(T5PackedSeq2SeqLM, SentencePieceTokenizer or None)` from a transformers T5 folder."""
    from flanctl.models.t5.backbone import FlanT5Backbone
    from flanctl.models.t5.seq_2_seq_lm import T5PackedSeq2SeqLM

    folder = Path(folder)
    config = read_config(folder)
    kwargs = backbone_kwargs_from_hf(config, dropout)
    tensors = read_tensors(folder)
    tied, scaled = _head_is_tied(config, tensors)
    if not tied and scaled:
        raise FlanctlError(f"{folder}: a separate LM head with scaled decoder outputs is not a T5 layout flanctl implements")
    if tied and not scaled:
        # A tied head without the d^-0.5 scale (transformers 5's own T5 default) is the same
        # math as an untied head holding a copy of the embedding.
        tensors = {**tensors, "lm_head.weight": tensors["shared.weight"]}
        tied = False
    backbone = FlanT5Backbone(tie_embedding_weights=tied, dtype=dtype, **kwargs)
    model = T5PackedSeq2SeqLM(backbone=backbone, compile=False)
    missing = []
    for name, variable, transposed in weight_map(backbone):
        if name not in tensors:
            missing.append(name)
            continue
        value = np.asarray(tensors[name], dtype=np.float32)
        value = value.T if transposed else value
        if tuple(value.shape) != tuple(variable.shape):
            raise FlanctlError(f"{folder}: {name} has shape {value.shape}, flanctl's T5 expects {tuple(variable.shape)}")
        variable.assign(value)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FlanctlError(f"{folder}: T5 weights missing: {', '.join(missing[:3])}{more}")
    return model, hf_tokenizer(folder)


def load_checked(folder, dropout: float = 0.0, dtype=None):
    """`load_hf_t5`, then the tokenizer probe: spiece.model must give the ids the folder's own
    transformers tokenizer gives (flanctl.models.hf_probe)."""
    from flanctl.models.hf_probe import check_tokenizer

    model, tokenizer = load_hf_t5(folder, dropout=dropout, dtype=dtype)
    check_tokenizer(folder, tokenizer, fix="its spiece.model is not the tokenizer its tokenizer.json describes")
    return model, tokenizer


def hf_tokenizer(folder: Path):
    """flanctl's SentencePiece tokenizer over the folder's `spiece.model`, or None."""
    spm = Path(folder) / "spiece.model"
    if not spm.is_file():
        return None
    from flanctl.data.tokenizers import SentencePieceTokenizer

    return SentencePieceTokenizer(spm)


def hf_t5_config(backbone) -> dict:
    """A transformers T5Config dict with the math of `backbone`."""
    gated_proj, plain = _HF_PROJ.get(backbone.activation, (None, None))
    if gated_proj is None:
        raise FlanctlError(f"T5 activation {backbone.activation!r} has no transformers equivalent")
    tied = bool(backbone.tie_embedding_weights)
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": int(backbone.vocabulary_size),
        "d_model": int(backbone.hidden_dim),
        "d_kv": int(backbone.key_value_dim or backbone.hidden_dim // backbone.num_heads),
        "d_ff": int(backbone.intermediate_dim),
        "num_layers": int(backbone.num_layers),
        "num_decoder_layers": int(backbone.num_decoder_layers),
        "num_heads": int(backbone.num_heads),
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "dropout_rate": float(backbone.dropout),
        "layer_norm_epsilon": float(backbone.layer_norm_epsilon),
        "feed_forward_proj": gated_proj if backbone.use_gated_activation else plain,
        "is_encoder_decoder": True,
        "tie_word_embeddings": tied,
        "scale_decoder_outputs": tied,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        "torch_dtype": "float32",
    }


def export_hf_t5(model, directory, tokenizer=None) -> Path:
    """Write `model` (a T5PackedSeq2SeqLM) as a transformers T5ForConditionalGeneration folder:
    config.json, model.safetensors (float32), generation_config.json, and the tokenizer
    (spiece.model plus the files `AutoTokenizer` writes) when `tokenizer` is SentencePiece."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone = model.backbone
    config = hf_t5_config(backbone)
    tensors = {}
    for name, variable, transposed in weight_map(backbone):
        value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, dtype=np.float32)
        tensors[name] = np.ascontiguousarray(value.T if transposed else value)
    write_tensors(tensors, directory)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (directory / "generation_config.json").write_text(json.dumps(
        {"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0}, indent=2) + "\n")
    write_hf_t5_tokenizer(tokenizer, directory, int(backbone.vocabulary_size))
    return directory


def write_hf_t5_tokenizer(tokenizer, directory: Path, vocab_size: int) -> None:
    """spiece.model + tokenizer_config.json (and transformers' tokenizer.json when transformers
    is installed). A byte tokenizer has no HF equivalent: refused."""
    spm = getattr(tokenizer, "path", None)
    if spm is None or not str(spm).endswith(".model"):
        raise FlanctlError("HF export of a T5 needs a SentencePiece tokenizer (model.tokenizer.kind: sentencepiece); "
                           "the byte tokenizer has no transformers equivalent")
    shutil.copyfile(spm, directory / "spiece.model")
    pieces = int(getattr(tokenizer, "vocab_size", 0) or 0)
    extra = max(0, min(100, vocab_size - pieces)) if pieces else 0
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "T5Tokenizer", "extra_ids": extra, "eos_token": "</s>", "unk_token": "<unk>",
         "pad_token": "<pad>", "model_max_length": 512}, indent=2) + "\n")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return  # spiece.model + tokenizer_config.json load as they are
    AutoTokenizer.from_pretrained(directory).save_pretrained(directory)
