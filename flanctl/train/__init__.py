"""The train room: compiles a Plan into a Keras 3 job (model, optimizer, masked loss,
checkpoints, resume, metrics, export). Keras is imported only when training starts.

    from flanctl.train import run_training
    metrics = run_training(plan, RunDir("runs/demo"), console)
"""

from __future__ import annotations


def run_training(plan: dict, run, console=None) -> dict:
    """See `flanctl.train.job.run_training`."""
    from flanctl.train.job import run_training as _run

    return _run(plan, run, console)


__all__ = ["run_training"]
