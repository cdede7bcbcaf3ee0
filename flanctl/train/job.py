"""`run_training`: pick the Keras backend from the plan, then run the job in this process or a child.

Keras fixes its backend at first import, so the backend must be chosen before anything
imports keras. When keras is already loaded with another backend (a test session on jax
applying a torch plan), the job runs in a child process (`python -m flanctl.train.worker`)
that inherits the terminal, and the result comes back through `state.json`.
"""

from __future__ import annotations

import os
import subprocess
import sys

from flanctl.errors import FlanctlError


def _loaded_backend() -> str | None:
    if "keras" not in sys.modules:
        return None
    import keras

    return keras.backend.backend()


def prepare_backend(plan: dict) -> str:
    """Set KERAS_BACKEND (and what the backend needs before it starts) from the plan."""
    from flanctl.backends import get_backend

    dist = plan["spec"]["distribution"]
    name = dist["backend"]
    backend = get_backend(name)
    if _loaded_backend() is None:
        os.environ["KERAS_BACKEND"] = name
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        backend.prepare_environment(dist)
    return name


def _needs_child(plan: dict) -> bool:
    dist = plan["spec"]["distribution"]
    loaded = _loaded_backend()
    if loaded is not None and loaded != dist["backend"]:
        return True
    # A CPU mesh needs virtual devices, which jax only creates before it starts.
    if loaded == "jax" and dist.get("device", "cpu") == "cpu":
        import jax

        per_process = int((dist.get("processes") or {}).get("devices_per_process", 1))
        return per_process > 1 and jax.local_device_count() < per_process
    return False


def run_training(plan: dict, run, console=None) -> dict:
    """Train the plan's model in `run` (a `flanctl.runs.RunDir`); returns the final metrics.

    Resumes from the newest checkpoint in `run` when there is one.
    """
    if _needs_child(plan):
        return _run_in_child(plan, run)
    prepare_backend(plan)
    from flanctl.train.trainer import train

    return train(plan, run, console)


def _run_in_child(plan: dict, run) -> dict:
    from flanctl.runs import write_json_atomic

    plan_file = run.root / ".train-plan.json"
    write_json_atomic(plan_file, plan)
    env = {**os.environ, "KERAS_BACKEND": plan["spec"]["distribution"]["backend"]}
    proc = subprocess.run([sys.executable, "-m", "flanctl.train.worker", str(plan_file), str(run.root)], env=env)
    if proc.returncode != 0:
        raise FlanctlError(f"training in a {plan['spec']['distribution']['backend']} child process failed (exit {proc.returncode}); see its output above")
    return run.read_state().get("train_metrics", {})
