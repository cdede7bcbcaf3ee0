"""Model families (palm, t5, keras-hub presets), sharding layouts and generation.

Importing this package is cheap: Keras is imported only when one of the names below is first
used, so that callers can set KERAS_BACKEND from the spec beforehand.

    build_model(arch, family, dropout=0.0, dtype=None) -> keras.Model
    load_model(path_or_preset) -> (model, tokenizer_or_None)
    save_preset(model, directory)
    layout_map(family, mesh) -> keras.distribution.LayoutMap
    KerasPredictor(model, tokenizer, family)
    supports_packing(family) -> bool, packing_note(family) -> str | None
"""

from __future__ import annotations

from flanctl.catalog.models import packing_note, supports_packing

_LAZY = {
    "build_model": "flanctl.models.registry",
    "load_model": "flanctl.models.registry",
    "save_preset": "flanctl.models.registry",
    "abstract_param_count": "flanctl.models.registry",
    "model_family": "flanctl.models.registry",
    "layout_map": "flanctl.models.layouts",
    "KerasPredictor": "flanctl.models.generation.predictor",
}

__all__ = sorted([*_LAZY, "supports_packing", "packing_note"])


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flanctl.models' has no attribute {name!r}")
