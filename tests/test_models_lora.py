"""LoRA (`train.lora`): adapters on the attention projections of every family, everything else
frozen; the plan's trainable count equals the model's; exports merge the adapters."""

from __future__ import annotations

import numpy as np
import pytest

import keras

from flanctl.catalog.models import SIZES
from flanctl.models import get_family
from flanctl.models.lora import enable_lora, trainable_count
from flanctl.plan import make_plan
from flanctl.plan.make import lora_trainable_params
from flanctl.spec import load_spec

SPEC = """\
apiVersion: flanctl/v1
name: lora
model: {{family: {family}, size: tiny}}
mixture:
  collections:
    - {{name: builtin, proportion: 1.0, cap: 20}}
  inputs_length: 32
  targets_length: 16
train: {{batch_size: 2, steps: 4, precision: float32, lora: {{rank: 4, alpha: 8, targets: {targets}}}}}
"""


def plan_for(tmp_path, family, targets="[query, value]"):
    path = tmp_path / f"{family}.yaml"
    path.write_text(SPEC.format(family=family, targets=targets))
    return make_plan(load_spec(path), runs_root=tmp_path / "runs")


def t5_batch(b=2, le=7, ld=5, seed=0):
    rng = np.random.default_rng(seed)
    enc, dec = rng.integers(3, 259, (b, le)).astype(np.int32), rng.integers(3, 259, (b, ld)).astype(np.int32)
    pos = lambda a: np.broadcast_to(np.arange(a.shape[1], dtype=np.int32), a.shape).copy()  # noqa: E731
    return {"encoder_token_ids": enc, "encoder_segment_ids": np.ones_like(enc), "encoder_positions": pos(enc),
            "decoder_token_ids": dec, "decoder_segment_ids": np.ones_like(dec), "decoder_positions": pos(dec)}


@pytest.mark.parametrize("family,targets", [("t5", "[query, value]"), ("palm", "[query, key, value]")])
def test_plan_counts_the_trainable_parameters_the_model_has(tmp_path, family, targets):
    plan = plan_for(tmp_path, family, targets)
    expected = lora_trainable_params(plan.spec, plan.model.architecture, plan.model.encoder_decoder)
    assert any(f"{expected:,} trainable parameters" in n for n in plan.notes)
    keras.utils.set_random_seed(0)
    model = get_family(family).build(plan.model.architecture)
    total = model.count_params()
    assert enable_lora(model, 4, 8.0, plan.spec.train.lora.targets) == expected
    assert trainable_count(model) == expected < total / 5  # far fewer than the whole model
    assert model.count_params() == total + expected


def test_lora_trains_only_adapters_and_exports_merged(tmp_path):
    family = get_family("t5")
    keras.utils.set_random_seed(1)
    model = family.build(dict(SIZES["t5"]["tiny"], vocab_size=259))
    enable_lora(model, 4, 8.0, ["query", "value"])
    frozen = [np.array(v) for v in model.non_trainable_variables]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = t5_batch()
    targets = np.roll(batch["decoder_token_ids"], -1, axis=1)
    losses = [float(np.ravel(model.train_on_batch(batch, targets))[0]) for _ in range(8)]
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(frozen, model.non_trainable_variables))
    logits = np.asarray(model(batch))
    # Keras merges the adapters into the kernels when it saves: the export is a plain t5.
    out = family.export(model, tmp_path / "export")
    reloaded, _ = family.load(str(out))
    assert not any("lora" in v.path for v in reloaded.variables)
    assert np.abs(np.asarray(reloaded(batch)) - logits).max() < 1e-5


def test_lora_has_no_adapter_dropout_setting(tmp_path):
    """Keras' LoRA layers have no adapter dropout, so the spec has no such field: it is an unknown key."""
    from flanctl.errors import SpecError

    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(family="t5", targets="[query]").replace("targets: [query]", "targets: [query], dropout: 0.1"))
    with pytest.raises(SpecError, match=r"lora.*dropout"):
        load_spec(path)


@pytest.mark.slow
def test_lora_apply_on_hf_t5_resumes_exactly_and_exports_merged(tmp_path, apply_spec):
    """`flanctl apply` with train.lora on an HF T5 v1.1-shaped folder: 3 steps then a resume to
    6 equals 6 uninterrupted steps bit for bit; the export (adapters merged) goes to transformers."""
    pytest.importorskip("transformers")
    import subprocess
    import sys

    import hf_tiny

    folder = hf_tiny.t5_folder(tmp_path / "t5")
    spec = (f"apiVersion: flanctl/v1\nname: {{name}}\nmodel:\n  family: t5\n  checkpoint: {folder}\n"
            f"  tokenizer: {{{{kind: sentencepiece, path: {folder}/spiece.model}}}}\n"
            "mixture:\n  collections:\n    - {{name: builtin, proportion: 1.0, cap: 50}}\n  inputs_length: 64\n  targets_length: 32\n"
            "train: {{batch_size: 4, steps: {steps}, precision: float32, learning_rate: 3.0e-3, log_every: 1, "
            "checkpoint_every: 3, lora: {{rank: 4, alpha: 8}}}}\n")
    (tmp_path / "full.yaml").write_text(spec.format(name="full", steps=6))
    full, losses = apply_spec(tmp_path, "full.yaml", "full")
    (tmp_path / "part.yaml").write_text(spec.format(name="part", steps=3))
    apply_spec(tmp_path, "part.yaml", "part")
    (tmp_path / "part.yaml").write_text(spec.format(name="part", steps=6))
    part, resumed = apply_spec(tmp_path, "part.yaml", "part")
    assert resumed == losses and len(losses) == 6
    family = get_family("t5")
    a, tokenizer = family.load(str(full / "export"))
    b, _ = family.load(str(part / "export"))
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    assert not any("lora" in v.path for v in a.variables)
    proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "export", "full", "--format", "hf"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    enc = family.frame_prompt(tokenizer.encode(hf_tiny.PROBE), tokenizer)
    dec = [0] + enc[:4]
    ours = np.asarray(a(t5_batch_of(enc, dec)))
    assert np.abs(ours - hf_tiny.hf_t5_logits(full / "export_hf", [enc], [dec])).max() < 2e-5


def t5_batch_of(enc, dec):
    enc, dec = np.asarray([enc], np.int32), np.asarray([dec], np.int32)
    pos = lambda a: np.arange(a.shape[1], dtype=np.int32)[None]  # noqa: E731
    return {"encoder_token_ids": enc, "encoder_segment_ids": np.ones_like(enc), "encoder_positions": pos(enc),
            "decoder_token_ids": dec, "decoder_segment_ids": np.ones_like(dec), "decoder_positions": pos(dec)}
