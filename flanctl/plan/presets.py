"""What a keras-hub preset or a Hugging Face folder holds, read once from its JSON (no Keras import).

A keras-hub preset directory holds `config.json` (the backbone's constructor arguments),
usually `task.json` (the task class: `...CausalLM` or `...Seq2SeqLM`) and `metadata.json`
with `parameter_count`. The plan reads them once and records the result in `plan.model`
(architecture, parameter count, encoder-decoder or not); no other room reads them again.
Hub handles (e.g. `gemma_2b_en`) are not resolved at plan time: the plan says so and guesses
the kind from the handle's name.

A Hugging Face folder (`save_pretrained`: a `config.json` with `model_type`, and
`model.safetensors` or shards listed in `model.safetensors.index.json`) is read the same way:
the architecture from `config.json`, the kind from `is_encoder_decoder` / `architectures`, and
the exact parameter count from the safetensors headers (8-byte length + JSON; no tensor is read).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# keras-hub backbone config names -> our architecture keys, first match wins.
_KEYS = {
    "num_layers": ("num_layers",),
    "hidden_dim": ("hidden_dim",),
    "num_heads": ("num_query_heads", "num_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads", "num_query_heads", "num_heads"),
    "head_dim": ("head_dim", "key_value_dim"),
    "ffn_dim": ("intermediate_dim",),
    "vocab_size": ("vocabulary_size",),
    "max_sequence_length": ("max_sequence_length",),
}

# Backbones of keras-hub's (and flanctl's) encoder-decoder families, for presets saved
# without a task.json.
ENCODER_DECODER_BACKBONES = ("T5Backbone", "FlanT5Backbone", "BartBackbone", "T5GemmaBackbone", "T5Gemma2Backbone")
_NAME_HINTS = ("t5", "bart")


@dataclass
class PresetInfo:
    """What the plan learned from a preset: None where the folder does not say."""

    folder: Path | None
    architecture: dict[str, int] | None = None
    params: int | None = None
    encoder_decoder: bool = False
    notes: list[str] = field(default_factory=list)
    #: The Hugging Face `model_type` of an HF folder (None for a keras-hub preset).
    hf_model_type: str | None = None
    #: Why the folder cannot be loaded (an HF folder without weights, an unreadable header), or None.
    problem: str | None = None


def _read_json(file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def preset_folder(handle: str, base_dir: str | Path | None = None) -> Path | None:
    """The local folder of a preset handle (relative to `base_dir`), or None for a hub handle."""
    path = Path(handle)
    if not path.is_absolute():
        path = Path(base_dir or ".") / path
    return path.resolve() if path.is_dir() else None


def read_preset(handle: str | None, base_dir: str | Path) -> PresetInfo:
    """Read a preset folder (or note that a hub handle is known only when apply loads it)."""
    if not handle:
        return PresetInfo(folder=None)
    folder = preset_folder(handle, base_dir)
    if folder is None:
        return PresetInfo(
            folder=None,
            encoder_decoder=any(hint in handle.lower() for hint in _NAME_HINTS),
            notes=[f"model: preset {handle!r} is not a local folder; its size is known only when apply loads it"],
        )
    config = _read_json(folder / "config.json")
    if is_hf_config(config):
        return read_hf_folder(folder, config)
    info = PresetInfo(folder=folder)
    task = _read_json(folder / "task.json")
    if task and task.get("class_name"):
        # keras-hub names every sequence-to-sequence task class `...Seq2SeqLM`.
        info.encoder_decoder = str(task["class_name"]).endswith("Seq2SeqLM")
    else:
        info.encoder_decoder = (config or {}).get("class_name") in ENCODER_DECODER_BACKBONES
    if config is None:
        info.notes.append(f"model: {folder / 'config.json'} is missing or not a keras-hub config.json")
        return info
    inner = config.get("config", config)
    inner = inner if isinstance(inner, dict) else {}
    arch: dict[str, int] = {}
    for ours, theirs in _KEYS.items():
        for key in theirs:
            if isinstance(inner.get(key), int):
                arch[ours] = inner[key]
                break
    if "head_dim" not in arch and "hidden_dim" in arch and "num_heads" in arch:
        arch["head_dim"] = arch["hidden_dim"] // arch["num_heads"]
    arch.setdefault("max_sequence_length", 2048)
    meta = _read_json(folder / "metadata.json")
    params = (meta or {}).get("parameter_count")
    info.params = params if isinstance(params, int) else None
    if info.params is None:
        info.notes.append(f"model: {folder / 'metadata.json'} has no parameter_count; compute and memory are not estimated")
    info.architecture = arch if all(k in arch for k in _KEYS) else None
    return info


# --------------------------------------------------------------------------- Hugging Face folders

# transformers' config.json names -> our architecture keys, first match wins.
_HF_KEYS = {
    "num_layers": ("num_layers", "num_hidden_layers", "n_layer", "encoder_layers"),
    "hidden_dim": ("d_model", "hidden_size", "n_embd"),
    "num_heads": ("num_heads", "num_attention_heads", "n_head", "encoder_attention_heads"),
    "num_kv_heads": ("num_key_value_heads",),
    "head_dim": ("d_kv", "head_dim"),
    "ffn_dim": ("d_ff", "intermediate_size", "n_inner", "encoder_ffn_dim"),
    "vocab_size": ("vocab_size",),
    "max_sequence_length": ("max_position_embeddings", "n_positions", "n_ctx"),
}
SAFETENSORS_INDEX = "model.safetensors.index.json"
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def is_hf_config(config: dict[str, Any] | None) -> bool:
    """True for a transformers `config.json` (it names a `model_type`; keras-hub's names a
    `class_name` and a nested `config`)."""
    return bool(config) and isinstance(config.get("model_type"), str) and "class_name" not in config


def hf_config(folder: str | Path) -> dict[str, Any] | None:
    """The transformers config.json of `folder`, or None when it is not an HF folder."""
    config = _read_json(Path(folder) / "config.json")
    return config if is_hf_config(config) else None


def hf_is_encoder_decoder(config: dict[str, Any]) -> bool:
    """Encoder-decoder by the config's own flag, else by its architecture class names."""
    if isinstance(config.get("is_encoder_decoder"), bool):
        return config["is_encoder_decoder"]
    names = [str(a) for a in config.get("architectures") or []]
    return any(a.endswith("ForConditionalGeneration") or "Seq2Seq" in a for a in names)


def safetensors_files(folder: Path) -> list[Path]:
    """The folder's weight files: the shards an index lists, else `*.safetensors` (sorted)."""
    index = _read_json(folder / SAFETENSORS_INDEX)
    if index and isinstance(index.get("weight_map"), dict):
        return [folder / name for name in sorted(set(index["weight_map"].values()))]
    return sorted(folder.glob("*.safetensors"))


def safetensors_header(file: Path) -> dict[str, Any]:
    """The JSON header of one safetensors file (tensor name -> dtype, shape, data_offsets).
    Raises ValueError when the file is not a readable safetensors file."""
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError(f"{file.name}: too short for a safetensors file")
        size = int.from_bytes(head, "little")
        if size <= 0 or size > 100_000_000:
            raise ValueError(f"{file.name}: not a safetensors file (header length {size})")
        raw = fh.read(size)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file.name}: unreadable safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{file.name}: unreadable safetensors header")
    header.pop("__metadata__", None)
    return header


def hf_tensor_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in the folder's safetensors files (names as transformers saves them).
    Raises ValueError naming what is wrong (no weights, a missing shard, a bad header)."""
    files = safetensors_files(folder)
    if not files:
        extra = " (only PyTorch .bin weights: save them with safe_serialization=True)" if any(folder.glob("*.bin")) else ""
        raise ValueError(f"no safetensors weights{extra}")
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        if not file.is_file():
            raise ValueError(f"weight shard {file.name} is missing")
        for name, meta in safetensors_header(file).items():
            shapes[name] = tuple(int(d) for d in meta.get("shape", ()))
    return shapes


def _tied_aliases(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> set[str]:
    """Names transformers ties to another saved tensor (counted once by the model)."""
    tied = set()
    for name in shapes:
        if name.endswith("embed_tokens.weight") and any(s in shapes for s in ("shared.weight", "model.shared.weight")):
            tied.add(name)
    if config.get("tie_word_embeddings", True) and "lm_head.weight" in shapes and len(shapes) > 1:
        if any(n.endswith(("shared.weight", "embed_tokens.weight", "wte.weight")) for n in shapes if n != "lm_head.weight"):
            tied.add("lm_head.weight")
    return tied


#: Saved tensors that transformers registers as buffers, not parameters.
_BUFFER_SUFFIXES = ("final_logits_bias", "position_ids", "rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias")


def hf_param_count(folder: Path, config: dict[str, Any]) -> int:
    """Exact parameter count from the safetensors headers: tied aliases counted once, saved
    buffers (BART's final_logits_bias, rotary tables, causal masks) not at all."""
    shapes = hf_tensor_shapes(folder)
    tied = _tied_aliases(shapes, config)
    total = 0
    for name, shape in shapes.items():
        if name in tied or name.endswith(_BUFFER_SUFFIXES):
            continue
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def hf_architecture(config: dict[str, Any]) -> dict[str, int]:
    """Our architecture keys from a transformers config (what the config gives)."""
    arch: dict[str, int] = {}
    for ours, theirs in _HF_KEYS.items():
        for key in theirs:
            if isinstance(config.get(key), int) and not isinstance(config.get(key), bool):
                arch[ours] = config[key]
                break
    if "num_heads" in arch:
        arch.setdefault("num_kv_heads", arch["num_heads"])
    if "head_dim" not in arch and "hidden_dim" in arch and "num_heads" in arch:
        arch["head_dim"] = arch["hidden_dim"] // arch["num_heads"]
    if "ffn_dim" not in arch and "hidden_dim" in arch:
        arch["ffn_dim"] = 4 * arch["hidden_dim"]  # GPT-2's n_inner default
    arch.setdefault("max_sequence_length", 2048)
    if hf_is_encoder_decoder(config) and "num_layers" in arch:
        arch["encoder_layers"] = arch["num_layers"]
        dec = config.get("num_decoder_layers") or config.get("decoder_layers")
        arch["decoder_layers"] = dec if isinstance(dec, int) else arch["num_layers"]
    return arch


def read_hf_folder(folder: Path, config: dict[str, Any]) -> PresetInfo:
    """A Hugging Face folder: architecture, kind, exact parameter count, or why it will not load."""
    info = PresetInfo(folder=folder, encoder_decoder=hf_is_encoder_decoder(config), hf_model_type=str(config["model_type"]))
    arch = hf_architecture(config)
    info.architecture = arch if all(k in arch for k in _KEYS) else None
    try:
        info.params = hf_param_count(folder, config)
    except (OSError, ValueError) as exc:
        info.problem = f"{folder}: Hugging Face folder will not load: {exc}"
    return info


def hf_cache_folder(handle: str) -> Path | None:
    """The local snapshot of an `hf://org/name[@revision]` handle in the Hugging Face cache
    ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), or None when it is not
    there. Read from the cache's layout (models--org--name/refs, snapshots/<commit>): no network."""
    if not handle.startswith("hf://"):
        return None
    repo, _, revision = handle[len("hf://"):].partition("@")
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface", "hub")
    root = Path(cache) / ("models--" + repo.strip("/").replace("/", "--"))
    revision = revision or "main"
    ref = root / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    folder = root / "snapshots" / commit
    return folder if (folder / "config.json").is_file() else None


@dataclass(frozen=True)
class FlanctlExport:
    """A preset folder written by `flanctl export` / apply's export: the family that wrote it,
    the backbone's architecture numbers from config.json, its SentencePiece file, if any, and
    its attention mode (config.json's `attention`; exports without one are causal)."""

    folder: Path
    family: str
    architecture: dict[str, int]
    tokenizer_file: Path | None
    attention: str = "causal"
    #: Pieces of its SentencePiece model (flanctl.json's tokenizer.vocab_size; exports written
    #: before it was recorded had no grown vocabulary, so the model's vocab_size stands in).
    tokenizer_vocab: int | None = None


def read_flanctl_export(handle: str | None, base_dir: str | Path) -> FlanctlExport | None:
    """The flanctl export at `handle` (relative to `base_dir`), or None when it is not one."""
    if not handle:
        return None
    folder = preset_folder(handle, base_dir)
    if folder is None:
        return None
    marker = _read_json(folder / "flanctl.json")
    config = _read_json(folder / "config.json")
    if not marker or not isinstance(marker.get("family"), str) or not config:
        return None
    numbers = config.get("config", {}) if isinstance(config.get("config"), dict) else {}
    from flanctl.spec.models import Architecture

    renames = {"vocabulary_size": "vocab_size"}  # keras-hub's constructor name -> the spec's
    arch = {renames.get(k, k): v for k, v in numbers.items()
            if renames.get(k, k) in Architecture.model_fields and isinstance(v, int)}
    tok = marker.get("tokenizer") if isinstance(marker.get("tokenizer"), dict) else {}
    spm = folder / tok["file"] if tok.get("kind") == "sentencepiece" and isinstance(tok.get("file"), str) else None
    attention = numbers.get("attention") if isinstance(numbers.get("attention"), str) else "causal"
    pieces = tok.get("vocab_size") if isinstance(tok.get("vocab_size"), int) else arch.get("vocab_size")
    return FlanctlExport(folder, marker["family"], arch, spm if spm is not None and spm.is_file() else None, attention, pieces)


def spec_tokenizer(model: Any, base_dir: str | Path) -> Any:
    """The tokenizer section `model` means: its own `model.tokenizer`, or, when the spec names
    none and `model.checkpoint` is a flanctl export with a SentencePiece model, that model (a
    base's tokenizer goes with its weights). Every room asks this, never the raw field."""
    if "tokenizer" in model.model_fields_set or not model.checkpoint:
        return model.tokenizer
    export = read_flanctl_export(model.checkpoint, base_dir)
    if export is None or export.tokenizer_file is None:
        return model.tokenizer
    return model.tokenizer.model_copy(update={
        "kind": "sentencepiece", "path": str(export.tokenizer_file),
        "vocab_size": export.tokenizer_vocab or model.tokenizer.vocab_size})
