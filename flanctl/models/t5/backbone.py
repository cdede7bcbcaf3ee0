"""`FlanT5Backbone`: T5 v1.1 built from keras-hub's own T5 layers, with segment-aware masks.

keras-hub's `T5Backbone` takes padding masks only, so packed examples would attend to each
other. Its layers, though, accept full attention masks `[B, Lq, Lk]` (folded into the
relative position bias of the first layer of each stack), and the relative position of two
tokens of one contiguous packed example is the same as in the example alone. So this
backbone reuses keras-hub's `T5TransformerLayer`/`T5LayerNorm` unchanged and passes masks
built from segment ids: packing is contamination-free, and the weights and parameter count
are those of `keras_hub.models.T5Backbone` with the same configuration.
"""

from __future__ import annotations

import keras
from keras import ops
from keras_hub.models import Backbone
from keras_hub.src.models.t5.t5_layer_norm import T5LayerNorm
from keras_hub.src.models.t5.t5_transformer_layer import T5TransformerLayer


def gelu_tanh(x):
    """GELU with the tanh approximation: T5 v1.1 / Flan-T5's feed-forward activation
    (transformers' `gelu_new`); Keras' plain "gelu" is the exact erf form."""
    return keras.activations.gelu(x, approximate=True)


def feed_forward_activation(name):
    """The activation `T5TransformerLayer` gets for a config name: "gelu_tanh" is flanctl's,
    anything else is a Keras activation name."""
    return gelu_tanh if name == "gelu_tanh" else name


def _same_segment(q_seg, k_seg):
    """Bool `[B, Lq, Lk]`: same segment and neither is padding (segment 0)."""
    same = ops.equal(q_seg[:, :, None], k_seg[:, None, :])
    real = ops.logical_and(ops.not_equal(q_seg, 0)[:, :, None], ops.not_equal(k_seg, 0)[:, None, :])
    return ops.logical_and(same, real)


@keras.saving.register_keras_serializable(package="flanctl")
class T5SegmentMasks(keras.layers.Layer):
    """Encoder self, decoder causal self and cross attention masks from segment ids."""

    def call(self, encoder_segment_ids, decoder_segment_ids):
        enc = _same_segment(encoder_segment_ids, encoder_segment_ids)
        dec = _same_segment(decoder_segment_ids, decoder_segment_ids)
        length = ops.shape(decoder_segment_ids)[1]
        idx = ops.arange(length)
        dec = ops.logical_and(dec, (idx[:, None] >= idx[None, :])[None])
        cross = _same_segment(decoder_segment_ids, encoder_segment_ids)
        return ops.cast(enc, "int32"), ops.cast(dec, "int32"), ops.cast(cross, "int32")

    def compute_output_spec(self, encoder_segment_ids, decoder_segment_ids):
        b, le = encoder_segment_ids.shape
        ld = decoder_segment_ids.shape[1]
        return (
            keras.KerasTensor((b, le, le), dtype="int32"),
            keras.KerasTensor((b, ld, ld), dtype="int32"),
            keras.KerasTensor((b, ld, le), dtype="int32"),
        )


@keras.saving.register_keras_serializable(package="flanctl")
class FlanT5Backbone(Backbone):
    """T5 v1.1 encoder-decoder over packed batches (gated-GELU, untied LM head by default).

    Inputs (int32 `[B, L]`): `encoder_token_ids`, `encoder_segment_ids`, `encoder_positions`,
    `decoder_token_ids`, `decoder_segment_ids`, `decoder_positions`. T5's relative position
    bias is computed from token offsets, which equal position offsets within a contiguous
    packed example; the positions inputs are accepted for the batch contract and unused.
    Outputs: `encoder_sequence_output`, `decoder_sequence_output`.

    `activation` is a Keras activation name or "gelu_tanh" (the tanh GELU of the T5 v1.1 and
    Flan-T5 checkpoints, used when one is loaded from Hugging Face: flanctl.models.t5.hf).
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        key_value_dim=None,
        num_decoder_layers=None,
        dropout=0.0,
        activation="gelu",
        use_gated_activation=True,
        layer_norm_epsilon=1e-6,
        tie_embedding_weights=False,
        dtype=None,
        **kwargs,
    ):
        num_decoder_layers = num_decoder_layers or num_layers
        kv = key_value_dim or hidden_dim // num_heads
        self.token_embedding = keras.layers.ReversibleEmbedding(
            input_dim=vocabulary_size,
            output_dim=hidden_dim,
            tie_weights=tie_embedding_weights,
            embeddings_initializer=keras.initializers.TruncatedNormal(mean=0.0, stddev=1.0),
            dtype=dtype,
            name="token_embedding",
        )

        def stack(is_decoder, n, prefix):
            return [
                T5TransformerLayer(
                    is_decoder=is_decoder, hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
                    key_value_dim=kv, dropout=dropout, activation=feed_forward_activation(activation),
                    layer_norm_epsilon=layer_norm_epsilon, num_heads=num_heads,
                    use_gated_activation=use_gated_activation, use_relative_attention_bias=(i == 0),
                    dtype=dtype, name=f"{prefix}_{i}",
                )
                for i in range(n)
            ]

        self.encoder_transformer_layers = stack(False, num_layers, "transformer_encoder_layer")
        self.decoder_transformer_layers = stack(True, num_decoder_layers, "transformer_decoder_layer")
        self.encoder_layer_norm = T5LayerNorm(epsilon=layer_norm_epsilon, dtype=dtype, name="encoder_output_layer_norm")
        self.decoder_layer_norm = T5LayerNorm(epsilon=layer_norm_epsilon, dtype=dtype, name="decoder_output_layer_norm")
        self.encoder_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="encoder_dropout")
        self.decoder_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="decoder_dropout")
        self.masks = T5SegmentMasks(dtype=dtype, name="segment_masks")

        names = ["encoder_token_ids", "encoder_segment_ids", "encoder_positions",
                 "decoder_token_ids", "decoder_segment_ids", "decoder_positions"]
        inputs = {n: keras.Input(shape=(None,), dtype="int32", name=n) for n in names}
        enc_mask, dec_mask, cross_mask = self.masks(inputs["encoder_segment_ids"], inputs["decoder_segment_ids"])
        encoder_output = self.encode(inputs["encoder_token_ids"], enc_mask)
        decoder_output = self.decode(inputs["decoder_token_ids"], dec_mask, encoder_output, cross_mask)
        super().__init__(
            inputs=inputs,
            outputs={"encoder_sequence_output": encoder_output, "decoder_sequence_output": decoder_output},
            dtype=dtype,
            **kwargs,
        )
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_decoder_layers = num_decoder_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.key_value_dim = key_value_dim
        self.dropout = dropout
        self.activation = activation
        self.use_gated_activation = use_gated_activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.tie_embedding_weights = tie_embedding_weights

    def encode(self, token_ids, mask, training=None):
        """Encoder stack: hidden states `[B, Le, d]` given a `[B, Le, Le]` mask."""
        x = self.token_embedding(token_ids)
        bias = None
        for layer in self.encoder_transformer_layers:
            x, bias = layer(x, attention_mask=mask, position_bias=bias, use_causal_mask=False, training=training)
        return self.encoder_dropout(self.encoder_layer_norm(x), training=training)

    def decode(self, token_ids, mask, encoder_output, cross_mask, training=None):
        """Decoder stack over the full target prefix (the mask already carries causality)."""
        x = self.token_embedding(token_ids)
        bias = None
        for layer in self.decoder_transformer_layers:
            x, bias = layer(
                x, attention_mask=mask, position_bias=bias, encoder_hidden_states=encoder_output,
                encoder_attention_mask=cross_mask, use_causal_mask=False, training=training,
            )
        return self.decoder_dropout(self.decoder_layer_norm(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_layers=self.num_layers,
            num_decoder_layers=self.num_decoder_layers,
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            key_value_dim=self.key_value_dim,
            dropout=self.dropout,
            activation=self.activation,
            use_gated_activation=self.use_gated_activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            tie_embedding_weights=self.tie_embedding_weights,
        )
        return config
