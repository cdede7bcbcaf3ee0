"""The numbers behind the scaling plot (the shape of the paper's Figure 4).

x = number of finetuning tasks in a run's mixture, y = normalized held-out score, one line per
model size. The paper normalizes each suite as `100 * (score - chance) / (100 - chance)` and
averages over suites; we do the same over whatever held-out suites a run evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from flanctl.catalog import collections as catalog_collections
from flanctl.catalog import suites as catalog_suites
from flanctl.catalog.builtin import BUILTIN_TRAIN_TASKS
from flanctl.catalog.suites import normalized_score
from flanctl.report.rundata import RunRecord, SuiteResult

# Collections whose task lists live in the catalog, by the spec's collection name.
_FLAN_COLLECTIONS = ("muffin", "t0_sf", "niv2", "cot", "dialog")


@dataclass(frozen=True)
class ScalingPoint:
    """One run placed on the scaling plot."""

    run: str
    params: int | None
    num_tasks: int
    score: float  # normalized held-out score, percent
    before: float | None  # the same score before finetuning, when the run recorded it


def _catalog_task_names(collection: str) -> list[str] | None:
    """Train-task names of a collection from the catalog, or None when the catalog lacks them."""
    if collection == "builtin":
        return list(BUILTIN_TRAIN_TASKS)
    return None


def _catalog_task_count(collection: str) -> int | None:
    """Task count of a Flan collection (the paper's facts, via the catalog)."""
    table = catalog_collections.COLLECTIONS
    entry = table.get(collection) if isinstance(table, dict) else None
    if isinstance(entry, dict):
        value = entry.get("tasks", entry.get("num_tasks"))
    else:
        value = getattr(entry, "tasks", getattr(entry, "num_tasks", None))
    if isinstance(value, (list, tuple)):
        return len(value)
    return int(value) if isinstance(value, int) else None


def _count_from_plan(plan: dict[str, Any]) -> int | None:
    """Task count if the plan's realised mixture states it (`num_tasks` or a `tasks` list)."""
    mixture = plan.get("mixture") or {}
    for key in ("num_tasks", "tasks_total"):
        if isinstance(mixture.get(key), int):
            return int(mixture[key])
    total, seen = 0, False
    for coll in mixture.get("collections") or []:
        if not isinstance(coll, dict) or float(coll.get("proportion", 1) or 0) == 0:
            continue
        value = coll.get("num_tasks", coll.get("tasks"))
        if isinstance(value, list):
            total, seen = total + len(value), True
        elif isinstance(value, int):
            total, seen = total + value, True
        else:
            return None  # one collection without a count: fall back to the spec
    return total if seen else None


def _count_from_spec(spec: dict[str, Any]) -> int | None:
    """Task count from the resolved spec: explicit task lists, else the catalog's."""
    total = 0
    for coll in (spec.get("mixture") or {}).get("collections") or []:
        if float(coll.get("proportion", 0) or 0) == 0:
            continue
        excluded = set(coll.get("exclude_tasks") or [])
        names = coll.get("tasks") or _catalog_task_names(coll.get("name", ""))
        if names is not None:
            count = len([t for t in names if t not in excluded])
        elif coll.get("name") in _FLAN_COLLECTIONS and not coll.get("user_tasks"):
            base = _catalog_task_count(coll["name"])
            if base is None:
                return None
            count = base - len(excluded)
        else:
            count = 0
        total += count + len(coll.get("user_tasks") or [])
    return total or None


def num_finetuning_tasks(run: RunRecord) -> int | None:
    """Number of training tasks in the run's mixture (None when it cannot be told)."""
    return _count_from_plan(run.plan) if _count_from_plan(run.plan) is not None else _count_from_spec(run.spec)


def suite_chance(result: SuiteResult) -> float:
    """Chance rate (percent) of a suite: the eval file's own, else the catalog's, else 0."""
    if result.chance is not None:
        return result.chance
    table = catalog_suites.SUITES
    entry = table.get(result.suite) if isinstance(table, dict) else None
    value = entry.get("chance") if isinstance(entry, dict) else getattr(entry, "chance", None)
    return float(value) if isinstance(value, (int, float)) else 0.0


def normalize(score: float, chance: float) -> float:
    """The suite-level normalization (0 = chance, 100 = perfect), for results written without
    their own `normalized` score."""
    return normalized_score(score, chance) if chance < 100 else 0.0


def normalized_heldout(evals: dict[str, SuiteResult]) -> float | None:
    """Mean normalized score over the suites that have a score: each suite's own `normalized`
    (its tasks normalized by their own chance, as the evals compute it), else suite-level."""
    values = [r.normalized if r.normalized is not None else normalize(r.score, suite_chance(r))
              for r in evals.values() if r.score is not None]
    return sum(values) / len(values) if values else None


def scaling_points(runs: list[RunRecord]) -> tuple[list[ScalingPoint], list[str]]:
    """Points for the scaling plot, and one note per run left out (and why)."""
    points: list[ScalingPoint] = []
    notes: list[str] = []
    for run in runs:
        tasks = num_finetuning_tasks(run)
        score = run.normalized_average if run.normalized_average is not None else normalized_heldout(run.evals)
        if tasks is None:
            notes.append(f"{run.name}: left out of the scaling plot (the number of finetuning tasks is unknown)")
            continue
        if score is None:
            notes.append(f"{run.name}: left out of the scaling plot (no evals)")
            continue
        points.append(ScalingPoint(run.name, run.params, tasks, score, normalized_heldout(run.evals_before)))
    return points, notes


class SummaryPoint(NamedTuple):
    """One point of the plot: the runs at one (size, task count) and their spread."""

    params: int | None
    num_tasks: int
    runs: int
    mean: float
    lowest: float
    highest: float


def scaling_summary(points: list[ScalingPoint]) -> list[SummaryPoint]:
    """One `SummaryPoint` per (size, task count), by size and task count; the 0-task point is
    the mean of the runs' scores before finetuning (the same base, evaluated by each run)."""
    groups: dict[tuple[int | None, int], list[float]] = {}
    befores: dict[int | None, list[float]] = {}
    for p in points:
        groups.setdefault((p.params, p.num_tasks), []).append(p.score)
        if p.before is not None:
            befores.setdefault(p.params, []).append(p.before)
    for params, values in befores.items():
        groups.setdefault((params, 0), []).append(sum(values) / len(values))
    return [SummaryPoint(params, tasks, len(v), sum(v) / len(v), min(v), max(v))
            for (params, tasks), v in sorted(groups.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))]


def format_params(params: int | None) -> str:
    """Human size label: 1.2M, 3.4B."""
    if params is None:
        return "unknown size"
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if params >= div:
            return f"{params / div:.3g}{unit}"
    return str(params)
