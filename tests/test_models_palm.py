"""PaLM backbone and causal LM: parameter counts, masking, saving, backends (real tiny models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras
import keras_hub

from flanctl.catalog.models import SIZES, param_count
from flanctl.errors import FlanctlError
from flanctl.models import abstract_param_count, build_model, load_model, save_preset

REPO = Path(__file__).resolve().parents[1]
TINY = dict(SIZES["palm"]["tiny"], vocab_size=259)


def batch(token_rows, segment_rows=None, position_rows=None):
    ids = np.asarray(token_rows, dtype=np.int32)
    seg = np.ones_like(ids) if segment_rows is None else np.asarray(segment_rows, dtype=np.int32)
    if position_rows is None:
        pos = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int32), ids.shape).copy()
    else:
        pos = np.asarray(position_rows, dtype=np.int32)
    return {"token_ids": ids, "segment_ids": seg, "positions": pos}


@pytest.fixture(scope="module")
def tiny_lm():
    keras.utils.set_random_seed(1)
    return build_model(TINY, "palm")


@pytest.mark.parametrize(
    "arch",
    [
        TINY,
        dict(SIZES["palm"]["mini"], vocab_size=300),
        dict(TINY, num_kv_heads=2),  # grouped-query attention
    ],
    ids=["tiny-mqa", "mini", "tiny-gqa2"],
)
def test_param_count_matches_catalog_by_real_counting(arch):
    model = build_model(arch, "palm")
    assert model.count_params() == param_count("palm", arch)
    assert model.backbone.count_params() == param_count("palm", arch)  # tied: the task adds nothing


@pytest.mark.parametrize("size", ["8b", "62b", "540b"])
def test_param_count_paper_sizes_abstract(size):
    arch = SIZES["palm"][size]
    assert abstract_param_count(arch, "palm") == param_count("palm", arch)


def test_palm_8b_is_8_63_billion():
    assert abstract_param_count(SIZES["palm"]["8b"], "palm") == 8_632_012_800


def test_no_biases_and_scale_only_norms(tiny_lm):
    names = [v.path for v in tiny_lm.weights]
    assert not [n for n in names if "bias" in n or "beta" in n]
    norms = [n for n in names if "layer_norm" in n]
    # one norm per parallel block plus the final one, each a single scale vector
    assert len(norms) == TINY["num_layers"] + 1
    assert all(n.endswith("gamma") for n in norms)


def test_logits_shape_and_dtype(tiny_lm):
    out = tiny_lm(batch(np.random.default_rng(0).integers(3, 259, (2, 9))))
    assert tuple(out.shape) == (2, 9, 259)
    assert str(out.dtype) == "float32"


def test_causal_later_tokens_do_not_change_earlier_logits(tiny_lm):
    rng = np.random.default_rng(1)
    a = rng.integers(3, 259, (1, 10))
    b = a.copy()
    b[0, 6:] = rng.integers(3, 259, 4)
    la, lb = np.asarray(tiny_lm(batch(a))), np.asarray(tiny_lm(batch(b)))
    np.testing.assert_allclose(la[0, :6], lb[0, :6], atol=1e-5)
    assert np.abs(la[0, 6:] - lb[0, 6:]).max() > 1e-3


def test_packed_segments_do_not_see_each_other(tiny_lm):
    rng = np.random.default_rng(2)
    first, second = rng.integers(3, 259, 5), rng.integers(3, 259, 7)
    packed = np.concatenate([first, second, [0, 0, 0]])[None]
    seg = np.array([[1] * 5 + [2] * 7 + [0] * 3])
    pos = np.array([list(range(5)) + list(range(7)) + [0] * 3])
    out = np.asarray(tiny_lm(batch(packed, seg, pos)))[0]
    alone_first = np.asarray(tiny_lm(batch(first[None])))[0]
    alone_second = np.asarray(tiny_lm(batch(second[None])))[0]
    np.testing.assert_allclose(out[:5], alone_first, atol=1e-4)
    np.testing.assert_allclose(out[5:12], alone_second, atol=1e-4)


@pytest.fixture
def attention_path():
    """Force the fused (`keras.ops.dot_product_attention`) or explicit attention path."""
    from flanctl.models.palm import layers

    yield lambda fused: setattr(layers, "FUSED_ATTENTION", fused)
    layers.FUSED_ATTENTION = "auto"


def test_fused_attention_equals_explicit_on_packed_rows(tiny_lm, attention_path):
    """The fused path (used on jax GPUs) gives the explicit path's logits and gradients, with
    packed segments, padding and grouped queries; the segment mask holds in both."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(5)
    seg = np.array([[1] * 9 + [2] * 14 + [0] * 9, [1] * 20 + [2] * 12])
    pos = np.array([list(range(9)) + list(range(14)) + [0] * 9, list(range(20)) + list(range(12))])
    x = batch(rng.integers(3, 259, (2, 32)), seg, pos)
    for model in (tiny_lm, build_model(dict(TINY, num_kv_heads=2), "palm")):
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        def loss(tv):
            logits, _ = model.stateless_call(tv, ntv, x)
            return jnp.sum(jnp.where(seg[..., None] > 0, logits, 0.0) ** 2), logits

        results = {}
        for fused in (False, True):
            attention_path(fused)
            (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(tv)
            results[fused] = (np.asarray(logits), [np.asarray(g) for g in grads])
        real = seg > 0
        np.testing.assert_allclose(results[True][0][real], results[False][0][real], atol=1e-4)
        for a, b in zip(results[True][1], results[False][1]):
            np.testing.assert_allclose(a, b, atol=1e-4 * max(1.0, np.abs(b).max()))
    # and the fused path keeps packed examples apart
    attention_path(True)
    alone = np.asarray(tiny_lm(batch(x["token_ids"][:1, 9:23])))[0]
    np.testing.assert_allclose(np.asarray(tiny_lm(x))[0, 9:23], alone, atol=1e-4)


def test_fused_attention_only_where_it_is_exact(attention_path):
    from flanctl.models.palm.layers import _use_fused

    attention_path("auto")
    assert _use_fused(False, 0.0) is False  # these tests run on CPU: explicit einsums
    attention_path(True)
    assert _use_fused(True, 0.1) is False  # attention dropout needs the probabilities
    assert _use_fused(False, 0.1) is True  # inference ignores dropout


def test_rotary_uses_positions_input(tiny_lm):
    ids = np.random.default_rng(3).integers(3, 259, (1, 6))
    a = np.asarray(tiny_lm(batch(ids)))
    b = np.asarray(tiny_lm(batch(ids, position_rows=np.arange(6)[None] + 5)))
    # relative positions are unchanged, so rotary attention is invariant to the shift
    np.testing.assert_allclose(a, b, atol=1e-4)
    c = np.asarray(tiny_lm(batch(ids, position_rows=np.array([[0, 2, 4, 6, 8, 10]]))))
    assert np.abs(a[0, 1:] - c[0, 1:]).max() > 1e-4


def test_dropout_only_in_training():
    model = build_model(TINY, "palm", dropout=0.5)
    x = batch(np.random.default_rng(4).integers(3, 259, (2, 8)))
    infer1, infer2 = np.asarray(model(x)), np.asarray(model(x))
    np.testing.assert_array_equal(infer1, infer2)
    train = np.asarray(model(x, training=True))
    assert np.abs(train - infer1).max() > 1e-3


def test_mixed_bfloat16_policy_gives_float32_logits():
    model = build_model(TINY, "palm", dtype="mixed_bfloat16")
    assert model.backbone.transformer_layers[0].compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.weights)
    out = model(batch(np.random.default_rng(5).integers(3, 259, (1, 8))))
    assert str(out.dtype) == "float32" and np.isfinite(np.asarray(out)).all()


def test_build_model_accepts_the_plan_model_section():
    model = build_model({"family": "palm", "size": "tiny", "params": 1, "architecture": TINY}, "palm")
    assert model.count_params() == param_count("palm", TINY)


def test_build_model_errors_are_one_line():
    with pytest.raises(FlanctlError, match="lacks vocab_size"):
        build_model({"num_layers": 2, "hidden_dim": 8, "num_heads": 2}, "palm")
    with pytest.raises(FlanctlError, match="load_model"):
        build_model(TINY, "preset")
    with pytest.raises(FlanctlError, match="unknown model family"):
        build_model(TINY, "gpt")


def test_preset_roundtrip_through_keras_hub(tiny_lm, tmp_path):
    x = batch(np.random.default_rng(6).integers(3, 259, (2, 7)))
    expected = np.asarray(tiny_lm(x))
    save_preset(tiny_lm, tmp_path / "preset")
    files = {p.name for p in (tmp_path / "preset").iterdir()}
    assert {"config.json", "task.json", "model.weights.h5", "metadata.json", "flanctl.json"} <= files
    meta = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert meta["parameter_count"] == param_count("palm", TINY)
    via_hub = keras_hub.models.CausalLM.from_preset(str(tmp_path / "preset"))
    np.testing.assert_allclose(np.asarray(via_hub(x)), expected, atol=1e-6)
    backbone = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    assert type(backbone).__name__ == "PaLMBackbone"
    model, tokenizer = load_model(tmp_path / "preset")
    np.testing.assert_allclose(np.asarray(model(x)), expected, atol=1e-6)
    assert tokenizer is not None and tokenizer.vocab_size == 259  # byte tokenizer recorded


def test_load_model_errors(tmp_path):
    with pytest.raises(FlanctlError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(FlanctlError, match="not found"):
        load_model(str(tmp_path / "missing" / "dir"))


_BACKEND_SCRIPT = r"""
import os, sys
import numpy as np
import keras, keras_hub
import flanctl.models.palm
model = keras_hub.models.CausalLM.from_preset(sys.argv[1])
x = dict(np.load(sys.argv[2]))
out = model(x)
np.save(sys.argv[3], keras.ops.convert_to_numpy(out))
"""


@pytest.mark.slow  # two subprocesses importing tensorflow and torch: ~1-2 min on 2 busy cores
def test_forward_on_tensorflow_and_torch_matches_jax(tiny_lm, tmp_path):
    rng = np.random.default_rng(7)
    seg = np.array([[1] * 6 + [2] * 4 + [0] * 2, [1] * 12])
    pos = np.array([list(range(6)) + list(range(4)) + [0, 0], list(range(12))])
    x = batch(rng.integers(3, 259, (2, 12)), seg, pos)
    expected = np.asarray(tiny_lm(x))
    save_preset(tiny_lm, tmp_path / "preset")
    np.savez(tmp_path / "x.npz", **x)
    procs = {}
    for backend in ("tensorflow", "torch"):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
        procs[backend] = subprocess.Popen(
            [sys.executable, "-c", _BACKEND_SCRIPT, str(tmp_path / "preset"), str(tmp_path / "x.npz"), str(tmp_path / f"{backend}.npy")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    for backend, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{backend}: {err[-2000:]}"
        got = np.load(tmp_path / f"{backend}.npy")
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=backend)
