"""Adafactor whose optimizer state really is factored.

`keras.optimizers.Adafactor` keeps, besides the row and column second-moment statistics, a
full-size `velocity` slot for every variable (it stores the reconstructed second moment of
factored matrices there each step). That doubles the memory Adafactor is chosen to save: for
PaLM 540B it is 63 GiB per device on the paper's 512-chip mesh. This subclass keeps the same
update rule (Shazeer & Stern 2018, as Keras implements it: parameter-scaled relative step,
update clipping at `clip_threshold`, decay `1 - t^beta_2_decay`) but only allocates the full
`velocity` slot for variables of rank < 2, where nothing can be factored.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="flanctl")
class FactoredAdafactor(keras.optimizers.Adafactor):
    """Adafactor with O(rows + cols) state per matrix; the paper's optimizer.

    Example:
    >>> opt = FactoredAdafactor(learning_rate=1e-3, relative_step=False)
    """

    def build(self, var_list):
        if self.built:
            return
        keras.optimizers.Optimizer.build(self, var_list)
        self._r, self._c, self._v = [], [], []
        for var in var_list:
            if self._overwrite_variable_with_gradient(var):
                self._r.append(None)
                self._c.append(None)
                self._v.append(None)
            elif len(var.shape) >= 2:
                self._r.append(self.add_variable(shape=var.shape[:-1], dtype=var.dtype, name=var.name + "_row"))
                self._c.append(
                    self.add_variable(shape=var.shape[:-2] + (var.shape[-1],), dtype=var.dtype, name=var.name + "_col")
                )
                self._v.append(None)
            else:
                self._r.append(None)
                self._c.append(None)
                self._v.append(self.add_variable_from_reference(reference_variable=var, name="velocity"))

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        one = ops.cast(1.0, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        if not callable(self._learning_rate) and self.relative_step:
            lr = ops.minimum(lr, 1 / ops.sqrt(step))
        rho = ops.minimum(lr, 1 / ops.sqrt(step)) if self.relative_step else lr
        alpha = ops.maximum(ops.cast(self.epsilon_2, variable.dtype), self._rms(variable)) * rho
        grad_sq = ops.square(gradient) + self.epsilon_1
        beta_2 = 1 - ops.power(step, self.beta_2_decay)

        if len(variable.shape) >= 2:
            r, c = self._r[index], self._c[index]
            self.assign(r, beta_2 * r + (1 - beta_2) * ops.mean(grad_sq, axis=-1))
            self.assign(c, beta_2 * c + (1 - beta_2) * ops.mean(grad_sq, axis=-2))
            # Reconstructed second moment: outer(r / mean(r), c); never stored.
            v = ops.expand_dims(r / ops.mean(r, axis=-1, keepdims=True), -1) * ops.expand_dims(c, -2)
        else:
            v = self._v[index]
            self.assign(v, beta_2 * v + (1 - beta_2) * grad_sq)
        update = gradient / ops.sqrt(v)
        update = update / ops.maximum(one, self._rms(update) / self.clip_threshold)
        self.assign_sub(variable, alpha * update)
