"""The keras-hub sampler of a preset's task, switched per temperature and reseeded per batch."""

from __future__ import annotations

import numpy as np


class SamplerState:
    """The task's keras-hub sampler for a temperature, compiled once per temperature.

    `compile(sampler=...)` drops the task's jitted generate function, so it is called only
    when the temperature changes; a random sampler's seed state is reset per batch instead,
    so that a (seed, batch) pair always draws the same samples.
    """

    def __init__(self, model):
        self.model = model
        self.key = None

    def use(self, temperature: float, seed: int):
        import keras_hub

        key = "greedy" if temperature <= 0 else float(temperature)
        if key != self.key:
            if key == "greedy":
                sampler = keras_hub.samplers.GreedySampler()
            else:
                sampler = keras_hub.samplers.RandomSampler(temperature=float(temperature), seed=0)
            self.model.compile(sampler=sampler)
            self.key = key
        generator = getattr(self.model.sampler, "seed_generator", None)
        if generator is not None:
            state = generator.state
            state.assign(np.array([seed & 0x7FFFFFFF, 0]).astype(state.dtype))
