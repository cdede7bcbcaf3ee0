"""Mixture realization: which tasks, how many examples each, and at what rate.

Within a collection, tasks are mixed examples-proportionally with a per-task cap (size =
min(examples, cap)), optionally flattened by a temperature (rate ~ size^(1/T)); across
collections, the spec's proportions. Everything here is decided from the spec and the
sources' sizes only, so `data stats`, `plan` and the training stream agree on the numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flanctl.catalog.builtin import BUILTIN_TRAIN_TASKS
from flanctl.catalog.collections import COLLECTIONS, is_mmlu_derived
from flanctl.data import builtin_tasks
from flanctl.data.examples import Example
from flanctl.errors import FlanctlError
from flanctl.spec.checks import held_out_task_message, unknown_builtin_task_message

DEFAULT_CAP = 30_000  # a user collection with no cap of its own gets Muffin's


@dataclass
class TaskPlan:
    """One task of the realized mixture."""

    name: str
    collection: str
    source_kind: str
    available: int | None  # examples in the source (None: generated on demand)
    size: int  # examples used per epoch: min(available, cap)
    cap: int | None
    rate: float  # share of all training examples drawn from this task
    formats: dict[str, float]
    templates: str | None
    source_fingerprint: str
    load: Callable[[], list[Example]] = field(repr=False, default=lambda: [])
    flan: object | None = field(repr=False, default=None)  # FlanTaskRef: pre-rendered rows, used as they are
    text: bool = False  # raw text documents (in `inputs`) for a pretraining objective, not (inputs, targets) pairs


@dataclass
class RealizedMixture:
    tasks: list[TaskPlan]
    proportions: dict[str, float]
    notes: list[str]


def _note_dropped(notes: list[str], collection: str, path: str, dropped: int) -> None:
    """A note (shown by `plan` and `data stats`) for rows a source left out."""
    if dropped:
        notes.append(f"collection {collection}: {dropped:,} row(s) of {path} dropped: inputs or targets null, empty or not text")


def _catalog_collection(name: str):
    return COLLECTIONS.get(name)


def _builtin_names() -> tuple[str, ...]:
    return tuple(BUILTIN_TRAIN_TASKS)


def _format_mix(coll, catalog) -> dict[str, float]:
    if coll.templates is not None:
        mix = coll.templates.model_dump()
    elif catalog is not None:
        mix = dict(catalog.templates)
    else:
        from flanctl.spec.models import TemplateMix

        mix = TemplateMix().model_dump()
    total = sum(mix.values())
    if total <= 0:
        raise FlanctlError(f"mixture.collections[{coll.name}].templates: all template weights are 0; give at least one format a weight")
    return {k: v / total for k, v in mix.items()}


def _subsample(examples: list[Example], size: int, seed: int, name: str) -> list[Example]:
    """The `size` examples of a task used for training: a seeded sample when capped."""
    if len(examples) <= size:
        return examples
    rng = random.Random(f"cap/{name}/{seed}")
    idx = sorted(rng.sample(range(len(examples)), size))
    return [examples[i] for i in idx]


def _is_mmlu_task(name: str) -> bool:
    # NIV2 has tasks built from MMLU; the paper removed them so MMLU stays held out.
    return is_mmlu_derived(name)


def cache_root(mixture_spec, base_dir: Path) -> Path:
    """The data cache folder: mixture.cache_dir (relative to the spec) or .flanctl/cache."""
    d = Path(mixture_spec.cache_dir) if mixture_spec.cache_dir else Path(".flanctl") / "cache"
    return d if d.is_absolute() else Path(base_dir) / d


def _effective_source(coll, catalog):
    """The collection's source with the catalog's column mapping under the spec's own (local copies too)."""
    from flanctl.spec.models import Source

    source = coll.source
    if source is None and catalog is not None and catalog.source is not None and not coll.user_tasks:
        return Source(kind=catalog.source.kind, path=catalog.source.path, split=catalog.source.split,
                      columns=dict(catalog.source.columns), format=catalog.source.format)
    if source is not None and catalog is not None and catalog.source is not None and source.kind != "builtin":
        merged = {**catalog.source.columns, **source.columns}
        if merged != dict(source.columns):
            source = source.model_copy(update={"columns": merged})
    return source


def _type_weights(formats: dict[str, float]) -> tuple[np.ndarray, str | None]:
    """Weights of the four template types (then 'other') from the template mix.

    A row whose template_type is none of the four ('other') gets the mean of the weights in use:
    it is kept, not silently dropped, whenever any type is wanted."""
    from flanctl.data.flan_source import TEMPLATE_TYPES, TYPE_FORMAT

    w = np.asarray([formats.get(TYPE_FORMAT[t], 0.0) for t in TEMPLATE_TYPES] + [0.0], dtype=np.float64)
    if w[:4].sum() <= 0:  # a CoT-only mix: pre-rendered CoT rows carry the four types themselves
        return np.ones(5), "pre-rendered rows are taken whatever their template type (the mix gives weight only to cot)"
    w[4] = w[:4][w[:4] > 0].mean()
    return w, None


def _flan_tasks(coll, source, catalog, formats, coll_cap, wanted, excluded, base_dir, cache_dir, seed, notes, allow_network):
    """TaskPlans of a Flan-format source (None when the source is not in that format)."""
    from flanctl.data.flan_source import flan_index, water_fill
    from flanctl.data.flan_tokens import FlanTaskRef, task_examples
    from flanctl.data.sources import open_flan

    fsrc = open_flan(source, base_dir, cache_dir, allow_network=allow_network, cap=coll_cap,
                     tasks=sorted(wanted) if wanted is not None else None, exclude=tuple(sorted(excluded)))
    if fsrc is None:
        return None
    index = flan_index(fsrc, cache_dir, coll.name)
    if not index.has_task_column and fsrc.num_rows >= 1000:
        notes.append(f"collection {coll.name}: {fsrc.num_rows:,} rows and no task column ('{source.columns.get('task', 'task_name')}'): "
                     f"all of them are one task '{coll.name}', capped at {coll_cap or 'no cap'}; map the task column with "
                     "source.columns.task")
    weights, why = _type_weights(formats)
    if why:
        notes.append(f"collection {coll.name}: {why}")
    counts = index.counts()
    group = f"{coll.name}:{fsrc.fingerprint}"
    tasks = []
    dropped = 0
    for code in sorted(range(len(index.names)), key=lambda c: index.names[c]):
        name = index.names[code]
        if (wanted is not None and name not in wanted) or name in excluded:
            continue
        if coll.name == "niv2" and _is_mmlu_task(name):
            continue
        avail = np.where(weights > 0, counts[code], 0)
        usable = int(avail.sum())
        if usable == 0:
            dropped += int(counts[code].sum() > 0)
            continue
        size = min(usable, coll_cap) if coll_cap else usable
        ref = FlanTaskRef(index, code, water_fill(avail, weights, size), group)
        tasks.append(TaskPlan(name, coll.name, source.kind, usable, size, coll_cap, 0.0, formats, None,
                              f"{fsrc.fingerprint}:{name}", load=(lambda ref=ref: task_examples(ref, seed)), flan=ref))
    if dropped:
        notes.append(f"collection {coll.name}: {dropped} task(s) have no rows of the template types the mix asks for")
    return tasks


def realize(spec, base_dir: str | Path, allow_network: bool = True) -> RealizedMixture:
    """The tasks, sizes and rates the spec's mixture means.

    With `allow_network=False`, a hub source raises `LookupError` instead of loading (the
    plan uses this to leave realized numbers out rather than touch the network).
    """
    from flanctl.data.sources import load_source

    base_dir = Path(base_dir)
    mix = spec.mixture
    seed = mix.seed
    if not mix.collections:
        raise FlanctlError("mixture.collections: the mixture is empty; add a collection (e.g. {name: builtin, proportion: 1})")
    raw = {c.name: c.proportion for c in mix.collections}
    if len(raw) != len(mix.collections):
        raise FlanctlError("mixture.collections: collection names must be unique")
    total = sum(raw.values())
    if total <= 0:
        raise FlanctlError("mixture.collections: proportions sum to 0; give at least one collection a positive proportion")
    notes = []
    text_mode = getattr(spec.train, "objective", "instruction") != "instruction"
    if abs(total - 1) > 1e-6:
        if not mix.normalize:
            raise FlanctlError(f"mixture.collections: proportions sum to {total:g}, not 1; fix them or set mixture.normalize: true")
        notes.append(f"proportions normalised from a sum of {total:g}")
    proportions = {k: v / total for k, v in raw.items()}

    tasks: list[TaskPlan] = []
    for coll in mix.collections:
        if proportions[coll.name] == 0:
            continue
        catalog = _catalog_collection(coll.name)
        coll_cap = coll.cap or (catalog.cap if catalog is not None and catalog.cap else None)
        formats = _format_mix(coll, catalog)
        if text_mode:  # pretraining objectives read raw text, not (inputs, targets) pairs
            from flanctl.data.text_sources import text_tasks

            coll_tasks = text_tasks(coll, coll_cap, base_dir, allow_network, seed, TaskPlan)
        else:
            coll_tasks: list[TaskPlan] = []
            source = _effective_source(coll, catalog)
            wanted = set(coll.tasks) if coll.tasks is not None else None
            excluded = set(coll.exclude_tasks)
            if source is not None and source.kind == "builtin":
                names = [n for n in _builtin_names() if (wanted is None or n in wanted) and n not in excluded]
                unknown = (wanted or set()) - set(builtin_tasks.GENERATORS)
                held_out = (wanted or set()) - unknown - set(_builtin_names())
                if held_out:  # `validate` refuses these with the same words (spec/checks.py)
                    raise FlanctlError(held_out_task_message(coll.name, held_out))
                if unknown:
                    raise FlanctlError(unknown_builtin_task_message(coll.name, unknown))
                size = coll_cap or 1000
                for n in names:
                    coll_tasks.append(TaskPlan(n, coll.name, "builtin", None, size, coll_cap, 0.0, formats, None,
                                               f"builtin:{n}:v{builtin_tasks.GENERATOR_VERSION}",
                                               load=(lambda n=n, size=size: builtin_tasks.generate(n, "train", size, seed))))
            elif source is not None and (flan := _flan_tasks(coll, source, catalog, formats, coll_cap, wanted, excluded, base_dir,
                                                             cache_root(mix, base_dir), seed, notes, allow_network)) is not None:
                coll_tasks.extend(flan)
            elif source is not None:
                if source.kind == "hf" and not allow_network:
                    raise LookupError(source.path)
                loaded = load_source(source, base_dir, default_task=coll.name)
                _note_dropped(notes, coll.name, source.path, loaded.dropped)
                by_task: dict[str, list[Example]] = {}
                for ex in loaded.examples:
                    by_task.setdefault(ex.task, []).append(ex)
                for n in sorted(by_task):
                    if (wanted is not None and n not in wanted) or n in excluded:
                        continue
                    if coll.name == "niv2" and _is_mmlu_task(n):
                        continue
                    exs = by_task[n]
                    size = min(len(exs), coll_cap) if coll_cap else len(exs)
                    coll_tasks.append(TaskPlan(n, coll.name, source.kind, len(exs), size, coll_cap, 0.0, formats, None,
                                               f"{loaded.fingerprint}:{n}",
                                               load=(lambda exs=exs, size=size, n=n: _subsample(exs, size, seed, n))))
            for t in coll.user_tasks:
                if t.source.kind == "builtin":
                    gen = t.source.path
                    if gen not in builtin_tasks.GENERATORS:
                        raise FlanctlError(f"mixture.collections[{coll.name}].user_tasks[{t.name}].source.path: unknown built-in task '{gen}'")
                    cap = t.cap or coll_cap or 1000
                    coll_tasks.append(TaskPlan(t.name, coll.name, "builtin", None, cap, cap, 0.0, formats, t.templates,
                                               f"builtin:{gen}:v{builtin_tasks.GENERATOR_VERSION}",
                                               load=(lambda gen=gen, cap=cap, name=t.name: [
                                                   Example(e.inputs, e.targets, e.options, e.rationale, e.answer, name)
                                                   for e in builtin_tasks.generate(gen, "train", cap, seed)])))
                    continue
                if t.source.kind == "hf" and not allow_network:
                    raise LookupError(t.source.path)
                loaded = load_source(t.source, base_dir, default_task=t.name)
                _note_dropped(notes, coll.name, t.source.path, loaded.dropped)
                exs = [Example(e.inputs, e.targets, e.options, e.rationale, e.answer, t.name) for e in loaded.examples]
                if not exs:
                    raise FlanctlError(f"mixture.collections[{coll.name}].user_tasks[{t.name}]: the source has no examples")
                cap = t.cap or coll_cap or DEFAULT_CAP
                size = min(len(exs), cap)
                coll_tasks.append(TaskPlan(t.name, coll.name, t.source.kind, len(exs), size, cap, 0.0, formats, t.templates,
                                           loaded.fingerprint, load=(lambda exs=exs, size=size, n=t.name: _subsample(exs, size, seed, n))))
        if not coll_tasks:
            raise FlanctlError(f"mixture.collections[{coll.name}]: no tasks left (check tasks/exclude_tasks, or add user_tasks or a source)")
        weights = [t.size ** (1.0 / mix.temperature) for t in coll_tasks]
        wsum = sum(weights)
        for t, w in zip(coll_tasks, weights):
            t.rate = proportions[coll.name] * w / wsum
        tasks.extend(coll_tasks)

    seen: dict[str, int] = {}
    for t in tasks:
        seen[t.name] = seen.get(t.name, 0) + 1
    for t in tasks:  # the same task name in two collections: qualify it, so names stay unique
        if seen[t.name] > 1:
            t.name = f"{t.collection}/{t.name}"
    return RealizedMixture(tasks, proportions, notes)
