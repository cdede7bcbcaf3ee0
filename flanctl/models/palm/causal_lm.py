"""`PaLMCausalLM`: next-token logits over the tied vocabulary, plus a cached decoding step.

Example:
    >>> lm = PaLMCausalLM(backbone=PaLMBackbone(...))
    >>> logits = lm({"token_ids": ids, "segment_ids": seg, "positions": pos})  # [B, L, vocab]
    >>> lm.save_to_preset("out/preset")   # config.json, task.json, model.weights.h5
    >>> keras_hub.models.CausalLM.from_preset("out/preset")   # after `import flanctl.models`
    >>> prefix_lm = with_attention(lm, "prefix")   # same weights, a prefix-LM graph
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
    backbone = model.backbone
    if getattr(backbone, "attention", "causal") == attention:
        return model
    config = {**backbone.get_config(), "attention": attention}
    new = PaLMCausalLM(backbone=PaLMBackbone.from_config(config), compile=False)
    for target, source in zip(new.weights, model.weights, strict=True):
        target.assign(source.value)
    return new
