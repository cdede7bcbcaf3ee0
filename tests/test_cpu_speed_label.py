"""Issue 16: CPU MFU is relative to a measured matmul peak, and palm's CPU fast paths
(2-D projections with `x^T @ dy` weight gradients, batched-matmul attention layout) give the
same logits and gradients as the generic einsum paths."""

from __future__ import annotations

import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from flanctl.catalog.devices import DEVICE_PEAK_FLOPS
from flanctl.spec.models import Spec
from flanctl.train import throughput
from flanctl.train.throughput import measured_cpu_peak_flops, mfu, peak_flops


def _plan(device: str, data: int = 1, compute=None):
    spec = Spec.model_validate(
        {"distribution": {"device": device, "mesh": {"data": data}, "processes": {"devices_per_process": data}}}
    )
    return SimpleNamespace(spec=spec, compute=compute)


def test_cpu_peak_is_the_measured_matmul_rate_not_the_catalog_figure(monkeypatch):
    monkeypatch.setattr(throughput, "measured_cpu_peak_flops", lambda: 2.5e11)
    planned = {"time": {"device_peak_flops": DEVICE_PEAK_FLOPS["cpu"]}}  # what `flanctl plan` writes
    assert peak_flops(_plan("cpu", compute=planned)) == pytest.approx(2.5e11)
    # virtual CPU devices share the host's cores: they do not multiply the peak
    assert peak_flops(_plan("cpu", data=4, compute=planned)) == pytest.approx(2.5e11)
    # accelerators keep the device table / plan figure
    assert peak_flops(_plan("h100", data=2)) == pytest.approx(2 * DEVICE_PEAK_FLOPS["h100"])


def test_cpu_mfu_does_not_read_above_what_a_matmul_reaches(monkeypatch):
    """A model running at exactly the matmul rate reads 100% MFU, whatever the catalog says."""
    monkeypatch.setattr(throughput, "measured_cpu_peak_flops", lambda: 2.5e11)
    params, tps = 2_000_000, 2.5e11 / (6 * 2_000_000)
    assert mfu(params, tps, peak_flops(_plan("cpu"))) == pytest.approx(1.0)


def test_measured_cpu_peak_is_a_real_positive_rate():
    flops = measured_cpu_peak_flops(n=256, repeats=2)
    assert math.isfinite(flops) and flops > 1e8
    assert measured_cpu_peak_flops(n=256, repeats=2) == flops  # cached: measured once per process


# ------------------------------------------------------------------ palm CPU fast paths
ARCH = {"num_layers": 2, "hidden_dim": 64, "num_heads": 4, "num_kv_heads": 1, "head_dim": 16, "ffn_dim": 128, "vocab_size": 97, "max_sequence_length": 32}


def _logits_and_grads(fast, num_kv_heads=1):
    import jax
    import jax.numpy as jnp

    from flanctl.models.palm import PaLMBackbone, PaLMCausalLM
    from flanctl.models.palm import layers as palm_layers
    from flanctl.models.palm.presets import backbone_kwargs
    from flanctl.train.synthetic_stream import SyntheticStream

    old = palm_layers.CPU_FAST_PATHS
    palm_layers.CPU_FAST_PATHS = fast
    try:
        keras.utils.set_random_seed(3)
        model = PaLMCausalLM(PaLMBackbone(**backbone_kwargs(dict(ARCH, num_kv_heads=num_kv_heads))))
        batch = next(SyntheticStream(2, ARCH["max_sequence_length"], ARCH["vocab_size"], seed=1))
        x = {k: batch[k] for k in ("token_ids", "segment_ids", "positions")}
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        def loss(tv):
            logits, _ = model.stateless_call(tv, ntv, x, training=True)
            logp = jax.nn.log_softmax(logits, axis=-1)
            nll = -jnp.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
            return jnp.sum(nll * batch["loss_mask"]), logits

        grad_fn = jax.value_and_grad(loss, has_aux=True)
        jaxpr = str(jax.make_jaxpr(grad_fn)(tv))
        (_, logits), grads = jax.jit(grad_fn)(tv)
        return np.asarray(logits), [np.asarray(g) for g in grads], jaxpr
    finally:
        palm_layers.CPU_FAST_PATHS = old


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the fast paths are jax-only")
@pytest.mark.parametrize("num_kv_heads", [1, 2], ids=["mqa", "gqa2"])
def test_palm_cpu_fast_paths_match_the_generic_paths(num_kv_heads):
    fast_logits, fast_grads, fast_jaxpr = _logits_and_grads(True, num_kv_heads)
    ref_logits, ref_grads, ref_jaxpr = _logits_and_grads(False, num_kv_heads)
    assert "custom_vjp" in fast_jaxpr and "custom_vjp" not in ref_jaxpr  # the paths really differ
    np.testing.assert_allclose(fast_logits, ref_logits, rtol=1e-5, atol=1e-5)
    assert len(fast_grads) == len(ref_grads)
    for fast, ref in zip(fast_grads, ref_grads):
        np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-6 * max(1.0, float(np.abs(ref).max())))


def test_palm_weight_files_keep_their_layout(tmp_path):
    """The CPU fast-path subclasses keep the weight file's keys, so exports and checkpoints
    written before them still load: the tied embedding is stored under its parent's name."""
    import h5py

    from flanctl.models.families import get_family

    family = get_family("palm", False)
    model = family.build({"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "num_kv_heads": 1, "head_dim": 8,
                          "ffn_dim": 32, "vocab_size": 64, "max_sequence_length": 16})
    model.save_weights(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5") as f:
        names = []
        f.visit(names.append)
    assert "layers/pa_lm_backbone/layers/reversible_embedding/vars/0" in names or \
        any(n.endswith("layers/reversible_embedding/vars/0") for n in names), names[:20]
    assert any(n.endswith("attention/query_dense/vars/0") for n in names)
