"""Process set-up shared by the commands that load an ML framework.

TensorFlow (pulled in by keras-hub's tokenizers and used for TensorBoard events) prints C++
log banners from its shared libraries before Python logging exists; `TF_CPP_MIN_LOG_LEVEL`
no longer silences them. They bury flanctl's own one-line output, so the first import of
TensorFlow runs with the process's stderr file descriptor pointed at /dev/null. Python-level
errors are not affected: an ImportError still propagates and is reported normally.
"""

from __future__ import annotations

import os
import sys


def quiet_tensorflow_import() -> None:
    """Import tensorflow once with C-level stderr silenced (no-op if already imported).

    Importing TensorFlow imports Keras' backend config, which fixes the Keras backend: call
    this only once `KERAS_BACKEND` is set (it does nothing otherwise).
    """
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
