"""The Flan collections of Chung et al. (2022): counts, caps, proportions, templates, sources.

Per-collection task counts, caps and the two mixture proportions are from Section 2.1,
Figure 2 and Appendix E of the paper. The per-collection dataset and category counts are
from Figure 2; they overlap across collections, so they add up to more than the de-duplicated
totals of the full mixture (473 datasets, 146 categories), which are kept separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceDefault:
    """Where a collection's examples are read from when the spec names no source."""

    kind: str
    path: str
    split: str = "train"
    columns: dict[str, str] = field(default_factory=dict)
    format: str = "auto"  # "flan": rows already rendered (the submix dumps); "auto": decided by the columns


@dataclass(frozen=True)
class FlanCollection:
    """One Flan collection: how many tasks it has, its cap and its share of the mixture."""

    name: str
    description: str
    tasks: int | None
    datasets: int | None
    categories: int | None
    cap: int | None
    proportion_a: float | None  # % of examples in the scaling study (Figure 4, Table 5...)
    proportion_b: float | None  # % of examples in the released Flan-PaLM / Flan-T5 models
    templates: dict[str, float]
    source: SourceDefault | None


_NON_COT_MIX = {"zero_shot_opts": 0.25, "zero_shot_noopts": 0.25, "few_shot_opts": 0.25, "few_shot_noopts": 0.25, "cot": 0.0}
_COT_MIX = {"zero_shot_opts": 0.0, "zero_shot_noopts": 0.0, "few_shot_opts": 0.0, "few_shot_noopts": 0.0, "cot": 1.0}
_DIALOG_MIX = {"zero_shot_opts": 0.0, "zero_shot_noopts": 0.5, "few_shot_opts": 0.0, "few_shot_noopts": 0.5, "cot": 0.0}
# The public Flan 2022 submix dumps: one row per rendered example, task name and template type per row.
_SUBMIX_COLUMNS = {"inputs": "inputs", "targets": "targets", "task": "task_name", "template_type": "template_type"}

#: name -> FlanCollection, in the paper's order.
COLLECTIONS: dict[str, FlanCollection] = {
    "muffin": FlanCollection(
        "muffin", "Multi-task finetuning with instructions: Flan 2021 plus dialog and program synthesis",
        80, 69, 27, 30_000, 52.0, 46.0, _NON_COT_MIX,
        SourceDefault("hf", "conceptofmind/flan2021_submix_original", columns=_SUBMIX_COLUMNS, format="flan"),
    ),
    "t0_sf": FlanCollection(
        "t0_sf", "T0-SF: tasks from T0 that do not overlap with Muffin",
        193, 55, 38, 20_000, 15.0, 27.9, _NON_COT_MIX,
        SourceDefault("hf", "conceptofmind/t0_submix_original", columns=_SUBMIX_COLUMNS, format="flan"),
    ),
    "cot": FlanCollection(
        "cot", "Chain-of-thought: nine datasets with human-written rationales",
        9, 9, 1, 100_000, 3.0, 1.8, _COT_MIX,
        SourceDefault("hf", "conceptofmind/cot_submix_original", columns=_SUBMIX_COLUMNS, format="flan"),
    ),
    "niv2": FlanCollection(
        "niv2", "Natural Instructions v2 (Super-NaturalInstructions)",
        1_554, 372, 108, 5_000, 30.0, 24.2, _NON_COT_MIX,
        SourceDefault("hf", "conceptofmind/niv2_submix_original", columns=_SUBMIX_COLUMNS, format="flan"),
    ),
    # Part of the later Flan 2022 Collection release, not of the paper's finetuning mixture;
    # that release caps dialog tasks at 200,000 examples each.
    "dialog": FlanCollection(
        "dialog", "Dialog tasks of the Flan 2022 Collection (not in the paper's mixture)",
        None, None, None, 200_000, None, None, _DIALOG_MIX,
        SourceDefault("hf", "conceptofmind/dialog_submix_original", columns=_SUBMIX_COLUMNS, format="flan"),
    ),
    # Procedural tasks shipped with flanctl (see catalog/builtin.py): offline, for tests.
    "builtin": FlanCollection(
        "builtin", "Procedural tasks generated locally (flanctl's offline stand-in for Flan data)",
        None, None, None, 1_000, None, None, _NON_COT_MIX,
        SourceDefault("builtin", "builtin"),
    ),
}

#: The four collections of the paper's finetuning mixture.
FLAN_MIXTURE = ("muffin", "t0_sf", "cot", "niv2")

#: The full Flan mixture after de-duplication across collections (Section 2.1).
FLAN_TOTALS = {"tasks": 1_836, "datasets": 473, "categories": 146}

#: Mixture proportions in percent, by name ("A": scaling study, "B": released models).
PROPORTIONS: dict[str, dict[str, float]] = {
    "A": {name: COLLECTIONS[name].proportion_a for name in FLAN_MIXTURE},
    "B": {name: COLLECTIONS[name].proportion_b for name in FLAN_MIXTURE},
}


#: NIV2 tasks built from MMLU (Super-NaturalInstructions task664..task737, spelled
#: "mmmlu_answer_generation_<subject>"): the paper removed them so that MMLU stays held out.
MMLU_DERIVED_EXAMPLES = ("task664_mmmlu_answer_generation_abstract_algebra", "task737_mmmlu_answer_generation_world_religions")


def is_mmlu_derived(task_name: str) -> bool:
    """True for an NIV2 task made from MMLU (matches 'mmmlu' and a plain 'mmlu' alike)."""
    return "mmlu" in task_name.lower()
