"""Checkpoint integrity (issue 15): every file of a checkpoint carries a sha256 in meta.json,
verified before a resume trusts it; a bad latest checkpoint is set aside (`corrupt-step_<n>`)
with a one-line warning and the previous good one is used; the good ones are never touched."""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
import pytest

from flanctl.backends import Placement
from flanctl.errors import FlanctlError
from flanctl.runs import RunDir
from flanctl.train.checkpoints import restore_latest, save_checkpoint, verify_checkpoint


def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(8)(inputs)))
    model.compile(optimizer=keras.optimizers.Adafactor(relative_step=False), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run_with_two(tmp_path):
    """A run with checkpoints at steps 1 and 2 (different weights)."""
    run = RunDir(tmp_path / "run")
    model = _tiny_model(0)
    place = Placement(backend="jax")
    x, y = np.ones((2, 4), "float32"), np.zeros((2, 3), "float32")
    for step in (1, 2):
        model.train_on_batch(x, y)
        save_checkpoint(run.checkpoints_dir, step, model, model.optimizer, {"index": step}, {"tokens": step}, place, "npz", keep=2)
    return run, place


def _restore(run, place):
    said = []
    fresh = _tiny_model(1)
    return restore_latest(run, fresh, fresh.optimizer, place, say=said.append), said


def test_meta_records_checksums_of_every_file(run_with_two):
    run, _ = run_with_two
    meta = json.loads((run.checkpoint_path(2) / "meta.json").read_text())
    assert set(meta["files"]) == {"variables.npz", "data_state_0.json"}
    assert verify_checkpoint(run.checkpoint_path(2))["step"] == 2


@pytest.mark.parametrize("damage, problem", [
    ("truncate", "checkpoint file variables.npz does not match its checksum (truncated or changed)"),
    ("flip", "checkpoint file variables.npz does not match its checksum (truncated or changed)"),
    ("delete", "checkpoint file variables.npz is missing"),
    ("state", "checkpoint file data_state_0.json does not match its checksum (truncated or changed)"),
    ("meta", "checkpoint has no readable meta.json (JSONDecodeError)"),
    ("meta_shape", "checkpoint meta.json is not a flanctl checkpoint record"),
])
def test_bad_latest_checkpoint_is_set_aside_and_the_previous_used(run_with_two, damage, problem):
    run, place = run_with_two
    latest = run.checkpoint_path(2)
    good = _digests(run.checkpoint_path(1))
    npz = latest / "variables.npz"
    if damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(npz.read_bytes())
        data[len(data) // 2] ^= 0xFF
        npz.write_bytes(bytes(data))
    elif damage == "delete":
        npz.unlink()
    elif damage == "state":
        (latest / "data_state_0.json").write_text('{"index": 99}')
    elif damage == "meta":
        (latest / "meta.json").write_text('{"step": 2, "fo')
    else:
        (latest / "meta.json").write_text("[]")
    restored, said = _restore(run, place)
    step, path, meta, data_state = restored
    assert (step, path, data_state) == (1, run.checkpoint_path(1), {"index": 1})
    assert said == [f"warning: {latest}: {problem}; set aside as corrupt-step_2, trying the checkpoint before it"]
    assert [s for s, _ in run.checkpoints()] == [1]
    assert (run.checkpoints_dir / "corrupt-step_2").is_dir()
    assert _digests(run.checkpoint_path(1)) == good  # the good checkpoint is untouched


def test_checkpoint_from_before_checksums_that_does_not_load(run_with_two):
    run, place = run_with_two
    latest = run.checkpoint_path(2)
    meta = json.loads((latest / "meta.json").read_text())
    del meta["files"]
    (latest / "meta.json").write_text(json.dumps(meta))
    (latest / "variables.npz").write_bytes(b"PK\x03\x04 not a zip")
    restored, said = _restore(run, place)
    assert restored[0] == 1
    assert len(said) == 1 and said[0].startswith(f"warning: {latest}: checkpoint does not load (BadZipFile: ")
    assert said[0].endswith("; set aside as corrupt-step_2, trying the checkpoint before it")


def test_all_checkpoints_bad_starts_afresh_with_warnings(run_with_two):
    run, place = run_with_two
    for step in (1, 2):
        (run.checkpoint_path(step) / "variables.npz").write_bytes(b"")
    restored, said = _restore(run, place)
    assert restored is None and len(said) == 2
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["corrupt-step_1", "corrupt-step_2"]


def test_a_checkpoint_of_another_model_is_an_error_not_corruption(run_with_two):
    run, place = run_with_two
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    wider = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16)(inputs)))
    wider.compile(optimizer="adam", loss="mse")
    wider.optimizer.build(wider.trainable_variables)
    with pytest.raises(FlanctlError, match="do not match the model built from the plan"):
        restore_latest(run, wider, wider.optimizer, place, say=print)
    assert [s for s, _ in run.checkpoints()] == [1, 2]  # nothing set aside


def test_several_processes_refuse_instead_of_setting_aside(run_with_two):
    run, _ = run_with_two
    (run.checkpoint_path(2) / "variables.npz").write_bytes(b"")
    place = Placement(backend="jax", process_index=0, process_count=2)
    fresh = _tiny_model(1)
    with pytest.raises(FlanctlError) as info:
        restore_latest(run, fresh, fresh.optimizer, place, say=print)
    assert str(info.value) == (f"{run.checkpoint_path(2)}: checkpoint file variables.npz does not match its checksum (truncated or "
                               "changed); move step_2 out of checkpoints/ to resume from the one before")
    assert [s for s, _ in run.checkpoints()] == [1, 2]


def test_truncated_export_is_one_line_naming_the_folder(tmp_path):
    from flanctl.evals.model_source import load_predictor
    from flanctl.models import build_model, save_preset

    arch = {"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "num_kv_heads": 1, "head_dim": 8, "ffn_dim": 32,
            "vocab_size": 259, "max_sequence_length": 64}
    export = tmp_path / "export"
    save_preset(build_model(arch, "palm"), export, tokenizer=None)
    weights = export / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    before = _digests(export)
    with pytest.raises(FlanctlError) as info:
        load_predictor(checkpoint=str(export))
    message = str(info.value)
    assert message.startswith(f"{export}: the saved model does not load (OSError: Unable to synchronously open file")
    assert message.endswith("; the folder is damaged or incomplete: restore it, or evaluate a checkpoint with --checkpoint DIR")
    assert "\n" not in message and _digests(export) == before
