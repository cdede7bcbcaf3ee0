"""Eval suites of the paper's held-out protocol: subtasks, sizes, shots, chance, paper scores.

Keyed by the suite name the spec uses (`eval.suites`). The eval room reads the same facts, so
the plan's example counts and the scorer's expectations cannot drift apart.

Paper scores are Chung et al. (2022), Table 5 / Section 4 (Flan-PaLM 540B) and the Flan-T5
table of Appendix D; `None` where the number is not recorded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MMLU_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics",
    "econometrics", "electrical_engineering", "elementary_mathematics", "formal_logic",
    "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law",
    "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations",
    "security_studies", "sociology", "us_foreign_policy", "virology", "world_religions",
)

#: BBH subtask file -> number of examples (27 files, 6,511 examples).
BBH_SUBTASK_SIZES: dict[str, int] = {
    name: 250
    for name in (
        "boolean_expressions", "date_understanding", "disambiguation_qa", "dyck_languages",
        "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
        "logical_deduction_seven_objects", "logical_deduction_three_objects",
        "movie_recommendation", "multistep_arithmetic_two", "navigate", "object_counting",
        "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection",
        "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
        "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
        "web_of_lies", "word_sorting",
    )
} | {"causal_judgement": 187, "penguins_in_a_table": 146, "snarks": 178}

#: BBH tasks split into several files (averaged over their files first: 27 files -> 23 tasks).
BBH_MULTI_FILE_TASKS: dict[str, tuple[str, ...]] = {
    "logical_deduction": ("logical_deduction_three_objects", "logical_deduction_five_objects", "logical_deduction_seven_objects"),
    "tracking_shuffled_objects": (
        "tracking_shuffled_objects_three_objects",
        "tracking_shuffled_objects_five_objects",
        "tracking_shuffled_objects_seven_objects",
    ),
}

#: TyDiQA-GoldP validation examples per non-English language (English is excluded by the protocol).
TYDIQA_LANGUAGE_SIZES: dict[str, int] = {
    "arabic": 921, "bengali": 113, "finnish": 782, "indonesian": 565,
    "korean": 276, "russian": 812, "swahili": 499, "telugu": 669,
}

#: MGSM languages scored (English is excluded by the protocol); 250 problems each.
MGSM_LANGUAGES: tuple[str, ...] = ("bn", "de", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")


@dataclass(frozen=True)
class Suite:
    """One eval suite as the paper runs it."""

    name: str
    description: str
    shots: int
    cot: bool
    metric: str  # "accuracy" (option/answer match) or "exact_match"
    subtasks: dict[str, int]  # subtask -> examples (empty when sizes depend on local files)
    tasks: int  # tasks reported (BBH: 23 tasks from 27 files)
    chance: float  # accuracy in % of random guessing, for the normalized average
    paper_scores: dict[str, float | None] = field(default_factory=dict)  # model -> score in %
    id_format: str = "<subtask>-<i>"

    @property
    def examples(self) -> int:
        """Total examples over every subtask."""
        return sum(self.subtasks.values())


# MMLU test split rows per subject are not listed individually; the total is the paper's 14,042.
MMLU_TEST_EXAMPLES = 14_042

# Random-choice accuracy on BBH: per file, 1/(number of options) for multiple-choice examples
# and 0 for free answers, averaged with the three-way tasks first (23 tasks). Computed from the
# 6,511 examples of the 27 public files by flanctl.evals.suites.bbh.BBH.chance_level.
BBH_CHANCE = 27.3

# Paper scores (Chung et al. 2022, Table 5 / Figure 1), in %. Checked against sources found while
# building: Flan-PaLM 540B MMLU 73.5, BBH 57.9, MGSM 57.0 (and MMLU CoT + self-consistency 75.2).
# Not re-checked: Flan-PaLM 540B MMLU-CoT 70.9, BBH-CoT 66.3, TyDiQA 67.8 and every Flan-T5-XXL
# value; Flan-T5-XXL TyDiQA and MGSM are left None rather than guessed.
SUITES: dict[str, Suite] = {
    "mmlu": Suite(
        "mmlu", "MMLU, 57 exam subjects, 5-shot direct answer", 5, False, "accuracy",
        {}, 57, 25.0, {"flan-palm-540b": 73.5, "flan-t5-xxl": 55.1}, "<subject>-<i>",
    ),
    "mmlu-cot": Suite(
        "mmlu-cot", "MMLU, 57 exam subjects, 5-shot chain-of-thought", 5, True, "accuracy",
        {}, 57, 25.0, {"flan-palm-540b": 70.9, "flan-t5-xxl": 48.6}, "<subject>-<i>",
    ),
    "bbh": Suite(
        "bbh", "BIG-Bench Hard, 23 tasks (27 files), 3-shot direct answer", 3, False, "exact_match",
        dict(BBH_SUBTASK_SIZES), 23, BBH_CHANCE, {"flan-palm-540b": 57.9, "flan-t5-xxl": 45.3},
    ),
    "bbh-cot": Suite(
        "bbh-cot", "BIG-Bench Hard, 23 tasks (27 files), 3-shot chain-of-thought", 3, True, "exact_match",
        dict(BBH_SUBTASK_SIZES), 23, BBH_CHANCE, {"flan-palm-540b": 66.3, "flan-t5-xxl": 41.4},
    ),
    "tydiqa": Suite(
        "tydiqa", "TyDiQA-GoldP, 8 non-English languages, 1-shot, exact match", 1, False, "exact_match",
        dict(TYDIQA_LANGUAGE_SIZES), 8, 0.0, {"flan-palm-540b": 67.8, "flan-t5-xxl": None}, "<dataset id>",
    ),
    "mgsm": Suite(
        "mgsm", "MGSM, 10 non-English languages, 8-shot chain-of-thought, exact match", 8, True, "exact_match",
        {lang: 250 for lang in MGSM_LANGUAGES}, 10, 0.0, {"flan-palm-540b": 57.0, "flan-t5-xxl": None}, "<lang>-<i>",
    ),
    "flan-held-out": Suite(
        "flan-held-out", "Held-out tasks given as local files (sizes known once the data is local)", 0, False, "exact_match",
        {}, 0, 0.0, {},
    ),
    "builtin": Suite(
        "builtin", "flanctl's held-out procedural tasks (never trained on), zero-shot", 0, False, "exact_match",
        # Chance: 1/(options) per multiple-choice task, 0 for free answers, averaged over the four
        # held-out tasks (a test recomputes it from the generated test examples).
        {}, 0, 25.0, {}, "<task>-<i>",
    ),
}

#: Built-in suite examples per held-out task when `eval.limit` is not set.
BUILTIN_EXAMPLES_PER_TASK = 200

#: The six suites of the paper's normalized average.
HEADLINE_SUITES = ("mmlu", "mmlu-cot", "bbh", "bbh-cot", "tydiqa", "mgsm")


def suite_examples(name: str) -> int:
    """Total examples of a suite at full size (MMLU: the paper's test-set total)."""
    if name in ("mmlu", "mmlu-cot"):
        return MMLU_TEST_EXAMPLES
    return SUITES[name].examples


def normalized_score(score: float, chance: float) -> float:
    """The paper's normalization: `100 * (score - chance) / (100 - chance)`, scores in %."""
    return 100.0 * (score - chance) / (100.0 - chance)
