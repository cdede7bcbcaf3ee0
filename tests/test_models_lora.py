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
    losses = [float(model.train_on_batch(batch, targets)) for _ in range(8)]
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(frozen, model.non_trainable_variables))
    logits = np.asarray(model(batch))
    # Keras merges the adapters into the kernels when it saves: the export is a plain t5.
    out = family.export(model, tmp_path / "export")
    reloaded, _ = family.load(str(out))
    assert not any("lora" in v.path for v in reloaded.variables)
    assert np.abs(np.asarray(reloaded(batch)) - logits).max() < 1e-5


def test_lora_dropout_is_refused(tmp_path):
    from flanctl.errors import SpecError

    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(family="t5", targets="[query]").replace("targets: [query]", "targets: [query], dropout: 0.1"))
    with pytest.raises(SpecError, match="lora.dropout"):
        load_spec(path)
