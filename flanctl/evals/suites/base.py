"""What every suite is made of: examples with prompts and gold answers, and the scoring loop.

A suite loads its examples (with stable ids, DESIGN.md), says how to generate (stop sequences,
length), how to read an answer out of generated text (`extract`), how to make answers
comparable (`canonical`, also the key for self-consistency votes), and how the paper
aggregates per-task accuracies into its headline number.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """Base of the suites; subclasses fill in loading, extraction and aggregation."""

    name: str = ""
    cot: bool = False
    default_shots: int = 0
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ("\n\n",)
    headline_tasks: tuple[str, ...] | None = None  # tasks averaged for the headline (None = all)
    shots_used: int = 0  # set by `load`

    # ---- data
    def load(self, data_dir: str | Path | None, limit: int | None = None, shots: int | None = None) -> list[EvalExample]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """Protocol settings recorded next to the scores (prompt source, shots, rules)."""
        return {"shots": self.shots_used, "cot": self.cot, "max_new_tokens": self.max_new_tokens, "stop": list(self.stop)}

    # ---- scoring
    def extract(self, text: str, example: EvalExample) -> str | None:
        raise NotImplementedError

    def answer_key(self, text: str, example: EvalExample) -> str | None:
        """Canonical answer read from one generated text (the unit of voting and comparison)."""
        return self.extract(text, example)

    def task_scores(self, per_task: dict[str, list[bool]]) -> dict[str, float]:
        return {t: 100.0 * mean(v) for t, v in sorted(per_task.items())}

    def headline(self, tasks: dict[str, float]) -> float:
        keys = [t for t in tasks if self.headline_tasks is None or t in self.headline_tasks]
        return mean(tasks[t] for t in keys)

    def chance_level(self, examples: list[EvalExample]) -> float:
        """The headline score of a random-choice guesser, aggregated like the headline."""
        per_task: dict[str, list[float]] = {}
        for ex in examples:
            per_task.setdefault(ex.task, []).append(ex.chance)
        return self.headline({t: 100.0 * mean(v) for t, v in per_task.items()})

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
