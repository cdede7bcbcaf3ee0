"""Model families (palm, t5, keras-hub presets) behind one protocol, sharding and generation.

Importing this package is cheap: Keras is imported only when a model is built, loaded or run
(the process sets its backend first: `flanctl.runtime`).

Ask the family (flanctl.models.families):
    get_family(name, encoder_decoder=None) -> ModelFamily     (by the plan's family and kind)
    family_of_model(model, source=None) -> ModelFamily        (for a loaded model)
    family.build(arch, dropout, dtype) / family.load(source) / family.trainable(model)
    family.layout_rules() / family.layout_map(mesh)
    family.engine(model, tokenizer, batch_size) -> GenerationEngine (generate, loglikelihood)
    family.frame_prompt(ids, tokenizer) / family.export(model, directory, tokenizer)

By name (thin wrappers over the families):
    build_model(arch, family, dropout=0.0, dtype=None) -> keras.Model
    abstract_param_count(arch, family) -> int
    load_model(path_or_preset) -> (model, tokenizer_or_None)
    save_preset(model, directory, tokenizer=None)
    model_family(model) -> str
    layout_map(family, mesh) -> keras.distribution.LayoutMap
    KerasPredictor(model, tokenizer, family, batch_size=8)
    supports_packing(family) -> bool, packing_note(family) -> str | None
"""

from __future__ import annotations

from flanctl.catalog.models import packing_note, supports_packing  # noqa: F401  (re-exported)

_LAZY = {
    "ModelFamily": "flanctl.models.families",
    "get_family": "flanctl.models.families",
    "family_of_model": "flanctl.models.families",
    "GenerationEngine": "flanctl.models.generation.engine",
    "build_model": "flanctl.models.entry_points",
    "load_model": "flanctl.models.entry_points",
    "save_preset": "flanctl.models.entry_points",
    "abstract_param_count": "flanctl.models.entry_points",
    "model_family": "flanctl.models.entry_points",
    "layout_map": "flanctl.models.layouts",
    "KerasPredictor": "flanctl.models.predictor",
}

__all__ = sorted([*_LAZY, "supports_packing", "packing_note"])


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flanctl.models' has no attribute {name!r}")
