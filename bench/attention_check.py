"""Fused vs explicit palm attention on this device: logits and gradients on packed rows.

The fused path (`keras.ops.dot_product_attention`, cuDNN on jax GPUs) must agree with the
explicit einsum path; prints the largest differences and whether cuDNN attention is in the HLO.

    KERAS_BACKEND=jax python bench/attention_check.py
"""
import os
os.environ["KERAS_BACKEND"] = "jax"
import jax, jax.numpy as jnp, keras, numpy as np
from flanctl.models.palm import PaLMBackbone, PaLMCausalLM, layers
from flanctl.models.palm.presets import backbone_kwargs

print("backend", jax.default_backend(), "auto fused:", layers._use_fused(False, 0.0))
for policy in ("float32", "mixed_bfloat16"):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    arch = dict(num_layers=2, hidden_dim=256, num_heads=8, num_kv_heads=1, head_dim=64, ffn_dim=512, vocab_size=512, max_sequence_length=256)
    model = PaLMCausalLM(PaLMBackbone(**backbone_kwargs(arch)))
    rng = np.random.default_rng(0)
    B, L = 4, 256
    seg = np.zeros((B, L), "int32"); pos = np.zeros((B, L), "int32")
    for b in range(B):
        cuts = sorted(rng.choice(np.arange(10, 200), 3, replace=False)); start = 0
        for i, c in enumerate(list(cuts) + [230]):
            seg[b, start:c] = i + 1; pos[b, start:c] = np.arange(c - start); start = c
    x = {"token_ids": rng.integers(0, 512, (B, L)).astype("int32"), "segment_ids": seg, "positions": pos}
    tv = [v.value for v in model.trainable_variables]; ntv = [v.value for v in model.non_trainable_variables]
    def loss(tv):
        logits, _ = model.stateless_call(tv, ntv, x)
        return jnp.sum(jnp.where(seg[..., None] > 0, logits.astype(jnp.float32), 0.0) ** 2) / 1e4, logits
    out = {}
    for fused in (False, True):
        layers.FUSED_ATTENTION = fused
        (l, logits), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(tv)
        out[fused] = (np.asarray(logits, np.float32), [np.asarray(t, np.float32) for t in g])
    real = seg > 0
    dl = np.abs(out[True][0] - out[False][0])[real].max(); scale = np.abs(out[False][0][real]).max()
    dg = max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12)) for a, b in zip(out[True][1], out[False][1]))
    print(f"{policy}: max |logit diff| {dl:.3g} (max |logit| {scale:.3g}); max rel grad diff {dg:.3g}")
    hlo = jax.jit(lambda tv: loss(tv)[0]).lower(tv).as_text()
    print("  cudnn custom call in HLO:", "cudnn" in hlo.lower() or "fmha" in hlo.lower())
layers.FUSED_ATTENTION = "auto"
