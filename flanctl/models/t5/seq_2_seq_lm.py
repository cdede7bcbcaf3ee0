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
