"""Sharding layouts: every palm weight is covered, and a sharded forward equals the unsharded one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flanctl.errors import FlanctlError
from flanctl.models.families.palm import PALM_RULES
from flanctl.models.layouts import layout_rules

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import json, re, sys
import numpy as np
import jax, keras
from flanctl.catalog.models import SIZES
from flanctl.models import build_model, layout_map
from flanctl.models.families.palm import PALM_RULES

assert len(jax.devices()) == 8, jax.devices()
arch = dict(SIZES["palm"]["tiny"], vocab_size=259)
keras.utils.set_random_seed(0)
plain = build_model(arch, "palm")
rng = np.random.default_rng(0)
x = {"token_ids": rng.integers(3, 259, (4, 16)).astype("int32"),
     "segment_ids": np.array([[1] * 16, [1] * 8 + [2] * 8, [1] * 12 + [0] * 4, [1] * 16], "int32"),
     "positions": np.tile(np.arange(16, dtype="int32"), (4, 1))}
expected = np.asarray(plain(x))

mesh = keras.distribution.DeviceMesh((2, 4), ("data", "model"), devices=jax.devices())
dist = keras.distribution.ModelParallel(layout_map=layout_map("palm", mesh), batch_dim_name="data")
with dist.scope():
    sharded = build_model(arch, "palm")
sharded.set_weights(plain.get_weights())
report = {"uncovered": [], "sharded": 0}
for v in sharded.weights:
    matched = any(re.fullmatch(p, v.path) for p, _ in PALM_RULES)
    is_norm = "layer_norm" in v.path
    if not matched and not is_norm:
        report["uncovered"].append(v.path)
    spec = v.value.sharding.spec
    if any(axis is not None for axis in spec):
        report["sharded"] += 1
    if "attention/key" in v.path or "attention/value" in v.path:
        assert "model" not in tuple(spec) and tuple(spec)[0] == "data", (v.path, spec)  # MQA head replicated on model
    if "attention/query" in v.path:
        assert tuple(spec)[1] == "model", (v.path, spec)
with dist.scope():
    got = np.asarray(sharded(x))
report["max_abs_diff"] = float(np.abs(got - expected).max())
report["n_weights"] = len(sharded.weights)
print("REPORT" + json.dumps(report))
"""


def test_palm_layout_covers_every_weight_and_matches_unsharded(tmp_path):
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("REPORT"))
    report = json.loads(line[len("REPORT"):])
    assert report["uncovered"] == []
    # embeddings + per layer: query, output, gate, up, down
    assert report["sharded"] == 1 + 2 * 7  # embedding + q, k, v, out, gate, up, down per layer (2 layers)
    assert report["max_abs_diff"] < 1e-4


def test_layout_rules_per_family():
    assert layout_rules("palm") is PALM_RULES and layout_rules("u-palm") is PALM_RULES
    assert any("reverse_embeddings" in p for p, _ in layout_rules("t5"))
    with pytest.raises(FlanctlError, match="mesh.model: 1"):
        layout_rules("preset")
