"""Mixture section of the plan: collections, caps, proportions, templates, expected counts.

Expected counts come from the catalog (what the collections hold in the paper); the realized
counts need the data on disk and are filled in by the data room (`mixture.realized`).
"""

from __future__ import annotations

from typing import Any

from flanctl.catalog.builtin import BUILTIN_TRAIN_TASKS
from flanctl.catalog.collections import COLLECTIONS, FLAN_MIXTURE, FLAN_TOTALS, PROPORTIONS

TEMPLATE_KEYS = ("zero_shot_opts", "zero_shot_noopts", "few_shot_opts", "few_shot_noopts", "cot")


def _normalised(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in weights.items()}


def _task_count(coll: Any, catalog_tasks: int | None) -> int | None:
    """Tasks the collection contributes: a `tasks` list wins, else the catalog, minus exclusions."""
    if coll.tasks is not None:
        count = len(set(coll.tasks) - set(coll.exclude_tasks))
    elif catalog_tasks is not None:
        count = max(catalog_tasks - len(set(coll.exclude_tasks)), 0)
    else:
        count = 0 if coll.user_tasks else None
    if count is None:
        return None
    return count + len(coll.user_tasks)


def _source(coll: Any, catalog: Any) -> dict[str, Any] | None:
    if coll.source is not None:
        return coll.source.model_dump()
    if catalog is not None and catalog.source is not None:
        s = catalog.source
        return {"kind": s.kind, "path": s.path, "split": s.split, "columns": dict(s.columns), "format": s.format, "streaming": False}
    return None


def _download_note(coll: Any, source: dict[str, Any] | None, cap: int | None, notes: list[str]) -> None:
    """What reading a hub source will download (the plan never touches the network itself)."""
    if not source or source.get("kind") != "hf":
        return
    where = f"collection {coll.name}: hub dataset {source['path']} (split {source.get('split', 'train')})"
    if source.get("streaming"):
        stop = (f"stops once the {len(coll.tasks)} listed task(s) each have their cap" if coll.tasks is not None
                else "reads the whole split once (list `tasks:` to stop early)")
        notes.append(f"{where} is streamed: rows are kept up to the cap ({cap or 'none'}) per task and template type and "
                     f"written to the cache; the stream {stop}")
    else:
        notes.append(f"{where} is downloaded whole by apply/data stats (set source.streaming: true to keep only what the caps need)")


def mixture_section(spec: Any, packed: bool, notes: list[str]) -> dict[str, Any]:
    """The plan's `mixture` object."""
    mix = spec.mixture
    raw = {c.name: c.proportion for c in mix.collections}
    total = sum(raw.values())
    if mix.collections and abs(total - 1.0) > 1e-9 and total > 0:
        notes.append(f"mixture proportions sum to {total:g}; normalised to 1")
    shares = _normalised(raw)

    collections = []
    for coll in mix.collections:
        catalog = COLLECTIONS.get(coll.name)
        if coll.name == "builtin":
            catalog_tasks = len(BUILTIN_TRAIN_TASKS)  # held-out tasks in `tasks` are refused by the spec checks
        else:
            catalog_tasks = catalog.tasks if catalog else None
        full = coll.tasks is None and not coll.exclude_tasks
        templates = coll.templates.model_dump() if coll.templates is not None else dict(catalog.templates) if catalog else {
            k: (0.25 if k != "cot" else 0.0) for k in TEMPLATE_KEYS
        }
        cap = coll.cap if coll.cap is not None else (catalog.cap if catalog else None)
        tasks = _task_count(coll, catalog_tasks)
        _download_note(coll, _source(coll, catalog), cap, notes)
        collections.append(
            {
                "name": coll.name,
                "flan": coll.name in FLAN_MIXTURE,
                "proportion": coll.proportion,
                "share": shares[coll.name] if coll.name in shares else 0.0,
                "cap": cap,
                "templates": _normalised(templates),
                "tasks": tasks,
                "datasets": catalog.datasets if (catalog and full) else None,
                "categories": catalog.categories if (catalog and full) else None,
                "max_examples": tasks * cap if (tasks is not None and cap is not None) else None,
                "source": _source(coll, catalog),
                "user_tasks": [t.name for t in coll.user_tasks],
                "excluded_tasks": list(coll.exclude_tasks),
            }
        )

    names = {c["name"] for c in collections}
    full_flan = all(n in names for n in FLAN_MIXTURE) and all(
        c["datasets"] is not None for c in collections if c["name"] in FLAN_MIXTURE
    )
    expected = {
        "tasks": _sum(c["tasks"] for c in collections),
        "datasets": None,
        "categories": None,
    }
    if full_flan and names <= set(FLAN_MIXTURE):
        # The collections overlap in datasets and categories: use the paper's de-duplicated totals.
        expected = dict(FLAN_TOTALS)
    else:
        expected["datasets"] = _sum(c["datasets"] for c in collections)
        expected["categories"] = _sum(c["categories"] for c in collections)

    return {
        "collections": collections,
        "proportions_named": _named_proportion(shares),
        "expected": expected,
        "inputs_length": mix.inputs_length,
        "targets_length": mix.targets_length,
        "packing": _packing(spec, packed, notes),
        "temperature": mix.temperature,
        "seed": mix.seed,
        "few_shot": {"min_shots": mix.few_shot.min_shots, "max_shots": mix.few_shot.max_shots},
        # Filled in by the data room once the sources are local (realized task/example counts).
        "realized": None,
    }


def _packing(spec: Any, packed: bool, notes: list[str]) -> bool:
    """`mixture.packing` as the data stream applies it (off for models without segment masks)."""
    from flanctl.catalog.models import packing_note

    if spec.mixture.packing and not packed:
        notes.append(f"mixture.packing: off for model.family {spec.model.family}: {packing_note(spec.model.family)}")
    return packed


def _sum(values: Any) -> int | None:
    values = list(values)
    if not values or any(v is None for v in values):
        return None
    return sum(values)


def _named_proportion(shares: dict[str, float]) -> str | None:
    """'A' or 'B' when the shares are the paper's proportions (to 0.1 percentage point)."""
    if set(shares) != set(FLAN_MIXTURE):
        return None
    for name, pct in PROPORTIONS.items():
        scale = sum(pct.values())
        if all(abs(shares[k] - pct[k] / scale) < 1e-3 for k in FLAN_MIXTURE):
            return name
    return None
