"""The train room: compiles a Plan into a Keras 3 job (model, optimizer, masked loss,
checkpoints, resume, metrics, export). Keras is imported only when training starts.

    from flanctl.train import run_training
    metrics = run_training(plan, RunDir("runs/demo"), console)
"""

from __future__ import annotations

from flanctl.train.job import needs_child, run_training

__all__ = ["needs_child", "run_training"]
