"""The optimizer of a TrainSpec: Adafactor with a constant rate (the paper's recipe) or AdamW.

Adafactor is `FactoredAdafactor` (Keras's update rule without its full-size velocity slot).

Gradient accumulation uses Keras's own `gradient_accumulation_steps` (the optimizer
averages `grad_accum` micro-batch gradients and applies them once); clipping uses
`global_clipnorm`.
"""

from __future__ import annotations

import keras

from flanctl.spec.models import TrainSpec
from flanctl.train.adafactor import FactoredAdafactor
from flanctl.train.schedules import WarmupSchedule


def build_optimizer(train: TrainSpec) -> keras.optimizers.Optimizer:
    """A compiled-step-ready optimizer from the spec's `train` section."""
    accum = train.grad_accum
    schedule = WarmupSchedule(train.learning_rate, train.schedule, warmup=train.warmup_steps, total=train.steps, accum=accum)
    common = dict(
        learning_rate=schedule,
        global_clipnorm=train.max_grad_norm,
        gradient_accumulation_steps=accum if accum > 1 else None,
    )
    if train.optimizer == "adafactor":
        # Factored state only (what the plan's memory estimate assumes); relative_step=False:
        # the rate is ours (constant by default), not Adafactor's 1/sqrt(t).
        return FactoredAdafactor(relative_step=False, **common)
    return keras.optimizers.AdamW(weight_decay=train.weight_decay, beta_1=0.9, beta_2=0.95, epsilon=1e-8, **common)
