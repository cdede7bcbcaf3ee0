"""`PaLMCausalLM`: next-token logits over the tied vocabulary, plus a cached decoding step.

Example:
    >>> lm = PaLMCausalLM(backbone=PaLMBackbone(...))
    >>> logits = lm({"token_ids": ids, "segment_ids": seg, "positions": pos})  # [B, L, vocab]
    >>> lm.save_to_preset("out/preset")   # config.json, task.json, model.weights.h5
    >>> keras_hub.models.CausalLM.from_preset("out/preset")   # after `import flanctl.models`
    >>> prefix_lm = with_attention(lm, "prefix")   # same weights, a prefix-LM graph
    >>> grown = with_vocabulary(lm, 1064)           # same weights, 40 new embedding rows
"""

from __future__ import annotations

import keras
from keras import ops
from keras_hub.models import CausalLM

from flanctl.models.palm.backbone import PaLMBackbone


@keras.saving.register_keras_serializable(package="flanctl")
class PaLMCausalLM(CausalLM):
    """Causal LM task on a `PaLMBackbone`: logits `[B, L, vocab]` in float32.

    The output projection is the transposed token embedding, with logits scaled by
    1/sqrt(hidden_dim) because the embedding is initialised N(0, 1) (PaLM, section 2).
    Generation lives in `flanctl.models.generation.decoder_only.DecoderOnlyEngine`, which drives
    `call_with_cache`; no keras-hub preprocessor is attached (flanctl tokenizes itself).
    Its inputs are the backbone's: with `attention="prefix"` also `prefix_mask`.
    """

    backbone_cls = PaLMBackbone
    preprocessor_cls = None

    def __init__(self, backbone, preprocessor=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor

        # === Functional model ===
        inputs = backbone.input
        hidden = backbone(inputs)
        logits = backbone.token_embedding(hidden, reverse=True)
        logits = ops.cast(logits, "float32") * (1.0 / float(backbone.hidden_dim) ** 0.5)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

    def call_with_cache(self, token_ids, positions, mask, cache, cache_index):
        """One decoding call over new tokens `[B, Lnew]` writing K/V at `cache_index`.

        `cache` is `[B, num_layers, 2, T, K, h]`; `mask` is boolean `[B, Lnew, T]` (which cache
        slots each new token may see). Returns `(logits [B, Lnew, vocab] float32, new cache)`.
        """
        bb = self.backbone
        x = bb.token_embedding(token_ids)
        layer_caches = []
        for i, block in enumerate(bb.transformer_layers):
            x, layer_cache = block(x, positions, mask, cache=cache[:, i], cache_index=cache_index)
            layer_caches.append(layer_cache)
        x = bb.layer_norm(x)
        logits = bb.token_embedding(x, reverse=True)
        logits = ops.cast(logits, "float32") * (1.0 / float(bb.hidden_dim) ** 0.5)
        return logits, ops.stack(layer_caches, axis=1)

    def empty_cache(self, batch_size: int, length: int):
        """Zeroed K/V cache `[B, num_layers, 2, length, num_kv_heads, head_dim]`."""
        bb = self.backbone
        shape = (batch_size, bb.num_layers, 2, length, bb.num_kv_heads, bb.head_dim)
        return ops.zeros(shape, dtype=self.compute_dtype)


def with_attention(model: PaLMCausalLM, attention: str) -> PaLMCausalLM:
    """`model` itself when its backbone attends as `attention` ("causal" | "prefix"), else a
    new `PaLMCausalLM` whose backbone has the same config and weights (the mask has no
    weights) and attends as `attention`: how a causally pretrained checkpoint continues as a
    prefix LM (U-PaLM's UL2R) or a prefix LM is finetuned causally."""
    return rebuilt(model, attention=attention)


def with_vocabulary(model: PaLMCausalLM, vocabulary_size: int, seed: int = 0) -> PaLMCausalLM:
    """`model` itself when its vocabulary has `vocabulary_size` ids, else a new `PaLMCausalLM`
    with the same weights and `vocabulary_size - old` new rows at the end of the tied token
    embedding (`grow_rows`): room for ids above the tokenizer's, such as UL2's span sentinels,
    in a checkpoint pretrained without it. The old ids keep their rows, so the model computes
    the same logits for them; shrinking is refused (it would drop rows the tokenizer uses)."""
    return rebuilt(model, vocabulary_size=vocabulary_size, seed=seed)


def rebuilt(model: PaLMCausalLM, attention: str | None = None, vocabulary_size: int | None = None,
            seed: int = 0) -> PaLMCausalLM:
    """`model` with its backbone's `attention` and/or `vocabulary_size` changed (None keeps
    it), same weights otherwise; `model` itself when nothing changes."""
    from flanctl.errors import FlanctlError

    backbone = model.backbone
    config = backbone.get_config()
    changes = {k: v for k, v in (("attention", attention), ("vocabulary_size", vocabulary_size))
               if v is not None and v != config[k]}
    if not changes:
        return model
    old_vocab = int(config["vocabulary_size"])
    if changes.get("vocabulary_size", old_vocab) < old_vocab:
        raise FlanctlError(f"model.architecture.vocab_size {changes['vocabulary_size']} is below the checkpoint's "
                           f"{old_vocab}: a vocabulary can grow on load, not shrink; remove vocab_size or raise it")
    new = PaLMCausalLM(backbone=PaLMBackbone.from_config({**config, **changes}), compile=False)
    for target, source in zip(new.weights, model.weights, strict=True):
        value = source.value
        if tuple(target.shape) != tuple(source.shape):  # the tied token embedding [vocab, d]
            value = grow_rows(ops.convert_to_numpy(value), int(target.shape[0]), seed)
        target.assign(value)
    return new


def grow_rows(table, rows: int, seed: int = 0):
    """`table` [n, d] with `rows - n` rows appended, each drawn per dimension from a normal with
    the existing rows' mean and standard deviation (seeded): a new id starts as a typical token,
    not as a zero vector (which the tied output projection would give logit 0 for every
    state) nor as copies of one another (which it could not tell apart)."""
    import numpy as np

    table = np.asarray(table, np.float32)
    extra = rows - table.shape[0]
    if extra <= 0:
        return table[:rows]
    rng = np.random.default_rng(seed)
    mean, std = table.mean(axis=0), table.std(axis=0)
    new = mean + std * rng.standard_normal((extra, table.shape[1]), dtype=np.float32)
    return np.concatenate([table, new.astype(np.float32)], axis=0)
