"""Run a function of a Keras model compiled for the current backend, without side effects.

On jax the function is traced once per input shape under `jax.jit`, with the model's
variables passed in as arguments through a `keras.StatelessScope` (as keras-hub's own
`generate` does): weights are not baked into the program as constants and keep their
sharding under a `keras.distribution`. On torch it runs under `no_grad`; on tensorflow
eagerly (small evaluation batches; tf.function retracing per length costs more than it saves).
"""

from __future__ import annotations

import itertools

import keras


class CompiledModelFunction:
    """`CompiledModelFunction(model, fn)(*args)` == `fn(*args)`, compiled where it pays."""

    def __init__(self, model, fn, static_argnums=()):
        self.model = model
        self.fn = fn
        self.backend = keras.config.backend()
        if self.backend == "jax":
            import jax

            def stateless(trainable, non_trainable, *args):
                mapping = itertools.chain(
                    zip(model.trainable_variables, trainable),
                    zip(model.non_trainable_variables, non_trainable),
                )
                with keras.StatelessScope(state_mapping=mapping):
                    return fn(*args)

            shifted = tuple(i + 2 for i in static_argnums)
            self._jitted = jax.jit(stateless, static_argnums=shifted)

    def __call__(self, *args):
        if self.backend == "jax":
            return self._jitted(
                [v.value for v in self.model.trainable_variables],
                [v.value for v in self.model.non_trainable_variables],
                *args,
            )
        if self.backend == "torch":
            import torch

            with torch.no_grad():
                return self.fn(*args)
        return self.fn(*args)
