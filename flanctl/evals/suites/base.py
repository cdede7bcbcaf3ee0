"""What every suite is made of: examples with prompts and gold answers, and the scoring loop.

A suite loads its examples (with stable ids, DESIGN.md), says how to generate (stop sequences,
length), how to read an answer out of generated text (`extract`), how to make answers
comparable (`canonical`, also the key for self-consistency votes), and how the paper
aggregates per-task accuracies into its headline number.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from flanctl.catalog.suites import normalized_score
from flanctl.errors import FlanctlError


@dataclass
class EvalExample:
    """One scored question. `golds` holds the canonical gold answers (TyDiQA has several)."""

    id: str
    task: str
    prompt: str
    target: str
    golds: tuple[str, ...]
    subtask: str | None = None
    options: tuple[str, ...] = ()
    chance: float = 0.0  # probability that a uniformly random option is right (0 for free answers)
    max_new_tokens: int = 0  # this question's decode budget (0: the suite's `max_new_tokens`)


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def majority(answers: list[str | None]) -> str | None:
    """The most common non-empty answer; ties go to the answer seen first (so greedy-first order wins)."""
    counted = Counter(a for a in answers if a is not None and a != "")
    if not counted:
        return None
    top = max(counted.values())
    return next(a for a in answers if a is not None and a != "" and counted[a] == top)


#: How many times the longest answer in a prompt's own exemplars a decode budget must hold.
#: Measured on the published code-davinci-002 BBH outputs: correct CoT answers are up to 4.1
#: times the longest exemplar rationale of their prompt file in UTF-8 bytes
#: (tracking_shuffled_objects_seven_objects, whose exemplars shuffle three objects), which is
#: within 2x in tokens for any tokenizer of at least ~2 bytes per token; direct answers of
#: word_sorting reach 3.5 times the exemplars' (the sorted list grows with the question).
COT_BUDGET_MARGIN = 2.0
DIRECT_BUDGET_MARGIN = 4.0
BUDGET_STEP = 32


def decode_budget(longest_answer: str, margin: float, floor: int = BUDGET_STEP) -> int:
    """Tokens to allow for an answer up to `margin` times as long as `longest_answer`.

    Counted in UTF-8 bytes, an upper bound on tokens for every tokenizer flanctl uses (the
    byte tokenizer spends one token per byte; sentencepiece and BPE pieces cover at least one
    byte each), plus one for a leading piece, rounded up to a multiple of `BUDGET_STEP`.
    Generation stops at the suite's stop sequences, so a large budget costs only the rows that
    need it.
    """
    need = math.ceil(len(longest_answer.encode("utf-8")) * margin) + 1
    return max(floor, BUDGET_STEP * math.ceil(need / BUDGET_STEP))


def find_suite_dir(data_dir: str | Path | None, name: str, markers: tuple[str, ...]) -> Path | None:
    """`<data_dir>/<name>` when it exists, else `data_dir` itself when it already looks like the
    suite's folder (holds one of `markers`), else None."""
    if data_dir is None:
        return None
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FlanctlError(f"--data-dir {root} is not a directory; pass the folder that holds {name}/")
    if (root / name).is_dir():
        return root / name
    if any((root / m).exists() for m in markers):
        return root
    return None


class Suite:
    """Base of the suites; subclasses fill in loading, extraction and aggregation.

    A suite class also answers the runner's questions about itself, so the runner never
    compares suite names: which run options it takes (`from_options`), which scoring methods
    it supports (`methods`), and which `eval.shots` key it reads (`shots_key`).
    """

    name: str = ""
    #: Scoring methods: "generate" (read the answer from generated text) and, for suites with
    #: answer options, "loglikelihood" (rank the options).
    methods: ClassVar[tuple[str, ...]] = ("generate",)
    #: What precedes an option when "loglikelihood" scores it as the prompt's continuation.
    option_prefix: ClassVar[str] = " "
    #: The `eval.shots` key shared with the suite's other variant ("mmlu" for mmlu-cot);
    #: the suite's own name wins when both are given.
    shots_key: ClassVar[str | None] = None
    cot: bool = False
    default_shots: int = 0
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ("\n\n",)
    headline_tasks: tuple[str, ...] | None = None  # tasks averaged for the headline (None = all)
    shots_used: int = 0  # set by `load`
    split: str | None = None  # the split scored, for suites that have a choice (MMLU)
    #: Per-task decode budgets derived from the data by `load` (task -> tokens); empty when
    #: every question has the suite's `max_new_tokens`. Set per instance by `_set_budgets`.
    budgets: dict[str, int] = {}  # never mutated: `_set_budgets` assigns a new dict

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "Suite":
        """A fresh suite from the run's options (spec `eval` settings, CLI flags). Each suite
        reads the options it declares and ignores the rest, so one set of options can be
        handed to every suite of a group."""
        return cls()

    def shots_for(self, shots: int | Mapping[str, int] | None) -> int | None:
        """The shot count this suite takes from `shots` (one number, or the spec's per-suite map)."""
        if isinstance(shots, Mapping):
            if self.name in shots:
                return shots[self.name]
            return shots.get(self.shots_key) if self.shots_key else None
        return shots

    # ---- data
    def load(self, data_dir: str | Path | None, limit: int | None = None, shots: int | None = None) -> list[EvalExample]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """Protocol settings recorded next to the scores (prompt source, shots, rules)."""
        out = {"shots": self.shots_used, "cot": self.cot, "max_new_tokens": self.max_new_tokens, "stop": list(self.stop)}
        if self.budgets:
            out["decode_budgets"] = dict(self.budgets)
        if self.split is not None:
            out["split"] = self.split
        return out

    def _set_budgets(self, examples: list[EvalExample]) -> None:
        """Record the per-task budgets of `examples`; the suite's `max_new_tokens` becomes the largest."""
        budgets: dict[str, int] = {}
        for ex in examples:
            if ex.max_new_tokens:
                budgets[ex.task] = max(budgets.get(ex.task, 0), ex.max_new_tokens)
        self.budgets = dict(sorted(budgets.items()))
        if budgets:
            self.max_new_tokens = max(budgets.values())

    # ---- scoring
    def extract(self, text: str, example: EvalExample) -> str | None:
        raise NotImplementedError

    def answer_key(self, text: str, example: EvalExample) -> str | None:
        """Canonical answer read from one generated text (the unit of voting and comparison)."""
        return self.extract(text, example)

    def task_scores(self, per_task: dict[str, list[bool]]) -> dict[str, float]:
        return {t: 100.0 * mean(v) for t, v in sorted(per_task.items())}

    def headline(self, tasks: dict[str, float]) -> float:
        """The mean over the headline tasks; an error when none was scored (an aggregate over
        nothing is "no data", never 0)."""
        keys = [t for t in tasks if self.headline_tasks is None or t in self.headline_tasks]
        if tasks and not keys:
            raise FlanctlError(
                f"{self.name}: no data for the headline: none of its tasks ({', '.join(sorted(self.headline_tasks or ()))}) "
                f"was scored (found only {', '.join(sorted(tasks))}); add their files to the data dir"
            )
        return mean(tasks[t] for t in keys)

    @staticmethod
    def task_chances(examples: list[EvalExample]) -> dict[str, float]:
        """Per task, the accuracy in % of a uniformly random choice among each question's options."""
        per_task: dict[str, list[float]] = {}
        for ex in examples:
            per_task.setdefault(ex.task, []).append(ex.chance)
        return {t: 100.0 * mean(v) for t, v in per_task.items()}

    def chance_level(self, examples: list[EvalExample]) -> float:
        """The headline score of a random-choice guesser, aggregated like the headline."""
        return self.headline(self.task_chances(examples))

    def normalized(self, tasks: dict[str, float], examples: list[EvalExample]) -> float:
        """The suite's contribution to the paper's normalized average: each task normalized by
        its own chance, `100 * (score - chance) / (100 - chance)` (BIG-bench's normalized
        score), aggregated like the headline. Equal to normalizing the headline when every
        task has the same chance (MMLU 25, TyDiQA and MGSM 0); for BBH each subtask file has
        its own (1/2 for binary tasks, 1/7 for seven options, 0 for free answers)."""
        chances = self.task_chances(examples)
        return self.headline({t: normalized_score(s, chances.get(t, 0.0)) for t, s in tasks.items()})

    def score(self, examples: list[EvalExample], outputs: dict[str, list[str]]) -> dict[str, Any]:
        """Score generated texts (id -> samples; several samples = self-consistency vote)."""
        per_task: dict[str, list[bool]] = {}
        per_subtask: dict[str, list[bool]] = {}
        missing = 0
        records = []
        for ex in examples:
            samples = outputs.get(ex.id)
            if samples is None:
                missing += 1
                answer = None
            else:
                answer = majority([self.answer_key(s, ex) for s in samples])
            ok = answer is not None and answer in ex.golds
            per_task.setdefault(ex.task, []).append(ok)
            if ex.subtask is not None:
                per_subtask.setdefault(ex.subtask, []).append(ok)
            records.append({"id": ex.id, "answer": answer, "correct": ok})
        tasks = self.task_scores(per_task)
        result: dict[str, Any] = {
            "suite": self.name,
            "score": self.headline(tasks),
            "tasks": tasks,
        }
        if per_subtask:
            result["subtasks"] = {s: 100.0 * mean(v) for s, v in sorted(per_subtask.items())}
        result["n"] = len(examples)
        result["micro"] = 100.0 * mean(r["correct"] for r in records)
        result["missing"] = missing
        result["chance"] = self.chance_level(examples)
        result["normalized"] = self.normalized(tasks, examples)
        result["_records"] = records
        return result


def prompts_hash(examples: list[EvalExample]) -> str:
    """sha256 over the rendered prompts in order, so two runs can tell they asked the same."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(ex.id.encode())
        digest.update(b"\0")
        digest.update(ex.prompt.encode())
        digest.update(b"\0")
    return digest.hexdigest()
