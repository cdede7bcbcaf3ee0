"""Counting a model's variables: each shared variable once, and without allocating them."""

from __future__ import annotations

from collections.abc import Callable


def unique_variables(variables):
    """Variables in order, each once (shared layers list theirs more than once)."""
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def num_elements(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def abstract_param_count(build: Callable[[], object]) -> int:
    """Parameters of the model `build()` returns, counted from variable shapes only.

    Variables created inside a `keras.StatelessScope` are not initialised (no memory is
    allocated), so the 540B configuration counts in well under a second.
    """
    import keras
    from keras.src.backend.common import global_state

    # Leaving a StatelessScope normally initialises the variables created in it (540B of
    # them here); keep them abstract and drop them from Keras' pending list instead.
    pending = list(global_state.get_global_attribute("uninitialized_variables", []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = build()
            return int(sum(num_elements(v.shape) for v in unique_variables(model.weights)))
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)
