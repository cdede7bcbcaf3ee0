"""FactoredAdafactor: same updates as keras.optimizers.Adafactor, factored state only."""

import numpy as np

import keras

from flanctl.train.adafactor import FactoredAdafactor


def _run(opt, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    w = keras.Variable(rng.normal(size=(6, 4)).astype("float32"), name="w")
    b = keras.Variable(rng.normal(size=(4,)).astype("float32"), name="b")
    opt.build([w, b])
    for _ in range(steps):
        grads = [keras.ops.convert_to_tensor(rng.normal(size=v.shape).astype("float32")) for v in (w, b)]
        opt.apply_gradients(zip(grads, [w, b]))
    return np.asarray(w), np.asarray(b), opt


def test_matches_keras_adafactor_updates():
    w_ref, b_ref, _ = _run(keras.optimizers.Adafactor(learning_rate=0.01))
    w, b, _ = _run(FactoredAdafactor(learning_rate=0.01))
    np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, b_ref, rtol=1e-5, atol=1e-6)


def test_state_is_factored():
    _, _, ref = _run(keras.optimizers.Adafactor(learning_rate=0.01), steps=1)
    _, _, ours = _run(FactoredAdafactor(learning_rate=0.01), steps=1)
    size = lambda opt: sum(int(np.prod(v.shape)) for v in opt.variables)
    # Ours: row (6) + col (4) for the matrix, full velocity (4) for the vector, plus counters.
    assert size(ref) - size(ours) == 6 * 4 + 1 + 1 - 0  # keras adds a full w-sized slot and two scalar placeholders
    assert size(ours) < size(ref)


def test_constant_learning_rate_without_relative_step_is_not_capped():
    # With relative_step=False the step size is lr * RMS(param) at every step (the paper's
    # constant schedule); keras' version caps lr at 1/sqrt(t) even then.
    opt = FactoredAdafactor(learning_rate=0.5, relative_step=False)
    w = keras.Variable(np.ones((2, 2), "float32"))
    opt.build([w])
    for _ in range(9):
        opt.apply_gradients([(keras.ops.ones((2, 2)), w)])
    # Each update has RMS 1 (clipped to 1) and step lr * max(eps2, rms(w)).
    expected = 1.0
    for _ in range(9):
        expected -= 0.5 * max(1e-3, abs(expected))
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5)
