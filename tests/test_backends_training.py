"""The same tiny spec on every backend, and the JAX distribution checks (CPU).

Each run is a subprocess with its own KERAS_BACKEND (Keras fixes the backend at import).
- every backend: the loss goes down, and a model rebuilt from the last checkpoint gives the
  logits of the trained model;
- 8 virtual CPU devices: ModelParallel (data=2, model=4) and one device give the same
  per-step losses within rel 1e-4 (float32 sums are reordered by sharding;
  measured differences are ~1e-7);
- two JAX processes on localhost (gloo): the same losses again, and their orbax checkpoint
  reloads in one process with the one-device run's weights.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from test_train_loop import jax_compile_cache, make_plan  # noqa: F401  (the fixture is used)

DRIVER = textwrap.dedent(
    """
    import json, os, sys
    from flanctl.plan import Plan
    from flanctl.runtime import setup_process
    mode, plans = sys.argv[1], [Plan.load(p) for p in sys.argv[2].split(",")]
    setup_process(plans[0].backend, plans[0].spec.distribution)  # KERAS_BACKEND, and virtual CPU devices for a mesh
    import keras, numpy as np
    from flanctl.runs import RunDir
    from flanctl.train.checkpoints import restore_checkpoint
    from flanctl.backends import Placement
    from flanctl.train.trainer import Trainer, _default_stream, split_batch

    class Joined:
        # The global batch that N processes feed together, made in one process (rows in
        # process order), so a one-device run sees exactly what a multi-process run sees.

        def __init__(self, plan, n):
            self.parts = [_default_stream(plan, Placement(backend="jax", process_index=i, process_count=n)) for i in range(n)]

        def __iter__(self):
            return self

        def __next__(self):
            batches = [next(p) for p in self.parts]
            return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

        def get_state(self):
            return {"parts": [p.get_state() for p in self.parts]}

        def set_state(self, state):
            for p, s in zip(self.parts, state["parts"]):
                p.set_state(s)

    def build(plan):
        joined = int(os.environ.get("TEST_JOINED_PROCESSES", "0"))
        factory = (lambda p, placement: Joined(p, joined)) if joined else None
        t = Trainer(plan, RunDir(plan.run.dir), export=False, stream_factory=factory)
        t.setup()
        return t

    def first_weights(t):
        return [keras.ops.convert_to_numpy(v.value).tolist() for v in t.model.trainable_variables[:3]]

    outs = []
    for plan in plans:
        out = {"backend": keras.backend.backend()}
        if mode in ("train", "train+reload"):
            t = build(plan)
            t.run_loop()
            out["losses"] = [json.loads(l)["loss"] for l in open(t.run.metrics_path)] if t.placement.is_chief else []
            out["devices"] = len(t.placement.devices)
            out["process_index"] = t.placement.process_index
            if t.placement.process_count == 1 or keras.backend.backend() == "torch":
                out["weights"] = first_weights(t)
        if mode == "apply+reload":  # what `flanctl apply` runs, then reload checkpoint and export
            from flanctl.train import run_training
            import keras_hub
            import flanctl.models.palm  # registers the palm classes

            result = run_training(plan, RunDir(plan.run.dir))
            out["losses"] = [json.loads(l)["loss"] for l in open(RunDir(plan.run.dir).metrics_path)]
            fresh = build(plan)  # new weights from the seed, then the checkpoint on top
            restore_checkpoint(fresh.run.latest_checkpoint()[1], fresh.model, fresh.optimizer, fresh.placement)
            exported = keras_hub.models.CausalLM.from_preset(result["export"])
            features, _, _ = split_batch(next(fresh.stream))
            a = keras.ops.convert_to_numpy(fresh.model(features))
            b = keras.ops.convert_to_numpy(exported(features))
            out["reload_max_diff"] = float(np.max(np.abs(a - b)))
            out["logit_scale"] = float(np.max(np.abs(a)))
        if mode == "reload-from":  # argv[3]: a checkpoint folder written by another run
            t = build(plan)
            meta, state = restore_checkpoint(sys.argv[3], t.model, t.optimizer, t.placement)
            out["weights"] = first_weights(t)
            out["data_state_loaded"] = state is not None
        outs.append(out)
    print("RESULT " + json.dumps(outs), flush=True)
    """
)


def run_driver(tmp_path: Path, plans: list, mode: str, *extra: str, env: dict | None = None, wait: bool = True):
    files = []
    for plan in plans:
        plan_file = plan.save(tmp_path / f"{plan.spec.name}-plan.json")
        files.append(str(plan_file))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    full_env = {**os.environ, **(env or {})}
    full_env.pop("KERAS_BACKEND", None)  # the plan decides
    full_env.pop("XLA_FLAGS", None)
    proc = subprocess.Popen([sys.executable, str(driver), mode, ",".join(files), *extra], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc if not wait else collect(proc)


def collect(proc) -> list[dict]:
    out, err = proc.communicate(timeout=600)
    lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"driver failed (exit {proc.returncode}):\n{err[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def check_backend(tmp_path, backend):
    plan = make_plan(tmp_path, name=f"b-{backend}", steps=6, ckpt=3, log=1, backend=backend)
    [out] = run_driver(tmp_path, [plan], "apply+reload")
    assert out["backend"] == backend
    losses = out["losses"]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.1, losses
    # checkpoint -> fresh model gives the trained model's logits (as exported at the end)
    assert out["reload_max_diff"] < 1e-5 * max(1.0, out["logit_scale"])


def test_tensorflow_trains_and_checkpoint_reloads_same_logits(tmp_path):
    check_backend(tmp_path, "tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backend_trains_and_checkpoint_reloads_same_logits(tmp_path, backend):
    check_backend(tmp_path, backend)


def mesh_plan(tmp_path, name, processes=1, coordinator=None, steps=6):
    settings = ["distribution.mesh.data=2", "distribution.mesh.model=4",
                f"distribution.processes.count={processes}", f"distribution.processes.devices_per_process={8 // processes}"]
    if coordinator:
        settings.append(f"distribution.processes.coordinator={coordinator}")
    return make_plan(tmp_path, name=name, steps=steps, ckpt=steps, log=1, settings=tuple(settings))


def test_model_parallel_2x4_on_8_cpu_devices_matches_one_device(tmp_path):
    """One process with 8 virtual CPU devices trains the spec sharded (2x4), then on one device."""
    mesh, one = run_driver(tmp_path, [mesh_plan(tmp_path, "mesh"), make_plan(tmp_path, name="one", steps=6, ckpt=6, log=1)], "train")
    assert mesh["devices"] == 8 and one["devices"] == 1
    assert mesh["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert mesh["losses"][-1] < mesh["losses"][0]
    for got, want in zip(mesh["weights"], one["weights"]):
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-3, atol=1e-4)
    ckpt = Path(tmp_path / "runs" / "mesh" / "checkpoints" / "step_6")
    assert (ckpt / "state").is_dir()  # sharded variables are saved with orbax


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_jax_processes_match_one_device_and_checkpoint_reloads(tmp_path):
    coordinator = f"127.0.0.1:{free_port()}"
    plan = mesh_plan(tmp_path, "multi", processes=2, coordinator=coordinator)
    procs = [run_driver(tmp_path, [plan], "train", env={"FLANCTL_PROCESS_ID": str(i)}, wait=False) for i in range(2)]
    outs = [collect(p)[0] for p in procs]
    chief = next(o for o in outs if o["process_index"] == 0)
    assert chief["devices"] == 8
    single_plan = make_plan(tmp_path, name="single", steps=6, ckpt=6, log=1)
    # the same global batches as the two processes
    [single] = run_driver(tmp_path, [single_plan], "train", env={"TEST_JOINED_PROCESSES": "2"})
    assert chief["losses"] == pytest.approx(single["losses"], rel=1e-4)
    # The orbax checkpoint written by two processes under ModelParallel reloads on one device.
    ckpt = Path(plan.run.dir) / "checkpoints" / "step_6"
    assert (ckpt / "state").is_dir() and (ckpt / "data_state_1.json").exists()
    [reloaded] = run_driver(tmp_path, [make_plan(tmp_path, name="reload", steps=6, ckpt=6, log=1)], "reload-from", str(ckpt))
    assert reloaded["data_state_loaded"] is False  # one process cannot take over two data shards
    for got, want in zip(reloaded["weights"], single["weights"]):
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_two_torch_processes_stay_identical_ddp(tmp_path):
    """torch DDP over gloo: gradients are averaged, so both ranks end with the same weights."""
    plan = make_plan(tmp_path, name="ddp", steps=6, ckpt=6, log=1, backend="torch",
                     settings=("distribution.mesh.data=2", "distribution.processes.count=2",
                               f"distribution.processes.coordinator=127.0.0.1:{free_port()}"))
    procs = [run_driver(tmp_path, [plan], "train", env={"FLANCTL_PROCESS_ID": str(i)}, wait=False) for i in range(2)]
    outs = sorted((collect(p)[0] for p in procs), key=lambda o: o["process_index"])
    assert [o["process_index"] for o in outs] == [0, 1]
    losses = outs[0]["losses"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    for a, b in zip(outs[0]["weights"], outs[1]["weights"]):
        np.testing.assert_array_equal(np.array(a), np.array(b))
