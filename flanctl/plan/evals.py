"""Eval section of the plan: suites, shots and example counts under the spec's settings."""

from __future__ import annotations

from typing import Any

from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS
from flanctl.catalog.suites import BUILTIN_EXAMPLES_PER_TASK, MMLU_SUBJECTS, SUITES, suite_examples


def eval_section(spec: Any, notes: list[str]) -> dict[str, Any]:
    """The plan's `eval` object."""
    ev = spec.eval
    samples = ev.self_consistency.samples
    suites = []
    for name in ev.suites:
        suite = SUITES[name]
        shots = ev.shots.get(name, suite.shots)
        if name in ("mmlu", "mmlu-cot"):
            subtasks = len(MMLU_SUBJECTS)
            full = suite_examples(name)
        elif name == "builtin":
            tasks = ev.builtin_tasks or list(BUILTIN_HELD_OUT_TASKS)
            subtasks = len(tasks)
            full = subtasks * BUILTIN_EXAMPLES_PER_TASK
        else:
            subtasks = len(suite.subtasks)
            full = suite.examples
        examples = min(full, ev.limit * subtasks) if (ev.limit and subtasks) else full
        suite_samples = samples if suite.cot else 1
        suites.append(
            {
                "name": name,
                "shots": shots,
                "cot": suite.cot,
                "metric": suite.metric,
                "subtasks": subtasks,
                "tasks": suite.tasks,
                "examples": examples,
                "full_examples": full,
                "samples": suite_samples,
                "generations": examples * suite_samples,
                "chance": suite.chance,
                "paper_scores": dict(suite.paper_scores),
            }
        )
    if ev.limit:
        notes.append(f"eval.limit={ev.limit}: suites are subsampled; headline numbers need the full sets")
    return {
        "suites": suites,
        "examples": sum(s["examples"] for s in suites),
        "generations": sum(s["generations"] for s in suites),
        "self_consistency": {"samples": samples, "temperature": ev.self_consistency.temperature},
        "data_dir": ev.data_dir,
    }
