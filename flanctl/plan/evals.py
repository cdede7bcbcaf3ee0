"""Eval section of the plan: suites, shots and example counts under the spec's settings.

Every number comes from the catalog's facts of each suite (`flanctl.catalog.suites`); a group
such as `flan-held-out` is sized as the sum of its members.
"""

from __future__ import annotations

from typing import Any

from flanctl.catalog.suites import BUILTIN_EXAMPLES_PER_TASK, BUILTIN_SUITES, SUITES, suite_examples


def _suite_row(name: str, ev: Any) -> dict[str, Any]:
    facts = SUITES[name]
    split = ev.mmlu_split if facts.splits else None
    if facts.members:
        rows = [_suite_row(m, ev) for m in facts.members]
        subtasks = sum(r["subtasks"] for r in rows)
        full = sum(r["full_examples"] for r in rows)
        examples = sum(r["examples"] for r in rows)
        generations = sum(r["generations"] for r in rows)
        return {"name": name, "shots": None, "cot": None, "metric": None, "subtasks": subtasks, "tasks": sum(r["tasks"] for r in rows),
                "examples": examples, "full_examples": full, "samples": None, "generations": generations,
                "chance": None, "members": list(facts.members), "paper_scores": {}, "split": None}
    if name in BUILTIN_SUITES and ev.builtin_tasks:  # the suite's own option: which held-out tasks
        subtasks, full = len(ev.builtin_tasks), len(ev.builtin_tasks) * BUILTIN_EXAMPLES_PER_TASK
    else:
        subtasks, full = len(facts.subtasks) or facts.tasks, suite_examples(name, split)
    examples = min(full, ev.limit * subtasks) if (ev.limit and subtasks) else full
    samples = ev.self_consistency.samples if facts.cot else 1
    return {
        "name": name,
        "shots": ev.shots.get(name, facts.shots),
        "cot": facts.cot,
        "metric": facts.metric,
        "subtasks": subtasks,
        "tasks": facts.tasks,
        "examples": examples,
        "full_examples": full,
        "samples": samples,
        "generations": examples * samples,
        "chance": facts.chance,
        "split": split,
        "paper_scores": dict(facts.reference(split).scores),
    }


def eval_section(spec: Any, notes: list[str]) -> dict[str, Any]:
    """The plan's `eval` object."""
    ev = spec.eval
    suites = [_suite_row(name, ev) for name in ev.suites]
    if ev.limit:
        notes.append(f"eval.limit={ev.limit}: suites are subsampled; headline numbers need the full sets")
    return {
        "suites": suites,
        "examples": sum(s["examples"] for s in suites),
        "generations": sum(s["generations"] for s in suites),
        "self_consistency": {"samples": ev.self_consistency.samples, "temperature": ev.self_consistency.temperature},
        "data_dir": ev.data_dir,
        "every": spec.train.eval_every,
    }
