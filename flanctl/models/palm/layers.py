"""PaLM's building blocks as Keras 3 layers (keras.ops only: jax, tensorflow and torch).

PaLM (Chowdhery et al. 2022, section 2): SwiGLU feed-forward, a *parallel* block
(`y = x + attn(ln(x)) + mlp(ln(x))`, one layer norm per block), multi-query attention,
rotary position embeddings, no biases anywhere, input and output embeddings shared.

Every layer takes an explicit boolean attention mask `[B, Lq, Lk]` so the same code serves
packed training batches (segment-aware causal mask, or the prefix-LM mask) and cached decoding
(mask over the cache).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

#: Large negative logit for masked attention entries (finite, so fully masked padding rows
#: stay finite instead of producing NaN; their outputs are never used).
_MASK_VALUE = -1e9

#: Attention through `keras.ops.dot_product_attention` (a fused cuDNN kernel on NVIDIA GPUs
#: under jax) instead of explicit einsums: "auto" = on jax GPUs only, or True / False.
#: Cached decoding and attention dropout always take the explicit path.
FUSED_ATTENTION: bool | str = "auto"


def _use_fused(training, dropout: float) -> bool:
    if dropout > 0 and training:
        return False  # dropout acts on the probabilities, which the fused kernel never exposes
    if FUSED_ATTENTION != "auto":
        return bool(FUSED_ATTENTION)
    if keras.backend.backend() != "jax":
        return False
    import jax

    # GPUs only: on TPUs Keras routes this call to its splash kernel, which would drop the
    # additive bias and with it the packing mask (examples would see each other).
    return jax.default_backend() == "gpu"


#: Layouts that XLA CPU runs without transposed copies: projections and the tied logits as 2-D
#: matmuls whose weight gradients are `x^T @ dy` (`PaLMProjection`, `cpu_matmul`) and attention
#: scores in the batched-matmul order `[B, K, Lq, G, Lk]`. Same values (float32 rounding
#: aside). "auto" = on the jax CPU backend only (read when a step is traced), or True / False.
CPU_FAST_PATHS: bool | str = "auto"


def _use_cpu_fast_paths() -> bool:
    if CPU_FAST_PATHS != "auto":
        return bool(CPU_FAST_PATHS) and keras.backend.backend() == "jax"
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def _projection_split(equation: str) -> tuple[int, int] | None:
    """For `"bt<in>,<in><out>->bt<out>"` (the shape of every palm projection) the number of
    input and output letters of the kernel, else None."""
    try:
        operands, out = equation.replace(" ", "").split("->")
        x_sub, k_sub = operands.split(",")
    except ValueError:
        return None
    lead, ins, outs = x_sub[:2], x_sub[2:], out[2:]
    if out[:2] != lead or k_sub != ins + outs or not outs or len(set(lead + ins + outs)) != len(lead + ins + outs):
        return None
    return len(ins), len(outs)


_JAX_MATMULS: dict = {}


def _jax_matmul(transpose_w: bool = False):
    """`x2 @ w` (`[M, K] @ [K, N]`; with `transpose_w`, `x2 @ w^T` for `w` `[N, K]`) whose
    backward computes the weight gradient in the weight's own layout: `dw = x2^T @ dy`
    (`dy^T @ x2` for `w^T`), and `dx = dy @ w^T` (`dy @ w`).

    jax's own transpose rule computes the weight gradient the other way round and transposes
    the small result; XLA CPU instead writes the big `dy` (fused with the elementwise ops
    before it) in transposed layout, a strided loop fusion that costs more than the matmul.
    The sums are the same, only their float32 rounding may differ.
    """
    if transpose_w not in _JAX_MATMULS:
        import jax

        dot = jax.lax.dot_general
        w_in = 1 if transpose_w else 0  # the contracted (K) axis of w

        @jax.custom_vjp
        def matmul(x2, w):
            return dot(x2, w, (((1,), (w_in,)), ((), ())))

        def fwd(x2, w):
            return matmul(x2, w), (x2, w)

        def bwd(res, dy):
            x2, w = res
            dx = dot(dy, w, (((1,), (1 - w_in,)), ((), ())), preferred_element_type=x2.dtype)
            if transpose_w:
                dw = dot(dy, x2, (((0,), (0,)), ((), ())), preferred_element_type=w.dtype)
            else:
                dw = dot(x2, dy, (((0,), (0,)), ((), ())), preferred_element_type=w.dtype)
            return dx, dw

        matmul.defvjp(fwd, bwd)
        _JAX_MATMULS[transpose_w] = matmul
    return _JAX_MATMULS[transpose_w]


def cpu_matmul(x, w, transpose_w: bool = False):
    """`x [..., K] @ w` through `_jax_matmul` (leading axes flattened), or None when the fast
    path does not apply (not jax CPU, or the dtypes differ): the caller then does its own."""
    if not _use_cpu_fast_paths():
        return None
    x = ops.convert_to_tensor(x)
    w = ops.convert_to_tensor(w)
    if x.dtype != w.dtype or len(w.shape) != 2:
        return None
    lead = tuple(ops.shape(x)[:-1])
    y = _jax_matmul(transpose_w)(ops.reshape(x, (-1, x.shape[-1])), w)
    return ops.reshape(y, (*lead, w.shape[0 if transpose_w else 1]))


@keras.saving.register_keras_serializable(package="flanctl")
class PaLMProjection(keras.layers.EinsumDense):
    """`EinsumDense` (same weights, config, LoRA and quantization) whose bias-free
    `"bt<in>,<in><out>->bt<out>"` projection runs on jax CPU as one 2-D matmul with a
    custom backward (`_jax_matmul`): same forward values, ~2x faster backward of the
    feed-forward on CPU. Everywhere else (other backends, GPUs, TPUs) it is `EinsumDense`."""

    def call(self, inputs, training=None):
        split = _projection_split(self.equation)
        if split is None or self.bias is not None or self.activation not in (None, keras.activations.linear) or not _use_cpu_fast_paths():
            return super().call(inputs, training=training)
        n_in, _ = split
        # The (autocast) kernel value; with LoRA the merged kernel, so gradients reach the adapters.
        kernel = ops.convert_to_tensor(self.kernel)
        k_shape = tuple(kernel.shape)
        in_size, out_dims = int(np.prod(k_shape[:n_in])), k_shape[n_in:]
        lead = tuple(ops.shape(inputs)[:2])
        y = cpu_matmul(ops.reshape(inputs, (*lead, in_size)), ops.reshape(kernel, (in_size, int(np.prod(out_dims)))))
        if y is None:
            return super().call(inputs, training=training)
        return ops.reshape(y, (*lead, *out_dims))


def rotary_embedding(x, positions, max_wavelength: float = 10_000.0):
    """Rotate `x` [B, L, N, h] by angles `positions * theta_i` (RoFormer, rotate-half form).

    Positions come from the input (not from `arange`), so packed segments each start at 0
    and left-padded generation prompts keep their first real token at position 0.
    """
    head_dim = x.shape[-1]
    half = head_dim // 2
    exponent = ops.arange(half, dtype="float32") * (2.0 / head_dim)
    inv_freq = 1.0 / ops.power(max_wavelength, exponent)  # [h/2]
    angles = ops.cast(positions, "float32")[:, :, None] * inv_freq[None, None, :]  # [B, L, h/2]
    cos = ops.cos(angles)[:, :, None, :]
    sin = ops.sin(angles)[:, :, None, :]
    x32 = ops.cast(x, "float32")
    x1, x2 = x32[..., :half], x32[..., half:]
    rotated = ops.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return ops.cast(rotated, x.dtype)


def segment_causal_mask(segment_ids):
    """Boolean `[B, L, L]`: key index <= query index, same segment, key not padding (segment 0).

    Packed examples never see each other, so packing is contamination-free.
    """
    length = ops.shape(segment_ids)[1]
    idx = ops.arange(length)
    causal = idx[None, :, None] >= idx[None, None, :]
    same = ops.equal(segment_ids[:, :, None], segment_ids[:, None, :])
    real_key = ops.not_equal(segment_ids, 0)[:, None, :]
    return ops.logical_and(ops.logical_and(causal, same), real_key)


@keras.saving.register_keras_serializable(package="flanctl")
class SegmentCausalMask(keras.layers.Layer):
    """Layer form of `segment_causal_mask`, so the functional graph sees a `[B, L, L]` bool."""

    def call(self, segment_ids):
        return segment_causal_mask(segment_ids)

    def compute_output_spec(self, segment_ids):
        b, length = segment_ids.shape
        return keras.KerasTensor((b, length, length), dtype="bool")


def segment_prefix_mask(segment_ids, prefix_mask):
    """Boolean `[B, L, L]` of a prefix LM (a non-causal decoder, as UL2 and U-PaLM define it).

    The segment-causal mask, plus: a query in its example's prefix (`prefix_mask` nonzero: the
    example's inputs) also sees every other prefix token of the same example, later ones
    included. Target tokens stay causal; examples never see each other; padding (segment 0)
    is never a key.
    """
    prefix = ops.not_equal(prefix_mask, 0)
    same = ops.equal(segment_ids[:, :, None], segment_ids[:, None, :])
    real_key = ops.not_equal(segment_ids, 0)[:, None, :]
    both_prefix = ops.logical_and(prefix[:, :, None], prefix[:, None, :])
    bidirectional = ops.logical_and(ops.logical_and(both_prefix, same), real_key)
    return ops.logical_or(segment_causal_mask(segment_ids), bidirectional)


@keras.saving.register_keras_serializable(package="flanctl")
class SegmentPrefixMask(keras.layers.Layer):
    """Layer form of `segment_prefix_mask`: `(segment_ids, prefix_mask)` -> `[B, L, L]` bool."""

    def call(self, segment_ids, prefix_mask):
        return segment_prefix_mask(segment_ids, prefix_mask)

    def compute_output_spec(self, segment_ids, prefix_mask):
        b, length = segment_ids.shape
        return keras.KerasTensor((b, length, length), dtype="bool")


@keras.saving.register_keras_serializable(package="flanctl")
class PaLMAttention(keras.layers.Layer):
    """Multi-query (num_kv_heads=1) or grouped-query attention with rotary positions, no biases.

    Call: `attn(x, positions, mask, cache=None, cache_index=None, causal=True)`. Without a cache
    it returns the output `[B, L, d]`; with a cache `[B, 2, T, K, h]` (keys, values for T slots)
    it writes this call's keys/values at `cache_index` and returns `(output, new_cache)`.
    `causal=False` says that `mask` lets some queries see later keys (a prefix LM), so the
    fused kernel must not skip the blocks above the diagonal.
    """

    def __init__(self, num_heads, num_kv_heads, head_dim, dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        d = input_shape[-1]
        common = dict(kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.query_dense = PaLMProjection("btd,dnh->btnh", (None, self.num_heads, self.head_dim), name="query", **common)
        self.key_dense = PaLMProjection("btd,dkh->btkh", (None, self.num_kv_heads, self.head_dim), name="key", **common)
        self.value_dense = PaLMProjection("btd,dkh->btkh", (None, self.num_kv_heads, self.head_dim), name="value", **common)
        self.output_dense = PaLMProjection("btnh,nhd->btd", (None, d), name="attention_output", **common)
        self.query_dense.build(input_shape)
        self.key_dense.build(input_shape)
        self.value_dense.build(input_shape)
        self.output_dense.build((None, None, self.num_heads, self.head_dim))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(self, x, positions, mask, cache=None, cache_index=None, training=None, causal=True):
        q = rotary_embedding(self.query_dense(x), positions)
        k = rotary_embedding(self.key_dense(x), positions)
        v = self.value_dense(x)
        if cache is not None:
            # Write this step's keys/values into the cache slots [cache_index, cache_index + L).
            zero = ops.zeros((), "int32")
            start = [zero, ops.cast(cache_index, "int32"), zero, zero]
            k_cache = ops.slice_update(cache[:, 0], start, ops.cast(k, cache.dtype))
            v_cache = ops.slice_update(cache[:, 1], start, ops.cast(v, cache.dtype))
            k, v = ops.cast(k_cache, q.dtype), ops.cast(v_cache, q.dtype)
            cache = ops.stack([k_cache, v_cache], axis=1)
        b, lq = ops.shape(q)[0], ops.shape(q)[1]
        if cache is None and _use_fused(training, self.dropout):
            # The boolean mask (causal or prefix-LM, same segment, real key) becomes an additive
            # bias shared by all heads; `is_causal` lets a fused kernel skip the blocks above the
            # diagonal, which a prefix-LM mask needs (`causal=False`).
            bias = ops.where(mask[:, None, :, :], 0.0, _MASK_VALUE)
            out = ops.dot_product_attention(
                q, k, ops.cast(v, q.dtype), bias=ops.cast(bias, q.dtype),
                scale=1.0 / float(self.head_dim) ** 0.5, is_causal=bool(causal),
            )
            return self.output_dense(ops.cast(out, x.dtype))
        groups = self.num_heads // self.num_kv_heads
        # Query heads grouped per kv head: [B, Lq, K, G, h]; the single MQA head is broadcast.
        q = ops.reshape(q, (b, lq, self.num_kv_heads, groups, self.head_dim))
        # Scores [B, K, G, Lq, Lk], or on jax CPU [B, K, Lq, G, Lk]: the order a batched matmul
        # over (B, K) produces, so that no transposed copy of the scores is written.
        order = ("bkqgs", mask[:, None, :, None, :]) if _use_cpu_fast_paths() else ("bkgqs", mask[:, None, None, :, :])
        scores = ops.einsum(f"bqkgh,bskh->{order[0]}", q, k)
        scores = ops.cast(scores, "float32") * (1.0 / float(self.head_dim) ** 0.5)
        scores = ops.where(order[1], scores, _MASK_VALUE)
        probs = ops.cast(ops.softmax(scores, axis=-1), v.dtype)
        probs = self.dropout_layer(probs, training=training)
        out = ops.einsum(f"{order[0]},bskh->bqkgh", probs, v)
        out = ops.reshape(out, (b, lq, self.num_heads, self.head_dim))
        out = self.output_dense(out)
        return out if cache is None else (out, cache)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="flanctl")
class PaLMSwiGLU(keras.layers.Layer):
    """SwiGLU feed-forward without biases: `down(silu(gate(x)) * up(x))` (Shazeer 2020)."""

    def __init__(self, ffn_dim, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.ffn_dim = ffn_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        d = input_shape[-1]
        common = dict(kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.gate_dense = PaLMProjection("btd,df->btf", (None, self.ffn_dim), name="ffn_gate", **common)
        self.up_dense = PaLMProjection("btd,df->btf", (None, self.ffn_dim), name="ffn_up", **common)
        self.down_dense = PaLMProjection("btf,fd->btd", (None, d), name="ffn_down", **common)
        self.gate_dense.build(input_shape)
        self.up_dense.build(input_shape)
        self.down_dense.build((None, None, self.ffn_dim))
        self.built = True

    def call(self, x):
        return self.down_dense(ops.silu(self.gate_dense(x)) * self.up_dense(x))

    def get_config(self):
        config = super().get_config()
        config.update(ffn_dim=self.ffn_dim, kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config


@keras.saving.register_keras_serializable(package="flanctl")
class PaLMDecoderBlock(keras.layers.Layer):
    """Parallel block: `y = x + dropout(attn(ln(x))) + dropout(mlp(ln(x)))`, one bias-free norm."""

    def __init__(self, num_heads, num_kv_heads, head_dim, ffn_dim, dropout=0.0, layer_norm_epsilon=1e-6, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, center=False, name="layer_norm", dtype=self.dtype_policy
        )
        self.attention = PaLMAttention(
            self.num_heads, self.num_kv_heads, self.head_dim, dropout=self.dropout,
            kernel_initializer=self.kernel_initializer, name="attention", dtype=self.dtype_policy,
        )
        self.mlp = PaLMSwiGLU(self.ffn_dim, kernel_initializer=self.kernel_initializer, name="mlp", dtype=self.dtype_policy)
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.mlp_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.layer_norm.build(input_shape)
        self.attention.build(input_shape)
        self.mlp.build(input_shape)
        self.built = True

    def call(self, x, positions, mask, cache=None, cache_index=None, training=None, causal=True):
        h = self.layer_norm(x)
        attn = self.attention(h, positions, mask, cache=cache, cache_index=cache_index, training=training, causal=causal)
        if cache is not None:
            attn, cache = attn
        y = x + self.attention_dropout(attn, training=training) + self.mlp_dropout(self.mlp(h), training=training)
        return y if cache is None else (y, cache)

    def compute_output_spec(self, x, *args, **kwargs):
        if kwargs.get("cache") is not None:
            raise NotImplementedError("cached calls run eagerly or under jit, not symbolically")
        return keras.KerasTensor(x.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
