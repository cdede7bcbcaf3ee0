"""`train.remat`: transformer blocks are rematerialised, with the same loss and gradients.

- jax, palm and t5 with dropout on: loss, gradients and the new dropout seed states with
  remat equal those without (float32: loss rtol 1e-5, gradients rtol 1e-4 / atol 1e-6); the gradient's jaxpr holds one checkpoint
  (`remat`) per block, and the activations saved for the backward pass
  (`jax.ad_checkpoint.print_saved_residuals`) shrink to the blocks' inputs.
- the trainer applies it (no "not applied" note) and trains to the same losses and weights.
- torch: `torch.utils.checkpoint` re-runs each block in the backward pass, same gradients.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import print_saved_residuals
from jax.extend import core as jax_core
import keras
import numpy as np
import pytest

from flanctl.catalog.models import SIZES
from flanctl.models import build_model
from flanctl.models.remat import enable_remat, is_rematerialised, remat_blocks, remat_support
from flanctl.runs import RunDir
from flanctl.train.synthetic_stream import SyntheticStream
from flanctl.train.trainer import Trainer
from test_train_grad_accum import Repeat
from test_train_loop import make_plan

PALM = {"vocab_size": 259, "num_layers": 3, "hidden_dim": 32, "num_heads": 4, "num_kv_heads": 1, "head_dim": 8, "ffn_dim": 64, "max_sequence_length": 64}
T5 = dict(SIZES["t5"]["tiny"], vocab_size=259)


def palm_batch():
    b = next(SyntheticStream(2, 48, 259, seed=2))
    return {k: b[k] for k in ("token_ids", "segment_ids", "positions")}, b["targets"], b["loss_mask"]


def t5_batch():
    rng = np.random.default_rng(3)
    enc, dec = rng.integers(3, 259, (2, 24)).astype(np.int32), rng.integers(3, 259, (2, 12)).astype(np.int32)
    seg_e, seg_d = np.ones_like(enc), np.ones_like(dec)
    seg_e[1, 20:] = 0
    seg_d[1, 9:] = 0
    pos = lambda a: np.broadcast_to(np.arange(a.shape[1], dtype=np.int32), a.shape).copy()  # noqa: E731
    feats = {"encoder_token_ids": enc, "encoder_segment_ids": seg_e, "encoder_positions": pos(enc),
             "decoder_token_ids": dec, "decoder_segment_ids": seg_d, "decoder_positions": pos(dec)}
    targets = np.roll(dec, -1, axis=1)
    return feats, targets, seg_d.astype(np.float32)


def model_of(family, remat, dropout=0.1):
    keras.utils.set_random_seed(7)
    model = build_model(PALM if family == "palm" else T5, family, dropout=dropout)
    if remat:
        assert enable_remat(model) == len(remat_blocks(model)) > 0
    return model


def loss_fn(model, feats, targets, mask):
    feats = {k: jnp.asarray(v) for k, v in feats.items()}
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable):
        logits, new_state = model.stateless_call(trainable, non_trainable, feats, training=True)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        nll = -jnp.take_along_axis(logp, jnp.asarray(targets)[..., None], axis=-1)[..., 0]
        return jnp.sum(nll * mask) / jnp.sum(mask), new_state

    return loss


def saved_activation_elements(fn, *args) -> int:
    """Elements of the values jax keeps for the backward pass (arguments excluded)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_saved_residuals(fn, *args)
    total = 0
    for line in out.getvalue().splitlines():
        m = re.match(r"\s*\w+\[([\d,]*)\]", line)
        if m and "from the argument" not in line:
            total += int(np.prod([int(d) for d in m.group(1).split(",") if d] or [1]))
    return total


@pytest.mark.parametrize("family", ["palm", pytest.param("t5", marks=pytest.mark.slow)])
def test_remat_same_loss_grads_and_seeds_and_keeps_only_block_inputs(family):
    feats, targets, mask = palm_batch() if family == "palm" else t5_batch()
    results, saved, checkpoints = [], [], []
    for remat in (False, True):
        model = model_of(family, remat)
        trainable = [v.value for v in model.trainable_variables]
        # Keras is traced once; the closed jaxpr then stands for the model's loss function.
        closed = jax.make_jaxpr(loss_fn(model, feats, targets, mask))(trainable)
        flat = jax_core.jaxpr_as_fun(closed)

        def loss_and_state(t):
            out = flat(*t)
            return out[0], out[1:]

        (loss, state), grads = jax.jit(jax.value_and_grad(loss_and_state, has_aux=True))(trainable)
        results.append((float(loss), [np.asarray(g) for g in grads], [np.asarray(s) for s in state]))
        grad_jaxpr = jax.make_jaxpr(jax.grad(lambda t: loss_and_state(t)[0]))(trainable)
        checkpoints.append(sum(e.primitive.name.startswith(("remat", "checkpoint")) for e in grad_jaxpr.jaxpr.eqns))
        saved.append(saved_activation_elements(lambda t: loss_and_state(t)[0], trainable))
    (loss0, grads0, state0), (loss1, grads1, state1) = results
    assert loss1 == pytest.approx(loss0, rel=1e-5)
    for g0, g1 in zip(grads0, grads1):  # float32 sums in another order: differences ~3e-7
        np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6)
    for s0, s1 in zip(state0, state1):
        np.testing.assert_array_equal(s1, s0)  # dropout seeds advance exactly as without remat
    blocks = len(remat_blocks(model))
    assert checkpoints == [0, blocks]
    # Without remat every block's intermediate activations are kept; with it, about its input.
    assert saved[1] * 4 < saved[0], saved


def test_remat_is_training_only_and_idempotent():
    model = model_of("palm", remat=True)
    assert all(is_rematerialised(b) for b in remat_blocks(model))
    assert enable_remat(model) == PALM["num_layers"]  # a second call wraps nothing twice
    feats, _, _ = palm_batch()
    plain = model_of("palm", remat=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(feats)), keras.ops.convert_to_numpy(plain(feats)), atol=1e-6)
    assert remat_support("jax") is None and remat_support("torch") is None
    assert "not applied on tensorflow" in remat_support("tensorflow")


@pytest.mark.slow
def test_trainer_applies_remat_and_trains_like_without(tmp_path, capsys):
    b = next(SyntheticStream(8, 64, 259, seed=5))
    runs = {}
    for remat in (False, True):
        plan = make_plan(tmp_path, name=f"remat{int(remat)}", dropout=0.05, settings=(f"train.remat={str(remat).lower()}",))
        t = Trainer(plan, RunDir(plan.run.dir), export=False, stream_factory=lambda p, placement: Repeat(b))
        t.setup()
        runs[remat] = (t, [t.train_step(next(t.stream)) for _ in range(2)])
    out = capsys.readouterr().out
    assert "not applied" not in out
    wrapped = [is_rematerialised(blk) for blk in remat_blocks(runs[True][0].model)]
    assert wrapped == [True, True] and not any(is_rematerialised(blk) for blk in remat_blocks(runs[False][0].model))
    assert runs[True][1] == pytest.approx(runs[False][1], rel=1e-5)
    for a, c in zip(runs[True][0].model.variables, runs[False][0].model.variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(c.value), rtol=1e-5, atol=1e-6)


TORCH_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, keras
    from flanctl.models import build_model
    from flanctl.models.palm.layers import PaLMDecoderBlock
    from flanctl.models.remat import enable_remat
    from flanctl.train.synthetic_stream import SyntheticStream

    import functools
    calls = [0]
    original = PaLMDecoderBlock.call

    @functools.wraps(original)
    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)

    PaLMDecoderBlock.call = counted
    arch = json.loads(%r)
    b = next(SyntheticStream(2, 48, 259, seed=2))
    feats = {k: keras.ops.convert_to_tensor(b[k]) for k in ("token_ids", "segment_ids", "positions")}
    out = {}
    for remat in (False, True):
        keras.utils.set_random_seed(7)
        model = build_model(arch, "palm", dropout=0.1)
        wrapped = enable_remat(model) if remat else 0
        calls[0] = 0
        logits = model(feats, training=True)
        loss = keras.ops.mean(keras.ops.square(logits))
        loss.backward()
        out[str(remat)] = {
            "wrapped": wrapped, "calls": calls[0], "loss": float(loss),
            "grads": [v.value.grad.detach().numpy().ravel()[:50].tolist() for v in model.trainable_variables],
            "seeds": [keras.ops.convert_to_numpy(v.value).tolist() for v in model.non_trainable_variables],
        }
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
def test_torch_remat_recomputes_blocks_with_same_gradients(tmp_path):
    script = tmp_path / "torch_remat.py"
    script.write_text(TORCH_SCRIPT % json.dumps(PALM))
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    plain, remat = out["False"], out["True"]
    layers = PALM["num_layers"]
    assert remat["wrapped"] == layers
    assert plain["calls"] == layers and remat["calls"] == 2 * layers  # each block re-ran in backward
    assert remat["loss"] == pytest.approx(plain["loss"], rel=1e-6)
    for g0, g1 in zip(plain["grads"], remat["grads"]):
        np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-7)
    assert remat["seeds"] == plain["seeds"]
