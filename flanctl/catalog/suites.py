"""Eval suites of the paper's held-out protocol: subtasks, sizes, shots, chance, paper scores.

Keyed by the suite name the spec uses (`eval.suites`). The eval room reads the same facts, so
the plan's example counts and the scorer's expectations cannot drift apart.

Paper scores are Chung et al. (2022), each labelled with the table it comes from (Table 5 for
the six suites, Table 4 for MMLU's test split); `None` where that table has no number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS

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
class PaperReference:
    """Scores the paper prints for one suite (and split), and the table they come from."""

    source: str  # e.g. "Table 5" of Chung et al. (2022)
    scores: dict[str, float | None]  # model -> score in %; None where the table has no number


@dataclass(frozen=True)
class SuiteFacts:
    """One eval suite as the paper runs it (or, with `members`, a group of suites)."""

    name: str
    description: str
    shots: int
    cot: bool
    metric: str  # "accuracy" (option/answer match) or "exact_match"
    subtasks: dict[str, int]  # subtask -> examples (empty when sizes depend on local files)
    tasks: int  # tasks reported (BBH: 23 tasks from 27 files)
    chance: float  # accuracy in % of random guessing, aggregated like the headline
    paper: dict[str | None, PaperReference] = field(default_factory=dict)  # split (None: no splits) -> reference
    id_format: str = "<subtask>-<i>"
    members: tuple[str, ...] = ()  # a group's suites (`flan-held-out`); empty for a suite
    splits: dict[str, int] = field(default_factory=dict)  # split -> examples, for suites that have a split choice
    default_split: str | None = None
    #: Scoring methods: "generate" (read the answer from generated text), and "loglikelihood"
    #: (rank the answer options) for suites whose questions come with options.
    methods: tuple[str, ...] = ("generate",)

    @property
    def examples(self) -> int:
        """Total examples over every subtask (the default split's size for suites with splits)."""
        if self.splits:
            return self.splits[self.default_split or next(iter(self.splits))]
        return sum(self.subtasks.values())

    def reference(self, split: str | None = None) -> PaperReference:
        """The paper's numbers for the split scored (the default split when None)."""
        key = (split or self.default_split) if self.splits else None
        return self.paper.get(key, PaperReference("", {}))


#: MMLU rows per split (57 subjects; dev holds the 5 exemplars per subject).
MMLU_SPLIT_EXAMPLES = {"val": 1_531, "test": 14_042}
MMLU_TEST_EXAMPLES = MMLU_SPLIT_EXAMPLES["test"]
#: The paper reports MMLU on the validation split everywhere except Tables 1 and 4 (App. D.1).
MMLU_DEFAULT_SPLIT = "val"

# Random-choice accuracy on BBH: per file, 1/(number of options) for multiple-choice examples,
# 1/2 for binary answers and 0 for free answers; aggregated like the headline (the mean over
# the 27 files, Flan paper App. D.2). Computed from the 6,511 examples of the 27 public files
# by flanctl.evals.suites.bbh.BBH.chance_level (a test recomputes both).
BBH_CHANCE = 26.6
#: The same, aggregated as the BBH paper does (three-way tasks averaged first, 23 tasks).
BBH_CHANCE_23_TASKS = 27.3

#: The suites that score the built-in held-out tasks (they take `eval.builtin_tasks`).
BUILTIN_SUITES = ("builtin", "builtin-cot")

#: Built-in suite examples per held-out task when `eval.limit` is not set.
BUILTIN_EXAMPLES_PER_TASK = 200

#: The six suites of the paper's normalized average (the `flan-held-out` group).
HEADLINE_SUITES = ("mmlu", "mmlu-cot", "bbh", "bbh-cot", "tydiqa", "mgsm")


def _table5(palm: float, t5: float) -> PaperReference:
    return PaperReference("Table 5", {"flan-palm-540b": palm, "flan-t5-xxl": t5})


# Paper scores, Chung et al. (2022), in %. Table 5 (p. 11) holds every model on the six suites
# (MMLU on the validation split, BBH as the mean over its 27 subtask files); Table 4 (p. 8) holds
# Flan-PaLM 540B on the MMLU test split (there is no Flan-T5 test-split number in the paper).
SUITES: dict[str, SuiteFacts] = {
    "mmlu": SuiteFacts(
        "mmlu", "MMLU, 57 exam subjects, 5-shot direct answer", 5, False, "accuracy", {}, 57, 25.0,
        paper={
            "val": PaperReference("Table 5 (validation split)", {"flan-palm-540b": 73.5, "flan-t5-xxl": 55.1}),
            "test": PaperReference("Table 4 (test split)", {"flan-palm-540b": 72.2, "flan-t5-xxl": None}),
        },
        id_format="<subject>-<i>", splits=dict(MMLU_SPLIT_EXAMPLES), default_split=MMLU_DEFAULT_SPLIT,
        methods=("generate", "loglikelihood"),
    ),
    "mmlu-cot": SuiteFacts(
        "mmlu-cot", "MMLU, 57 exam subjects, 5-shot chain-of-thought", 5, True, "accuracy", {}, 57, 25.0,
        paper={
            "val": PaperReference("Table 5 (validation split)", {"flan-palm-540b": 70.9, "flan-t5-xxl": 48.6}),
            "test": PaperReference("Table 4 (test split)", {"flan-palm-540b": 70.2, "flan-t5-xxl": None}),
        },
        id_format="<subject>-<i>", splits=dict(MMLU_SPLIT_EXAMPLES), default_split=MMLU_DEFAULT_SPLIT,
    ),
    "bbh": SuiteFacts(
        "bbh", "BIG-Bench Hard, 27 subtask files (23 tasks), 3-shot direct answer", 3, False, "exact_match",
        dict(BBH_SUBTASK_SIZES), 23, BBH_CHANCE, paper={None: _table5(57.9, 45.3)},
    ),
    "bbh-cot": SuiteFacts(
        "bbh-cot", "BIG-Bench Hard, 27 subtask files (23 tasks), 3-shot chain-of-thought", 3, True, "exact_match",
        dict(BBH_SUBTASK_SIZES), 23, BBH_CHANCE, paper={None: _table5(66.3, 41.4)},
    ),
    "tydiqa": SuiteFacts(
        "tydiqa", "TyDiQA-GoldP, 8 non-English languages, 1-shot, exact match", 1, False, "exact_match",
        dict(TYDIQA_LANGUAGE_SIZES), 8, 0.0, paper={None: _table5(67.8, 19.0)}, id_format="<dataset id>",
    ),
    "mgsm": SuiteFacts(
        "mgsm", "MGSM, 10 non-English languages, 8-shot chain-of-thought, exact match", 8, True, "exact_match",
        {lang: 250 for lang in MGSM_LANGUAGES}, 10, 0.0, paper={None: _table5(57.0, 4.9)}, id_format="<lang>-<i>",
    ),
    "flan-held-out": SuiteFacts(
        "flan-held-out", "The paper's six held-out evaluations, with their normalized average", 0, False, "exact_match",
        {}, 0, 0.0, members=HEADLINE_SUITES,
    ),
    "builtin": SuiteFacts(
        "builtin", "flanctl's held-out built-in tasks (procedural and world knowledge; never trained on), zero-shot",
        0, False, "exact_match",
        # Chance: 1/(options) per multiple-choice task, 0 for free answers, averaged over the
        # held-out tasks (a test recomputes it from the generated test examples).
        {task: BUILTIN_EXAMPLES_PER_TASK for task in BUILTIN_HELD_OUT_TASKS}, len(BUILTIN_HELD_OUT_TASKS), 25.0,
        id_format="<task>-<i>", methods=("generate", "loglikelihood"),
    ),
    "builtin-cot": SuiteFacts(
        "builtin-cot", "flanctl's held-out built-in tasks, zero-shot chain-of-thought (reasoning, then 'So the answer is X.')",
        0, True, "exact_match",
        {task: BUILTIN_EXAMPLES_PER_TASK for task in BUILTIN_HELD_OUT_TASKS}, len(BUILTIN_HELD_OUT_TASKS), 25.0,
        id_format="<task>-<i>",
    ),
}


def suite_examples(name: str, split: str | None = None) -> int:
    """Total examples of a suite at full size (MMLU: of `split`, by default the paper's
    validation split); a group's is the sum over its members."""
    facts = SUITES[name]
    if facts.members:
        return sum(suite_examples(m, split) for m in facts.members)
    if facts.splits and split is not None:
        return facts.splits[split]
    return facts.examples


def normalized_score(score: float, chance: float) -> float:
    """The paper's normalization: `100 * (score - chance) / (100 - chance)`, scores in %."""
    return 100.0 * (score - chance) / (100.0 - chance)
