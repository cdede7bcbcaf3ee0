"""Learning-rate schedules: linear warm-up, then constant (the paper's), linear, cosine or rsqrt.

The schedule is a `keras.optimizers.schedules.LearningRateSchedule` so the optimizer
evaluates it inside the compiled step. With gradient accumulation Keras passes the
micro-step counter, so the schedule divides by `accum` to count optimizer steps.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="flanctl")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`peak` after `warmup` linear steps, then `kind` decay over `total` optimizer steps.

    >>> s = WarmupSchedule(1e-3, "cosine", warmup=10, total=100)
    >>> float(s(10))  # peak at the end of warm-up
    0.001
    """

    def __init__(self, peak: float, kind: str = "constant", warmup: int = 0, total: int = 1, accum: int = 1):
        if kind not in ("constant", "linear", "cosine", "rsqrt"):
            raise ValueError(f"unknown schedule {kind!r}")
        self.peak, self.kind, self.warmup, self.total, self.accum = float(peak), kind, int(warmup), int(total), int(accum)

    def __call__(self, step):
        step = ops.cast(ops.floor_divide(step, self.accum), "float32")
        peak = ops.cast(self.peak, "float32")
        warm = ops.minimum(1.0, (step + 1.0) / float(max(self.warmup, 1))) if self.warmup else 1.0
        after = ops.maximum(step - self.warmup, 0.0)
        span = float(max(self.total - self.warmup, 1))
        if self.kind == "constant":
            decay = 1.0
        elif self.kind == "linear":
            decay = ops.maximum(1.0 - after / span, 0.0)
        elif self.kind == "cosine":
            decay = 0.5 * (1.0 + ops.cos(math.pi * ops.minimum(after / span, 1.0)))
        else:  # rsqrt: T5's inverse square root, flat until the end of warm-up
            decay = ops.sqrt(float(max(self.warmup, 1))) / ops.sqrt(ops.maximum(step, float(max(self.warmup, 1))))
        return peak * warm * decay

    def get_config(self):
        return {"peak": self.peak, "kind": self.kind, "warmup": self.warmup, "total": self.total, "accum": self.accum}
