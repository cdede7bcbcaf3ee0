"""The model families and their registry: the one place that maps family names to families.

    get_family(name, encoder_decoder=None) -> ModelFamily     by the plan's family and kind
    family_of_model(model, source=None) -> ModelFamily        for a loaded model without a plan

Four families, one protocol (`ModelFamily`, flanctl.models.families.base):

    palm, cont-palm, u-palm   PalmFamily              flanctl's PaLMCausalLM (decoder-only)
    t5                        T5Family                flanctl's T5PackedSeq2SeqLM (encoder-decoder)
    preset, decoder-only      KerasHubCausalLMFamily  any keras-hub CausalLM preset
    preset, encoder-decoder   KerasHubSeq2SeqFamily   any keras-hub Seq2SeqLM preset

Generic code asks the family it gets here and never compares family names; this module (and
the catalog's facts) are the only places that do. A new family is one module in this folder
and one entry below. Importing this package does not import Keras.

Example:
    >>> family = get_family("t5")
    >>> family.encoder_decoder, family.packs
    (True, True)
    >>> model = family.build(arch)  # doctest: +SKIP
    >>> family.engine(model, tokenizer).generate(["Translate: hi"], 16, stop=[])  # doctest: +SKIP
"""

from __future__ import annotations

import os

from flanctl.catalog.models import DECODER_FAMILIES, FAMILIES
from flanctl.errors import FlanctlError
from flanctl.models.families.base import LayoutRules, ModelFamily
from flanctl.models.families.keras_hub import KerasHubCausalLMFamily, KerasHubSeq2SeqFamily
from flanctl.models.families.palm import PalmFamily
from flanctl.models.families.t5 import T5Family

_PALM = {name: PalmFamily(name) for name in DECODER_FAMILIES}
_T5 = T5Family()
_CAUSAL_PRESET = KerasHubCausalLMFamily()
_SEQ2SEQ_PRESET = KerasHubSeq2SeqFamily()

#: Asked in order by `family_of_model`: flanctl's own task classes are keras-hub tasks too, and
#: keras-hub's Seq2SeqLM subclasses its CausalLM, so the most specific family comes first.
_BY_CLASS: tuple[ModelFamily, ...] = (_PALM["palm"], _T5, _SEQ2SEQ_PRESET, _CAUSAL_PRESET)


def get_family(name: str | ModelFamily, encoder_decoder: bool | None = None, *, model=None) -> ModelFamily:
    """The family of spec/plan family `name`.

    For `preset` the kind picks the family: `encoder_decoder` (the plan's
    `model.encoder_decoder`) when given, else the loaded `model`'s class when given, else a
    CausalLM preset (keras-hub's default task). For the other names, an `encoder_decoder` that
    contradicts the family is an error (a plan from another version). A `ModelFamily` is
    returned as it is.
    """
    if isinstance(name, ModelFamily):
        return name
    if name in _PALM:
        family: ModelFamily = _PALM[name]
    elif name == "t5":
        family = _T5
    elif name == "preset":
        if encoder_decoder is None and model is not None:
            return family_of_model(model)
        return _SEQ2SEQ_PRESET if encoder_decoder else _CAUSAL_PRESET
    else:
        raise FlanctlError(f"unknown model family {name!r}: use {', '.join(FAMILIES)}")
    if encoder_decoder is not None and bool(encoder_decoder) != family.encoder_decoder:
        kind = "encoder-decoder" if encoder_decoder else "decoder-only"
        raise FlanctlError(f"model family {name!r} is not {kind}, as the plan says: re-run `flanctl plan`")
    return family


def family_of_model(model, source: str | os.PathLike | None = None) -> ModelFamily:
    """The family of a loaded task model, when no plan says: the family recorded in the preset
    folder `source` (flanctl.json, written by `export`), else the model's class (flanctl's
    PaLM / packed T5, a keras-hub Seq2SeqLM or CausalLM preset, or a training adapter of one).

    A keras-hub T5 preset is a `preset` (encoder-decoder): its config names T5, but it is
    keras-hub's `T5Seq2SeqLM`, not flanctl's packed t5.
    """
    from flanctl.models.preset_io import recorded_family

    recorded = recorded_family(source) if source is not None else None
    if recorded is not None:
        return get_family(recorded, model=model)
    for family in _BY_CLASS:
        if family.owns(model):
            return family
    raise FlanctlError(
        f"{type(model).__name__} is not a model flanctl can handle: use a palm or t5 model, "
        "or a keras-hub CausalLM or Seq2SeqLM preset"
    )


def all_families() -> tuple[ModelFamily, ...]:
    """Every distinct family (the palm names share one class but are listed each)."""
    return (*_PALM.values(), _T5, _CAUSAL_PRESET, _SEQ2SEQ_PRESET)


__all__ = [
    "KerasHubCausalLMFamily",
    "KerasHubSeq2SeqFamily",
    "LayoutRules",
    "ModelFamily",
    "PalmFamily",
    "T5Family",
    "all_families",
    "family_of_model",
    "get_family",
]
