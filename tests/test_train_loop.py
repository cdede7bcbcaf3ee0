"""The training loop end to end on the jax backend: real spec -> plan -> data stream -> palm model.

Covers: loss goes down, metrics.jsonl / TensorBoard / state.json / checkpoints / export,
gradient accumulation, and resume after a real SIGKILL of a training process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from flanctl.errors import FlanctlError
from flanctl.runs import RunDir

SPEC = """\
apiVersion: flanctl/v1
name: {name}
model:
  family: palm
  architecture: {{num_layers: 2, hidden_dim: 32, num_heads: 4, num_kv_heads: 1, head_dim: 8, ffn_dim: 64, vocab_size: 259, max_sequence_length: 64}}
  tokenizer: {{kind: byte}}
mixture:
  collections:
    - {{name: builtin, proportion: 1.0, cap: 100}}
  few_shot: {{min_shots: 0, max_shots: 1}}
  inputs_length: 48
  targets_length: 16
train: {{learning_rate: 0.01, batch_size: 8, steps: {steps}, dropout: {dropout}, precision: float32, checkpoint_every: {ckpt}, log_every: {log}, grad_accum: {accum}}}
distribution: {{backend: {backend}, device: cpu}}
"""


@pytest.fixture(autouse=True, scope="session")
def jax_compile_cache(tmp_path_factory):
    """Share compiled XLA programs between the runs of this session (in-process and children):
    every run builds the same tiny model, so only the first one pays for compilation."""
    path = str(tmp_path_factory.mktemp("jax-compile-cache"))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def make_plan(tmp_path: Path, name: str = "t", steps: int = 12, ckpt: int = 4, log: int = 1, accum: int = 1, dropout: float = 0.0,
              backend: str = "jax", settings: tuple[str, ...] = ()):
    """The plan of the tiny spec, run directory under tmp_path/runs; `settings` are `--set` overrides."""
    from flanctl.plan import make_plan as plan_of
    from flanctl.spec import load_spec

    spec = tmp_path / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, steps=steps, ckpt=ckpt, log=log, accum=accum, dropout=dropout, backend=backend))
    return plan_of(load_spec(spec, list(settings)), runs_root=tmp_path / "runs", overrides=list(settings))


def losses(run: RunDir) -> list[float]:
    return [json.loads(line)["loss"] for line in run.metrics_path.read_text().splitlines()]


def weights(model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v.value) for v in model.variables]


def train_in_process(plan, export=False):
    from flanctl.train.trainer import Trainer

    trainer = Trainer(plan, RunDir(plan.run.dir), export=export)
    trainer.setup()
    result = trainer.run_loop()
    return trainer, result


def test_train_export_and_resume_from_checkpoint(tmp_path, capsys):
    plan = make_plan(tmp_path, name="whole", steps=16, ckpt=5, log=2, dropout=0.05)
    trainer, result = train_in_process(plan, export=True)
    run = RunDir(plan.run.dir)
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(2, 17, 2))
    assert set(rows[0]) == {"step", "loss", "lr", "tokens", "tokens_per_s", "mfu", "time"}
    assert rows[-1]["loss"] < rows[0]["loss"]  # it learns
    assert rows[-1]["tokens"] == 16 * 8 * 64
    assert result["params"] == plan.model.params  # the model the plan counted
    assert [s for s, _ in run.checkpoints()] == [15, 16]  # keep_checkpoints=2, the end is saved
    assert list(run.tb_dir.glob("events.out.tfevents.*"))
    state = run.read_state()
    assert state["status"] == "completed" and state["step"] == 16 and state["checkpoint"].endswith("step_16")

    # The export is a keras-hub preset that plain keras-hub reloads with the same logits.
    import keras_hub

    import flanctl.models.palm  # noqa: F401  (registers the palm classes with keras)

    reloaded = keras_hub.models.CausalLM.from_preset(str(run.export_dir))
    batch = {k: v[:2] for k, v in next(iter(trainer.stream)).items() if k not in ("targets", "loss_mask")}
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(batch)), keras.ops.convert_to_numpy(trainer.model(batch)), atol=1e-5
    )

    # A run stopped after its step-10 checkpoint and applied again with 16 steps resumes there
    # (weights, optimizer, dropout seeds, data order) and ends where the uninterrupted one did.
    part = make_plan(tmp_path, name="part", steps=10, ckpt=5, log=2, dropout=0.05)
    train_in_process(part)
    capsys.readouterr()
    part = make_plan(tmp_path, name="part", steps=16, ckpt=5, log=2, dropout=0.05)
    resumed, _ = train_in_process(part)
    assert "resuming from step 10" in capsys.readouterr().out
    assert losses(RunDir(part.run.dir)) == pytest.approx(losses(run), rel=1e-5)
    for got, want in zip(weights(resumed.model), weights(trainer.model)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # model.checkpoint: a new run starts from the exported weights, not from scratch.
    warm = make_plan(tmp_path, name="warm", steps=1, ckpt=1, log=1, dropout=0.05, settings=(f"model.checkpoint={run.export_dir}",))
    warm_trainer, _ = train_in_process(warm)
    assert losses(RunDir(warm.run.dir))[0] < rows[0]["loss"] - 0.3


@pytest.mark.slow
def test_grad_accumulation_matches_one_big_batch(tmp_path):
    """Two micro-batches of 4 give the update of one batch of 8: same data, same steps."""
    _, one = train_in_process(make_plan(tmp_path, name="one", steps=3, ckpt=10))
    t2, two = train_in_process(make_plan(tmp_path, name="two", steps=3, ckpt=10, accum=2))
    assert int(keras.ops.convert_to_numpy(t2.optimizer.iterations)) == 3  # 6 micro-batches, 3 updates
    l1, l2 = losses(RunDir(tmp_path / "runs/one")), losses(RunDir(tmp_path / "runs/two"))
    # Same batches and start; the loss is the token mean over the whole batch either way
    # (float32 sums in another order: measured differences are ~1e-6).
    assert l2 == pytest.approx(l1, rel=1e-4)
    assert one["tokens"] == two["tokens"]
    with pytest.raises(FlanctlError, match="grad_accum"):
        train_in_process(make_plan(tmp_path, name="bad", steps=1, accum=3))


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_equals_uninterrupted(tmp_path, capsys):
    """A worker process is SIGKILLed after its first checkpoint; re-applying resumes there and
    ends with the same weights and per-step losses as a run that was never interrupted."""
    plan = make_plan(tmp_path, name="killed", steps=40, ckpt=5, dropout=0.05)
    run = RunDir(plan.run.dir)
    run.root.mkdir(parents=True)
    plan_file = plan.save(tmp_path / "plan.json")
    proc = subprocess.Popen([sys.executable, "-m", "flanctl.apply.worker", str(plan_file), str(run.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not run.checkpoints() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = run.latest_checkpoint()[0]
    assert 5 <= killed_at < 40 and run.read_state().get("status") == "training"

    from flanctl.train import run_training

    resumed = run_training(plan, run)
    assert f"resuming from step {killed_at}" in capsys.readouterr().out
    resumed_model_weights = weights_from_checkpoint(run)

    reference_plan = make_plan(tmp_path, name="whole", steps=40, ckpt=40, dropout=0.05)
    trainer, whole = train_in_process(reference_plan)
    assert resumed["step"] == whole["step"] == 40
    assert [r for r in losses(run)] == pytest.approx(losses(RunDir(reference_plan.run.dir)), rel=1e-5, abs=1e-6)
    for got, want in zip(resumed_model_weights, weights(trainer.model)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def weights_from_checkpoint(run: RunDir) -> list[np.ndarray]:
    step, path = run.latest_checkpoint()
    with np.load(path / "variables.npz") as arrays:
        return [arrays[k] for k in sorted(arrays.files) if k.startswith("m")]

