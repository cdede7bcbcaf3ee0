"""`T5PackedSeq2SeqLM`: logits over the decoder sequence of a `FlanT5Backbone`."""

from __future__ import annotations

import keras
from keras import ops
from keras_hub.models import Seq2SeqLM

from flanctl.models.t5.backbone import FlanT5Backbone


@keras.saving.register_keras_serializable(package="flanctl")
class T5PackedSeq2SeqLM(Seq2SeqLM):
    """Seq2seq LM on packed encoder-decoder batches: float32 logits `[B, Ld, vocab]`.

    T5 v1.1 has an untied LM head (`reverse_embeddings`); with tied weights the decoder
    output is scaled by d^-0.5 first, as in the original T5.
    """

    backbone_cls = FlanT5Backbone
    preprocessor_cls = None

    def __init__(self, backbone, preprocessor=None, **kwargs):
        self.backbone = backbone
        self.preprocessor = preprocessor
        inputs = backbone.input
        hidden = backbone(inputs)["decoder_sequence_output"]
        if backbone.tie_embedding_weights:
            hidden = hidden * (float(backbone.hidden_dim) ** -0.5)
        logits = ops.cast(backbone.token_embedding(hidden, reverse=True), "float32")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

    def encode(self, token_ids, segment_ids):
        """Encoder hidden states for `[B, Le]` token ids (segment 0 = padding)."""
        from flanctl.models.t5.backbone import _same_segment

        mask = ops.cast(_same_segment(segment_ids, segment_ids), "int32")
        return self.backbone.encode(token_ids, mask)

    def decode_logits(self, token_ids, segment_ids, encoder_output, encoder_segment_ids):
        """Float32 logits for a full decoder prefix `[B, Ld]` given encoder states."""
        from flanctl.models.t5.backbone import _same_segment

        length = ops.shape(token_ids)[1]
        idx = ops.arange(length)
        mask = ops.logical_and(_same_segment(segment_ids, segment_ids), (idx[:, None] >= idx[None, :])[None])
        cross = _same_segment(segment_ids, encoder_segment_ids)
        bb = self.backbone
        hidden = bb.decode(token_ids, ops.cast(mask, "int32"), encoder_output, ops.cast(cross, "int32"))
        if bb.tie_embedding_weights:
            hidden = hidden * (float(bb.hidden_dim) ** -0.5)
        return ops.cast(bb.token_embedding(hidden, reverse=True), "float32")

    # -- cached incremental decoding (used by flanctl.models.generation.encoder_decoder) ----
    def empty_decoder_cache(self, batch_size: int, length: int):
        """Zeroed decoder self-attention K/V cache `[B, decoder_layers, 2, length, heads, kv]`."""
        bb = self.backbone
        kv = bb.key_value_dim or bb.hidden_dim // bb.num_heads
        shape = (batch_size, bb.num_decoder_layers, 2, length, bb.num_heads, kv)
        return ops.zeros(shape, dtype=self.compute_dtype)

    def cross_attention_cache(self, encoder_output):
        """Every decoder layer's cross-attention keys/values of the encoder states, computed
        once per batch: `[B, decoder_layers, 2, Le, heads, kv]`."""
        bb = self.backbone
        kv = bb.key_value_dim or bb.hidden_dim // bb.num_heads
        b, le = ops.shape(encoder_output)[0], ops.shape(encoder_output)[1]
        layers = []
        for layer in bb.decoder_transformer_layers:
            attn = layer.cross_attention
            k = ops.reshape(attn.key_projector(encoder_output), (b, le, bb.num_heads, kv))
            v = ops.reshape(attn.value_projector(encoder_output), (b, le, bb.num_heads, kv))
            layers.append(ops.stack([k, v], axis=1))
        return ops.stack(layers, axis=1)

    def decode_with_cache(self, token_ids, self_mask, cross_mask, self_cache, cross_cache, cache_index):
        """One decoding call over new decoder tokens `[B, Lnew]` written at slot `cache_index`.

        `self_mask` is `[B, Lnew, T]` (which self-attention cache slots each new token sees,
        causality included), `cross_mask` `[B, Lnew, Le]` (which encoder positions), the caches
        come from `empty_decoder_cache` / `cross_attention_cache`. keras-hub's T5 layers fold
        the mask into the relative position bias of the first layer, computed for queries
        starting at `cache_index`. Returns `(logits [B, Lnew, vocab] float32, new self cache)`.
        """
        bb = self.backbone
        x = bb.token_embedding(token_ids)
        bias = None
        caches = []
        for i, layer in enumerate(bb.decoder_transformer_layers):
            x, bias, layer_cache, _ = layer(
                x, attention_mask=self_mask, position_bias=bias, encoder_hidden_states=None,
                encoder_attention_mask=cross_mask, use_causal_mask=False,
                self_attention_cache=self_cache[:, i], self_attention_cache_update_index=cache_index,
                cross_attention_cache=cross_cache[:, i], cross_attention_cache_update_index=None,
                training=False,
            )
            caches.append(layer_cache)
        hidden = bb.decoder_layer_norm(x)
        if bb.tie_embedding_weights:
            hidden = hidden * (float(bb.hidden_dim) ** -0.5)
        return ops.cast(bb.token_embedding(hidden, reverse=True), "float32"), ops.stack(caches, axis=1)
