"""`run_training`: the plan's training job in this process, on the plan's Keras backend.

Keras fixes its backend at first import. When Keras already runs another backend in this
process (a test session on jax applying a torch plan), or a CPU mesh needs virtual devices
that jax only creates at start, `needs_child` says so and the apply room runs the job in a
child process instead.
"""

from __future__ import annotations

from typing import Any, Callable

from flanctl.errors import FlanctlError
from flanctl.plan import Plan
from flanctl.runtime import loaded_backend, setup_process


def needs_child(plan: Plan) -> bool:
    """True when this process cannot run the plan's job (another backend, too few devices)."""
    dist = plan.spec.distribution
    loaded = loaded_backend()
    if loaded is not None and loaded != dist.backend:
        return True
    if loaded == "jax" and dist.device == "cpu":
        import jax

        return dist.processes.devices_per_process > 1 and jax.local_device_count() < dist.processes.devices_per_process
    return False


def run_training(plan: Plan, run, console=None, on_step: Callable[[int, Any], dict | None] | None = None) -> dict:
    """Train the plan's model in `run` (a `flanctl.runs.RunDir`); returns the final metrics.

    Resumes from the newest checkpoint in `run` when there is one. `on_step(step, model)` is
    called every `train.eval_every` steps (the apply room's held-out evals); what it returns
    is logged to metrics.jsonl and TensorBoard.
    """
    backend = setup_process(plan.backend, plan.spec.distribution)
    if backend != plan.backend:
        raise FlanctlError(f"keras already runs on {backend} in this process, the plan asks for {plan.backend}; run it through `flanctl apply`")
    from flanctl.train.trainer import train

    return train(plan, run, console, on_step=on_step)
