"""`PaLMBackbone`: the PaLM decoder stack as a keras-hub `Backbone` (functional, serialisable).

Example:
    >>> backbone = PaLMBackbone(vocabulary_size=259, num_layers=2, hidden_dim=64,
    ...                         num_heads=4, num_kv_heads=1, head_dim=16, ffn_dim=256)
    >>> hidden = backbone({"token_ids": ids, "segment_ids": seg, "positions": pos})  # [B, L, 64]
    >>> prefix_lm = PaLMBackbone(..., attention="prefix")  # a non-causal decoder (UL2, U-PaLM)
    >>> hidden = prefix_lm({"token_ids": ids, "segment_ids": seg, "positions": pos, "prefix_mask": pre})
"""

from __future__ import annotations

import keras
from keras_hub.models import Backbone

from flanctl.models.palm.layers import PaLMDecoderBlock, SegmentCausalMask, SegmentPrefixMask, cpu_matmul

#: Attention modes of a PaLM backbone: causal (PaLM) or prefix (a prefix LM: bidirectional on
#: each example's inputs, causal on its targets; UL2, U-PaLM).
ATTENTION_MODES = ("causal", "prefix")


def palm_kernel_initializer():
    """PaLM's fan-in variance scaling for kernels (Chowdhery et al. 2022, 'Training setup')."""
    return keras.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal")


@keras.saving.register_keras_serializable(package="flanctl")
class PaLMTokenEmbedding(keras.layers.ReversibleEmbedding):
    """`ReversibleEmbedding` (same weights and config) whose tied reverse projection runs on
    jax CPU through `cpu_matmul`, so the embedding gradient of the logits is computed in the
    embedding's own layout (no transposed copy of the `[B*L, vocab]` logits gradient)."""

    def call(self, inputs, reverse=False):
        if reverse and self.tie_weights and self.reverse_dtype is None and self.logit_soft_cap is None:
            logits = cpu_matmul(inputs, self.embeddings, transpose_w=True)
            if logits is not None:
                return logits
        return super().call(inputs, reverse=reverse)


# Keras keys a functional model's layers in model.weights.h5 by their class name, so this
# subclass keeps its parent's: checkpoints and exports written before it existed
# ("layers/reversible_embedding/vars/0") load unchanged, and new ones load in older flanctl.
PaLMTokenEmbedding.__name__ = PaLMTokenEmbedding.__qualname__ = "ReversibleEmbedding"


@keras.saving.register_keras_serializable(package="flanctl")
class PaLMBackbone(Backbone):
    """PaLM decoder: tied token embedding, parallel SwiGLU/MQA blocks, rotary, final norm.

    Inputs (int32 `[B, L]`): `token_ids`, `segment_ids` (0 = padding; packed examples have
    distinct ids and never attend to each other), `positions` (rotary positions, restarting
    at 0 in every packed example). Output: the final hidden states `[B, L, hidden_dim]`.
    No biases anywhere; one scale-only layer norm per block plus a final one.

    `attention="prefix"` makes it a prefix LM: a fourth input `prefix_mask` (int32 `[B, L]`,
    nonzero on the tokens of each example's inputs) lets every prefix token attend to all
    prefix tokens of its own example (`segment_prefix_mask`); targets stay causal. The
    default, `"causal"`, builds exactly PaLM's graph with the three inputs above.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        hidden_dim,
        num_heads,
        num_kv_heads,
        head_dim,
        ffn_dim,
        max_sequence_length=2560,
        dropout=0.0,
        layer_norm_epsilon=1e-6,
        attention="causal",
        dtype=None,
        **kwargs,
    ):
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention {attention!r}: use one of {', '.join(ATTENTION_MODES)}")
        # === Layers ===
        # N(0, 1) input embeddings: layer norm is not applied to them (PaLM, section 2); the
        # causal LM scales the tied output logits by 1/sqrt(d) to compensate.
        self.token_embedding = PaLMTokenEmbedding(
            input_dim=vocabulary_size,
            output_dim=hidden_dim,
            tie_weights=True,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype=dtype,
            name="token_embedding",
        )
        self.transformer_layers = [
            PaLMDecoderBlock(
                num_heads=num_heads,
                num_kv_heads=num_kv_heads,
                head_dim=head_dim,
                ffn_dim=ffn_dim,
                dropout=dropout,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=palm_kernel_initializer(),
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, center=False, dtype=dtype, name="final_layer_norm"
        )

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        positions = keras.Input(shape=(None,), dtype="int32", name="positions")
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "positions": positions}
        causal = attention == "causal"
        if causal:
            mask = SegmentCausalMask(name="attention_mask")(segment_ids)
        else:
            inputs["prefix_mask"] = keras.Input(shape=(None,), dtype="int32", name="prefix_mask")
            mask = SegmentPrefixMask(name="attention_mask")(segment_ids, inputs["prefix_mask"])
        x = self.embeddings_dropout(self.token_embedding(token_ids))
        for block in self.transformer_layers:
            x = block(x, positions, mask) if causal else block(x, positions, mask, causal=False)
        x = self.layer_norm(x)
        super().__init__(
            inputs=inputs,
            outputs=x,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.ffn_dim = ffn_dim
        self.max_sequence_length = max_sequence_length
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.attention = attention

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_layers=self.num_layers,
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            ffn_dim=self.ffn_dim,
            max_sequence_length=self.max_sequence_length,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            attention=self.attention,
        )
        return config
