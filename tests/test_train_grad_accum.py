"""Gradient accumulation is token-weighted: an accumulated step equals the whole batch at once.

The batch's two halves hold very different numbers of target tokens (every target token in
rows 0-3, one per row in rows 4-7), so a mean of micro-batch means would differ from the
token mean; the test checks that it does, then that the trainer's loss and updated weights
with grad_accum=2 equal grad_accum=1 (float32; rtol 1e-5 on the loss, rtol 1e-4/atol 1e-6
on the weights after two optimizer steps).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from flanctl.runs import RunDir
from flanctl.train.synthetic_stream import SyntheticStream
from flanctl.train.trainer import LABEL_KEYS, Trainer, step_weights
from test_train_loop import make_plan


def uneven_batch() -> dict:
    batch = next(SyntheticStream(8, 32, 259, seed=1))
    mask = batch["loss_mask"].copy()
    for row in range(4, 8):
        keep = np.flatnonzero(mask[row])[:1]
        mask[row] = 0.0
        mask[row, keep] = 1.0
    batch["loss_mask"] = mask
    return batch


class Repeat:
    """The same batch forever (what the trainer's stream factory returns)."""

    def __init__(self, batch):
        self.batch = batch

    def __iter__(self):
        return self

    def __next__(self):
        return {k: v.copy() for k, v in self.batch.items()}

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


def token_nll(model, batch) -> np.ndarray:
    features = {k: v for k, v in batch.items() if k not in LABEL_KEYS}
    logits = keras.ops.convert_to_numpy(model(features)).astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    return -np.take_along_axis(logp, batch["targets"][..., None].astype(np.int64), -1)[..., 0]


def trainer_with(tmp_path, accum: int, batch: dict, optimizer: str = "adafactor") -> Trainer:
    plan = make_plan(tmp_path, name=f"accum{accum}-{optimizer}", accum=accum, settings=(f"train.optimizer={optimizer}",))
    t = Trainer(plan, RunDir(plan.run.dir), export=False, stream_factory=lambda p, placement: Repeat(batch))
    t.setup()
    return t


def test_step_weights_make_the_summed_loss_the_step_token_mean():
    mask = np.array([[1, 1, 1, 0], [0, 1, 0, 0]], np.float32)
    w = step_weights(mask, accum=2, step_tokens=8)
    np.testing.assert_allclose(w, mask * 0.25)
    assert step_weights(np.zeros((1, 3)), accum=2, step_tokens=0).sum() == 0  # no tokens: loss 0, not NaN


@pytest.mark.parametrize("optimizer", ["adafactor", pytest.param("adamw", marks=pytest.mark.slow)])
def test_grad_accum_2_equals_one_batch_with_uneven_target_tokens(tmp_path, optimizer):
    batch = uneven_batch()
    mask = batch["loss_mask"]
    assert mask[:4].sum() > 10 * mask[4:].sum() > 0  # the halves really differ

    one = trainer_with(tmp_path, 1, batch, optimizer)
    two = trainer_with(tmp_path, 2, batch, optimizer)
    start = [keras.ops.convert_to_numpy(v.value) for v in one.model.trainable_variables]
    for a, b in zip(start, two.model.trainable_variables):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b.value))

    # The loss of a step is the token mean over the whole batch, computed before the update.
    nll = token_nll(one.model, batch)
    token_mean = float((nll * mask).sum() / mask.sum())
    mean_of_means = float(np.mean([(nll[s] * mask[s]).sum() / mask[s].sum() for s in (slice(0, 4), slice(4, 8))]))
    assert abs(mean_of_means - token_mean) > 1e-2 * token_mean  # what the old accumulation reported

    for step in range(2):
        loss_one, loss_two = one.train_step(next(one.stream)), two.train_step(next(two.stream))
        if step == 0:
            assert loss_one == pytest.approx(token_mean, rel=1e-5)
        assert loss_two == pytest.approx(loss_one, rel=1e-5)
    assert int(keras.ops.convert_to_numpy(two.optimizer.iterations)) == 2  # 4 micro-batches, 2 updates
    moved = 0.0
    for a, b, w0 in zip(one.model.trainable_variables, two.model.trainable_variables, start):
        wa, wb = keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value)
        np.testing.assert_allclose(wb, wa, rtol=1e-4, atol=1e-6)
        moved = max(moved, float(np.abs(wa - w0).max()))
    assert moved > 1e-3  # the weights did change, so equal weights mean equal updates
