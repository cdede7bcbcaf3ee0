"""Choosing the next token on the device: greedy argmax or temperature sampling (Gumbel-max)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def select_next(logits, temperature: float, seed):
    """Next token ids `[B]` from float32 logits `[B, V]`.

    Temperature 0 is greedy. Otherwise argmax(logits / T + Gumbel noise), which samples from
    softmax(logits / T) exactly and needs only a uniform draw (same code on every backend).
    """
    if temperature <= 0.0:
        return ops.cast(ops.argmax(logits, axis=-1), "int32")
    u = keras.random.uniform(ops.shape(logits), minval=1e-20, maxval=1.0, dtype="float32", seed=seed)
    gumbel = -ops.log(-ops.log(u))
    return ops.cast(ops.argmax(logits / temperature + gumbel, axis=-1), "int32")


def step_seed(seed: int, step: int):
    """A per-step seed in the form the backend's random ops accept inside compiled code.

    jax takes a raw uint32 key array (so one trace serves every step); the eager backends
    take a plain int.
    """
    if keras.config.backend() == "jax":
        return np.array([seed & 0xFFFFFFFF, step & 0xFFFFFFFF], dtype=np.uint32)
    return (seed * 1_000_003 + step) & 0x7FFFFFFF
