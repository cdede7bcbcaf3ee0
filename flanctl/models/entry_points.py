"""The models room's entry points by family name: one-line wrappers over the family registry.

Callers that hold a plan use `get_family(plan.model.family, plan.model.encoder_decoder)` and
ask the family; these names keep their signatures for callers that have only a name (or a
loaded model) and for tests.
"""

from __future__ import annotations

import os
from pathlib import Path

from flanctl.models.families import family_of_model, get_family


def _arch_from(arch_or_plan_model) -> dict:
    """Accept the architecture dict, the plan's `model` section holding one (a dict), or the
    typed plan's model object (its `architecture` attribute)."""
    if not isinstance(arch_or_plan_model, dict):
        return dict(getattr(arch_or_plan_model, "architecture", None) or {})
    if isinstance(arch_or_plan_model.get("architecture"), dict):
        return dict(arch_or_plan_model["architecture"])
    return dict(arch_or_plan_model)


def build_model(arch_or_plan_model, family, dropout: float = 0.0, dtype=None, attention: str = "causal"):
    """The task model of `family` (a name or a `ModelFamily`) from architecture numbers,
    with fresh weights: `get_family(family).build(arch, dropout, dtype, attention)`.

    palm/cont-palm/u-palm -> `PaLMCausalLM` (inputs token_ids, segment_ids, positions; with
    `attention="prefix"` also prefix_mask);
    t5 -> `T5PackedSeq2SeqLM` (encoder_*/decoder_* token_ids, segment_ids, positions).
    Both map the batch dict (without targets/loss_mask) to float32 logits [B, L, vocab].
    """
    return get_family(family).build(_arch_from(arch_or_plan_model), dropout=dropout, dtype=dtype, attention=attention)


def abstract_param_count(arch: dict, family) -> int:
    """Parameters of `build_model(arch, family)`, counted from variable shapes only."""
    return get_family(family).abstract_param_count(_arch_from(arch))


def load_model(path_or_preset: str | os.PathLike):
    """`(task model, tokenizer or None)` from a preset directory or keras-hub handle (any
    family: see `flanctl.models.preset_io.load_preset`)."""
    from flanctl.models.preset_io import load_preset

    return load_preset(path_or_preset)


def save_preset(model, directory, tokenizer=None) -> Path:
    """Save a task model as a keras-hub preset directory, through its family's `export`."""
    return family_of_model(model).export(model, directory, tokenizer)


def model_family(model) -> str:
    """The family name ('palm', 't5' or 'preset') of a loaded task model."""
    return family_of_model(model).name
