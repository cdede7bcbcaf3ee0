"""Process set-up: the one place that chooses the Keras backend and dtype policy and quiets
framework logs.

Keras fixes its backend at its first import, so every command that will load an ML framework
calls `setup_process` first (apply, eval, the training worker, data commands that tokenize
with a keras-hub tokenizer). Whoever calls it first in a process decides; later calls return
the backend Keras already runs on, and callers that need another one start a child process.

TensorFlow (pulled in by keras-hub's tokenizers and used for TensorBoard events) prints C++
log banners from its shared libraries before Python logging exists; `TF_CPP_MIN_LOG_LEVEL`
no longer silences them. They bury flanctl's own one-line output, so the first import of
TensorFlow runs with the process's stderr file descriptor pointed at /dev/null. Python-level
errors are not affected: an ImportError still propagates and is reported normally.
"""

from __future__ import annotations

import os
import sys
from typing import Any

DEFAULT_BACKEND = "jax"


def loaded_backend() -> str | None:
    """The backend Keras runs on in this process, or None before Keras is imported."""
    if "keras" not in sys.modules:
        return None
    import keras

    return keras.backend.backend()


def setup_process(backend: str | None = None, distribution: Any = None, precision: str | None = None) -> str:
    """Choose the Keras backend (the spec's, else $KERAS_BACKEND, else jax) before Keras is
    imported, let the backend set what it needs before it starts (virtual CPU devices for a
    CPU mesh), import TensorFlow quietly, and set the Keras dtype policy when `precision` is
    given (e.g. the spec's `train.precision`). Returns the backend Keras will run on: once
    Keras is loaded that is the loaded one, whatever `backend` asks for.

    `distribution` is the spec's `distribution` section (`DistributionSpec`).
    """
    name = loaded_backend()
    if name is None:
        name = backend or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
        os.environ["KERAS_BACKEND"] = name
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if distribution is not None:
            from flanctl.backends import get_backend

            get_backend(name).prepare_environment(distribution.model_dump(mode="json"))
        quiet_tensorflow_import()
    if precision is not None:
        import keras

        keras.config.set_dtype_policy(precision)
    return name


def quiet_tensorflow_import() -> None:
    """Import tensorflow once with C-level stderr silenced (no-op if already imported)."""
    if "tensorflow" in sys.modules or os.environ.get("FLANCTL_TF_LOGS") or not os.environ.get("KERAS_BACKEND"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # the code that needs it will raise a proper error
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
