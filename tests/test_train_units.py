"""Unit tests of the train room's pieces: schedules, optimizers, loss, TB events, checkpoints."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from flanctl.backends import Placement, get_backend
from flanctl.errors import FlanctlError
from flanctl.runs import RunDir
from flanctl.spec.models import Spec, TrainSpec
from flanctl.train.checkpoints import restore_checkpoint, save_checkpoint
from flanctl.train.metrics_log import MetricsLog, truncate_metrics
from flanctl.train.optimizers import build_optimizer
from flanctl.train.schedules import WarmupSchedule
from flanctl.train.synthetic_stream import SyntheticStream
from flanctl.train.tb_events import EventWriter, crc32c
from flanctl.train.throughput import mfu, peak_flops
from flanctl.train.trainer import masked_loss, micro_batches


def lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_schedules_warmup_then_decay():
    const = WarmupSchedule(1e-3, "constant", warmup=10, total=100)
    assert lr(const, 0) == pytest.approx(1e-4)
    assert lr(const, 9) == pytest.approx(1e-3)
    assert lr(const, 99) == pytest.approx(1e-3)
    linear = WarmupSchedule(1e-3, "linear", warmup=0, total=100)
    assert lr(linear, 50) == pytest.approx(5e-4)
    cosine = WarmupSchedule(2e-3, "cosine", warmup=0, total=100)
    assert lr(cosine, 50) == pytest.approx(1e-3, rel=1e-5)
    assert lr(cosine, 100) == pytest.approx(0.0, abs=1e-9)
    rsqrt = WarmupSchedule(1e-2, "rsqrt", warmup=4, total=100)
    assert lr(rsqrt, 16) == pytest.approx(1e-2 * math.sqrt(4 / 16))
    # With accumulation Keras counts micro-steps; the schedule counts optimizer steps.
    accum = WarmupSchedule(1e-3, "linear", warmup=0, total=100, accum=4)
    assert lr(accum, 200) == pytest.approx(lr(linear, 50))
    with pytest.raises(ValueError):
        WarmupSchedule(1e-3, "step")
    assert WarmupSchedule.from_config(cosine.get_config()).get_config() == cosine.get_config()


def test_build_optimizer_kinds_clipping_and_accumulation():
    base = {"learning_rate": 1e-3, "steps": 10}
    ada = build_optimizer(TrainSpec(**base, optimizer="adafactor", max_grad_norm=1.0))
    from flanctl.train.adafactor import FactoredAdafactor

    assert isinstance(ada, FactoredAdafactor)
    assert ada.relative_step is False and ada.global_clipnorm == 1.0
    adamw = build_optimizer(TrainSpec(**base, optimizer="adamw", weight_decay=0.1, grad_accum=4))
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.weight_decay == pytest.approx(0.1)
    assert adamw.gradient_accumulation_steps == 4


def test_masked_loss_is_mean_over_target_tokens_only():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7)).astype("float32")
    targets = rng.integers(0, 7, size=(2, 5))
    mask = np.array([[0, 0, 1, 1, 1], [0, 1, 0, 0, 0]], "float32")
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    expected = (nll * mask).sum() / mask.sum()
    got = float(keras.ops.convert_to_numpy(masked_loss()(targets, logits, sample_weight=mask)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_micro_batches_split_rows_and_reject_uneven():
    batch = next(SyntheticStream(4, 16, 50))
    parts = micro_batches(batch, 2)
    assert [p["token_ids"].shape for p in parts] == [(2, 16), (2, 16)]
    np.testing.assert_array_equal(np.concatenate([p["targets"] for p in parts]), batch["targets"])
    with pytest.raises(FlanctlError, match="grad_accum"):
        micro_batches(batch, 3)


def test_synthetic_stream_state_resumes_same_batches():
    a = SyntheticStream(2, 16, 50, seed=3)
    next(a)
    state = a.get_state()
    want = next(a)
    b = SyntheticStream(2, 16, 50, seed=0)
    b.set_state(state)
    got = next(b)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    # targets are next tokens, and the mask only covers target positions inside a segment
    assert np.all(want["targets"][:, :-1][want["loss_mask"][:, :-1] > 0] == want["token_ids"][:, 1:][want["loss_mask"][:, :-1] > 0])
    assert np.all(want["segment_ids"][want["loss_mask"] > 0] > 0)


def test_crc32c_known_vector():
    assert crc32c(b"123456789") == 0xE3069283


def test_tensorboard_events_read_back_with_tensorflow(tmp_path):
    tf = pytest.importorskip("tensorflow")
    writer = EventWriter(tmp_path)
    writer.scalars(5, {"train/loss": 2.5, "train/lr": 1e-3})
    writer.scalars(10, {"train/loss": 1.25})
    writer.close()
    seen = []
    for event in tf.compat.v1.train.summary_iterator(str(writer.path)):
        for value in event.summary.value:
            seen.append((event.step, value.tag, round(value.simple_value, 6)))
    assert seen == [(5, "train/loss", 2.5), (5, "train/lr", 0.001), (10, "train/loss", 1.25)]


def test_metrics_log_truncates_steps_after_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path, tmp_path / "tb")
    for step in (10, 20, 30):
        log.log({"step": step, "loss": 1.0 / step, "lr": 0.1, "tokens": step, "tokens_per_s": 1.0, "mfu": 0.0, "time": 0.0})
    log.close()
    with open(path, "a") as fh:
        fh.write('{"step": 40, "lo')  # a line cut short by SIGKILL
    truncate_metrics(path, 20)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20]


def test_mfu_and_peak_from_plan():
    spec = Spec.model_validate({"distribution": {"device": "h100", "mesh": {"data": 2, "model": 4}, "processes": {"devices_per_process": 8}}})
    assert peak_flops(SimpleNamespace(spec=spec, compute=None)) == pytest.approx(8 * 989e12)
    # the plan's own device figure wins over the table
    assert peak_flops(SimpleNamespace(spec=spec, compute={"time": {"device_peak_flops": 5.0}})) == 40.0
    assert mfu(1_000_000, 1000.0, 6e9) == pytest.approx(1.0)


def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dropout(0.1)(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    model.compile(optimizer=keras.optimizers.Adafactor(relative_step=False), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_checkpoint_roundtrip_atomic_and_pruned(tmp_path):
    run = RunDir(tmp_path / "run")
    model = _tiny_model(0)
    x, y = np.ones((2, 4), "float32"), np.zeros((2, 3), "float32")
    model.train_on_batch(x, y)
    place = Placement(backend="jax")
    (run.checkpoints_dir / "tmp-step_1").mkdir(parents=True)  # a save killed half-way
    for step in (1, 2, 3):
        save_checkpoint(run.checkpoints_dir, step, model, model.optimizer, {"index": step}, {"tokens": 8 * step}, place, "npz", keep=2)
    assert [s for s, _ in run.checkpoints()] == [2, 3]
    assert not any(p.name.startswith("tmp-") for p in run.checkpoints_dir.iterdir())
    other = _tiny_model(1)
    meta, state = restore_checkpoint(run.latest_checkpoint()[1], other, other.optimizer, place)
    assert meta["step"] == 3 and meta["tokens"] == 24 and state == {"index": 3}
    for a, b in zip(model.variables + model.optimizer.variables, other.variables + other.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    model = _tiny_model(0)
    save_checkpoint(tmp_path, 1, model, model.optimizer, {}, {}, Placement(backend="jax"), "npz", keep=1)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    wider = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(8)(keras.layers.Dense(8)(inputs))))
    wider.compile(optimizer="adam", loss="mse")
    wider.optimizer.build(wider.trainable_variables)
    with pytest.raises(FlanctlError, match="do not match"):
        restore_checkpoint(tmp_path / "step_1", wider, wider.optimizer, Placement(backend="jax"))


def test_backends_registry_and_bad_meshes():
    with pytest.raises(FlanctlError, match="unknown backend"):
        get_backend("mxnet")
    jax_backend = get_backend("jax")
    assert jax_backend.discover_devices()
    with pytest.raises(FlanctlError, match="needs 8 devices"):
        jax_backend.setup({"mesh": {"data": 2, "model": 4}})
    with pytest.raises(FlanctlError, match="coordinator"):
        jax_backend.setup({"processes": {"count": 2}})
    with pytest.raises(FlanctlError, match="model parallelism needs backend jax"):
        get_backend("torch").setup({"mesh": {"model": 2}})
    single = jax_backend.setup({})
    assert single.is_chief and single.process_count == 1 and jax_backend.checkpoint_format(single) == "npz"


def test_run_training_picks_a_child_process_when_keras_runs_another_backend():
    from flanctl.train.job import needs_child as _needs_child

    def plan(backend, per_process=1):
        return SimpleNamespace(spec=Spec.model_validate({"distribution": {"backend": backend, "device": "cpu", "processes": {"devices_per_process": per_process}}}))

    assert keras.backend.backend() == "jax"  # tests/conftest.py
    assert _needs_child(plan("torch")) and _needs_child(plan("tensorflow"))
    assert not _needs_child(plan("jax"))
    # a CPU mesh needs virtual devices that this (already started) jax does not have
    assert _needs_child(plan("jax", per_process=8))
