"""Cross-field checks: rules that involve more than one field, run after the schema passed.

Each problem is reported at the most relevant key the user actually wrote (so an impossible
mesh points at `mesh.data`, not at a default). The model's architecture comes from the
catalog (`flanctl.catalog`); the catalog is pure facts, so importing it stays cheap.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable
from typing import Any

from flanctl.catalog import models as catalog_models
from flanctl.catalog import objectives as catalog_objectives
from flanctl.catalog import suites as catalog_suites
from flanctl.catalog.builtin import (
    BUILTIN_HELD_OUT_TASKS,
    BUILTIN_TASKS,
    BUILTIN_TRAIN_TASKS,
)
from flanctl.catalog.collections import COLLECTIONS
from flanctl.errors import SpecError
from flanctl.spec.error_locations import locate
from flanctl.spec.field_paths import suggest
from flanctl.spec.models import Spec, SuiteName
from flanctl.spec.yaml_positions import Positions

_SUM_TOLERANCE = 1e-6


class _Reporter:
    """Collects errors and notes, placing each error at the first written candidate path."""

    def __init__(self, positions: Positions):
        self.positions = positions
        self.errors: list[SpecError] = []
        self.notes: list[str] = []

    def error(self, message: str, *candidates: tuple[Any, ...]) -> None:
        path = next((c for c in candidates if c in self.positions), candidates[0] if candidates else ())
        mark = locate(self.positions, path, want_key=True)
        self.errors.append(SpecError(message, mark.file, mark.line, mark.col))


def cross_field_errors(spec: Spec, positions: Positions) -> tuple[list[SpecError], list[str]]:
    """All cross-field problems of a schema-valid spec, and notes (e.g. normalised proportions)."""
    r = _Reporter(positions)
    _check_batch(spec, r)
    _check_mesh(spec, r)
    _check_model(spec, r)
    _check_mixture(spec, r)
    _check_objective(spec, r)
    _check_eval(spec, r)
    return r.errors, r.notes


def _check_batch(spec: Spec, r: _Reporter) -> None:
    t, mesh = spec.train, spec.distribution.mesh
    if t.batch_size % mesh.data:
        r.error(f"train.batch_size {t.batch_size} is not divisible by distribution.mesh.data {mesh.data}; "
                f"use a multiple of {mesh.data}", ("train", "batch_size"), ("distribution", "mesh", "data"))
    if t.batch_size % t.grad_accum:
        r.error(f"train.batch_size {t.batch_size} is not divisible by train.grad_accum {t.grad_accum}; "
                "each micro-batch must have the same size", ("train", "grad_accum"), ("train", "batch_size"))
    elif t.grad_accum > 1 and (t.batch_size // t.grad_accum) % mesh.data:
        r.error(f"the micro-batch train.batch_size / train.grad_accum = {t.batch_size // t.grad_accum} "
                f"is not divisible by distribution.mesh.data {mesh.data}",
                ("train", "grad_accum"), ("train", "batch_size"), ("distribution", "mesh", "data"))


def _check_mesh(spec: Spec, r: _Reporter) -> None:
    d = spec.distribution
    devices = d.processes.count * d.processes.devices_per_process
    if d.mesh.data * d.mesh.model != devices:
        r.error(f"distribution.mesh data*model = {d.mesh.data}*{d.mesh.model} = {d.mesh.data * d.mesh.model} "
                f"but the processes have {d.processes.count}*{d.processes.devices_per_process} = {devices} devices; "
                "make them equal", ("distribution", "mesh", "data"), ("distribution", "mesh", "model"),
                ("distribution", "mesh"), ("distribution", "processes"))
    if d.processes.count > 1 and not d.processes.coordinator:
        r.error(f"distribution.processes.count is {d.processes.count}: set distribution.processes.coordinator "
                "to host:port of process 0", ("distribution", "processes", "count"), ("distribution", "processes"))
    coord = d.processes.coordinator
    if coord:
        host, sep, port = coord.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            r.error(f"distribution.processes.coordinator {coord!r} is not host:port (e.g. 10.0.0.1:1234)",
                    ("distribution", "processes", "coordinator"))


def _check_model(spec: Spec, r: _Reporter) -> None:
    m = spec.model
    _check_attention(spec, r)
    if not catalog_models.family_facts(m.family).has_formula:  # a keras-hub preset brings its own architecture
        if not m.preset and not m.checkpoint:
            r.error("model.family 'preset' needs model.preset (a keras-hub preset handle or local preset directory)",
                    ("model", "preset"), ("model", "family"), ("model",))
        return
    if m.tokenizer.kind == "preset" and not (m.tokenizer.path or m.preset):
        r.error("model.tokenizer.kind 'preset' needs model.tokenizer.path or model.preset (where the tokenizer comes from)",
                ("model", "tokenizer", "kind"), ("model", "tokenizer"))
    sizes = list(catalog_models.SIZES.get(m.family, {}))
    if m.size is not None and m.size not in sizes:
        close = suggest(m.size, sizes)
        hint = close if close.startswith("; did") else ""
        r.error(f"model.size '{m.size}' is not a {m.family} size; known: {', '.join(sizes)}{hint}", ("model", "size"))
        return
    try:
        arch = catalog_models.resolve_architecture(m)
    except ValueError as exc:
        if m.checkpoint and m.size is None:
            return  # a Hugging Face checkpoint's config.json gives the numbers; the plan reads it
        r.error(f"model: {exc}", ("model", "size"), ("model", "architecture"), ("model", "family"), ("model",))
        return
    heads, kv_heads, model_axis = arch["num_heads"], arch["num_kv_heads"], spec.distribution.mesh.model
    if heads % model_axis:
        r.error(f"attention heads ({heads}) are not divisible by distribution.mesh.model {model_axis}; "
                f"use a model axis that divides {heads}", ("distribution", "mesh", "model"),
                ("model", "architecture", "num_heads"), ("model", "size"))
    data_axis, width = spec.distribution.mesh.data, arch["hidden_dim"]
    if data_axis > 1 and spec.distribution.mesh.model > 1 and width % data_axis:
        # ModelParallel layouts shard each weight's hidden dimension over `data` (2D layout).
        r.error(f"model width hidden_dim ({width}) is not divisible by distribution.mesh.data {data_axis}; "
                f"weights are sharded over data x model, so use a data axis that divides {width}",
                ("distribution", "mesh", "data"), ("model", "architecture", "hidden_dim"), ("model", "size"))
    if heads % kv_heads:
        r.error(f"model.architecture.num_heads {heads} is not a multiple of num_kv_heads {kv_heads}",
                ("model", "architecture", "num_kv_heads"), ("model", "architecture", "num_heads"), ("model", "size"))


def _check_attention(spec: Spec, r: _Reporter) -> None:
    """`model.attention` against the family: prefix-LM attention is built for the palm families."""
    m = spec.model
    modes = catalog_models.family_facts(m.family).attention_modes
    if m.attention not in modes:
        able = [f.name for f in catalog_models.FAMILY_FACTS.values() if m.attention in f.attention_modes]
        r.error(f"model.attention {m.attention} is built for the {', '.join(able)} families only; family {m.family} "
                f"takes {', '.join(modes)}: remove model.attention or use family palm", ("model", "attention"), ("model", "family"))


def held_out_task_message(collection: str, tasks: Iterable[str]) -> str:
    """Why a builtin-source collection may not list held-out tasks (the data room raises the same)."""
    names = sorted(set(tasks))
    one = len(names) == 1
    return (f"mixture.collections[{collection}].tasks: {', '.join(names)} {'is' if one else 'are'} held out for the "
            f"builtin eval suite (never trained on); remove {'it' if one else 'them'} from tasks, or train on "
            f"{'it' if one else 'one'} on purpose as a user_tasks entry with source {{kind: builtin, path: {names[0]}}}")


def unknown_builtin_task_message(collection: str, tasks: Iterable[str]) -> str:
    """A builtin-source collection lists a task no generator makes (the data room raises the same)."""
    return (f"mixture.collections[{collection}].tasks: unknown built-in task(s) {', '.join(sorted(set(tasks)))}; "
            f"known: {', '.join(BUILTIN_TRAIN_TASKS)}")


def _source_kind(c: Any) -> str | None:
    """The kind of source the data room reads a collection from (its own, else the catalog's)."""
    if c.source is not None:
        return c.source.kind
    catalog = COLLECTIONS.get(c.name)
    if catalog is not None and catalog.source is not None and not c.user_tasks:
        return catalog.source.kind
    return None


def _check_builtin_tasks(c: Any, here: tuple[Any, ...], r: _Reporter) -> None:
    """A builtin-source collection trains on train tasks only: held-out ones are for the eval."""
    if c.tasks is None or c.proportion == 0 or _source_kind(c) != "builtin":
        return
    for bad, message in (
        ([t for t in c.tasks if t in BUILTIN_HELD_OUT_TASKS], held_out_task_message),
        ([t for t in c.tasks if t not in BUILTIN_TASKS], unknown_builtin_task_message),
    ):
        if bad:
            first = c.tasks.index(bad[0])
            r.error(message(c.name, bad), here + ("tasks", first), here + ("tasks",), here)
            return


def _check_source(source: Any, here: tuple[Any, ...], r: _Reporter) -> None:
    """Source options that only make sense for some kinds of source."""
    if source is None:
        return
    if source.streaming and source.kind != "hf":
        r.error(f"source.streaming reads a Hugging Face hub dataset as it downloads; a {source.kind} source is read "
                "from disk already: remove streaming or use kind: hf", here + ("streaming",), here)
    if source.streaming and source.format == "raw":
        r.error("source.streaming keeps pre-rendered Flan rows under the caps as they arrive; a raw source is "
                "templated from all of its rows: remove streaming or format: raw", here + ("streaming",), here)
    if source.format == "flan" and source.kind == "builtin":
        r.error("source.format flan is for pre-rendered Flan rows (hub, save_to_disk, Parquet or JSONL); built-in tasks "
                "are generated raw: remove format", here + ("format",), here)


def _check_mixture(spec: Spec, r: _Reporter) -> None:
    mix = spec.mixture
    fs = mix.few_shot
    if fs.min_shots > fs.max_shots:
        r.error(f"mixture.few_shot.min_shots {fs.min_shots} is larger than max_shots {fs.max_shots}",
                ("mixture", "few_shot", "min_shots"), ("mixture", "few_shot", "max_shots"))
    known = list(COLLECTIONS)
    seen: dict[str, int] = {}
    for i, c in enumerate(mix.collections):
        here = ("mixture", "collections", i)
        if c.name in seen:
            r.error(f"collection '{c.name}' appears twice (items {seen[c.name]} and {i}); merge them", here + ("name",), here)
        seen.setdefault(c.name, i)
        if c.name not in known and not c.user_tasks and c.source is None:
            close = suggest(c.name, known)
            hint = close if close.startswith("; did") else f"; known: {', '.join(known)}"
            r.error(f"unknown collection '{c.name}'{hint} (a collection of your own needs user_tasks or source)",
                    here + ("name",), here)
        task_names: dict[str, int] = {}
        for j, task in enumerate(c.user_tasks):
            if task.name in task_names:
                r.error(f"user task '{task.name}' appears twice in collection '{c.name}'",
                        here + ("user_tasks", j, "name"), here)
            task_names.setdefault(task.name, j)
        _check_builtin_tasks(c, here, r)
        _check_source(c.source, here + ("source",), r)
        for j, task in enumerate(c.user_tasks):
            _check_source(task.source, here + ("user_tasks", j, "source"), r)
        if c.templates is not None and sum(c.templates.model_dump().values()) <= 0:
            r.error(f"collection '{c.name}': the template mix is all zero; give at least one format a share",
                    here + ("templates",), here)
    if not mix.collections:
        return
    total = math.fsum(c.proportion for c in mix.collections)
    first = ("mixture", "collections", 0, "proportion")
    if total <= 0:
        r.error("mixture proportions are all zero; give at least one collection a positive proportion",
                first, ("mixture", "collections"))
    elif abs(total - 1.0) > _SUM_TOLERANCE:
        if mix.normalize:
            r.notes.append(f"mixture proportions summed to {total:g}; normalised to 1")
        else:
            r.error(f"mixture proportions sum to {total:g}, not 1, and mixture.normalize is false; "
                    "fix the proportions or set normalize: true", ("mixture", "normalize"), first)


def _is_corpus(source: Any) -> bool:
    return source is not None and source.kind == "builtin" and source.path == catalog_objectives.BUILTIN_CORPUS


def _check_objective(spec: Spec, r: _Reporter) -> None:
    """`train.objective` against the model kind, the collections' sources and the vocabulary."""
    objective = spec.train.objective
    where = ("train", "objective")
    corpus = catalog_objectives.BUILTIN_CORPUS
    if objective == "instruction":
        for i, c in enumerate(spec.mixture.collections):
            here = ("mixture", "collections", i)
            spots = [(here + ("source",), c.source)] + [(here + ("user_tasks", j, "source"), t.source) for j, t in enumerate(c.user_tasks)]
            for at, source in spots:
                if _is_corpus(source):
                    r.error(f"source {{kind: builtin, path: {corpus}}} is raw text for the pretraining objectives; set "
                            "train.objective to causal_lm, span_corruption or ul2, or train on built-in tasks",
                            at + ("path",), at, where)
        return
    enc_dec = catalog_models.family_facts(spec.model.family).encoder_decoder
    if objective == "causal_lm" and enc_dec:
        r.error(f"train.objective causal_lm trains a decoder-only model; {spec.model.family} is encoder-decoder: use "
                "span_corruption or ul2", where, ("model", "family"))
    attention = _attention_note(spec)
    if objective == "span_corruption" and enc_dec is False:
        r.notes.append(f"train.objective span_corruption on decoder-only {spec.model.family}: the corrupted text and then "
                       f"its spans in one sequence, loss on the spans ({attention})")
    if objective == "ul2" and enc_dec is False:
        r.notes.append(f"train.objective ul2 on decoder-only {spec.model.family}: UL2R as U-PaLM, each denoiser's inputs "
                       f"then targets in one sequence, loss on the targets ({attention})")
    for i, c in enumerate(spec.mixture.collections):
        here = ("mixture", "collections", i)
        if c.proportion == 0:
            continue
        if c.source is None and not c.user_tasks:
            r.error(f"train.objective {objective} reads raw text; collection '{c.name}' has no text source: give it "
                    f"source: {{kind: builtin, path: {corpus}}} or a local/hf source with a text column",
                    here + ("name",), here, where)
        spots = [(here + ("source",), c.source)] + [(here + ("user_tasks", j, "source"), t.source) for j, t in enumerate(c.user_tasks)]
        for at, source in spots:
            if source is not None and source.kind == "builtin" and source.path != corpus:
                r.error(f"train.objective {objective} reads raw text; built-in '{source.path}' is a task of (inputs, targets) "
                        f"pairs: use path: {corpus} or a text source", at + ("path",), at, where)
            elif source is not None and source.format == "flan":
                r.error(f"train.objective {objective} reads raw text; a source with format: flan holds rendered "
                        "(inputs, targets) rows: remove format and map columns: {text: COLUMN}", at + ("format",), at, where)
    if objective in ("span_corruption", "ul2"):
        _check_sentinel_room(spec, objective, bool(enc_dec), r)


def _attention_note(spec: Spec) -> str:
    """How a decoder-only row of (inputs, targets) attends, for the objective notes."""
    if spec.model.attention == "prefix":
        return "a prefix LM: the inputs attend to each other in both directions, the targets causally"
    return "prefix-LM form with causal attention; model.attention: prefix makes the inputs bidirectional, as U-PaLM"


def _check_sentinel_room(spec: Spec, objective: str, enc_dec: bool, r: _Reporter) -> None:
    """Sentinels are the top ids of the model's vocabulary: they must not reach the tokenizer's ids.
    Where a checkpoint gives the architecture, the plan checks the same against it."""
    m, mix = spec.model, spec.mixture
    tok = {"byte": 259, "sentencepiece": m.tokenizer.vocab_size}.get(m.tokenizer.kind)
    try:
        vocab = catalog_models.resolve_architecture(m)["vocab_size"]
    except (ValueError, KeyError):
        return
    if tok is None or not vocab:
        return
    need = catalog_objectives.sentinels_needed(objective, enc_dec, mix.inputs_length, mix.targets_length)
    error = catalog_objectives.sentinel_room_error(objective, need, vocab, tok)
    if error:
        r.error(error, ("model", "architecture", "vocab_size"), ("model", "tokenizer", "vocab_size"), ("train", "objective"))


def _check_eval(spec: Spec, r: _Reporter) -> None:
    ev = spec.eval
    seen: set[str] = set()
    for i, suite in enumerate(ev.suites):
        if suite in seen:
            r.error(f"eval suite '{suite}' is listed twice", ("eval", "suites", i), ("eval", "suites"))
        seen.add(suite)
    suites = list(typing.get_args(SuiteName))
    for name in ev.shots:
        if name not in suites:
            close = suggest(name, suites)
            hint = close if close.startswith("; did") else ""
            r.error(f"eval.shots: unknown suite '{name}'; known: {', '.join(suites)}{hint}", ("eval", "shots", name), ("eval", "shots"))
        elif ev.shots[name] < 0:
            r.error(f"eval.shots.{name} is {ev.shots[name]}; shots cannot be negative", ("eval", "shots", name))
    if ev.method != "generate":
        for i, suite in enumerate(ev.suites):
            facts = catalog_suites.SUITES.get(suite)
            members = [catalog_suites.SUITES[m] for m in facts.members] if facts and facts.members else [facts]
            # chain-of-thought suites always generate: their answer comes after the reasoning
            bad = [m.name for m in members if m is not None and not m.cot and ev.method not in m.methods]
            if bad:
                ok = [n for n, f in catalog_suites.SUITES.items() if ev.method in f.methods]
                r.error(f"eval.method {ev.method} ranks answer options, which suite {bad[0]} does not have; "
                        f"use method generate or suites {', '.join(ok)}", ("eval", "suites", i), ("eval", "method"))
    every = spec.train.eval_every
    if every and not ev.suites:
        r.error("train.eval_every needs eval.suites (the held-out suites to run every N steps); list suites or remove eval_every",
                ("train", "eval_every"))
    elif every and every > spec.train.steps:
        r.error(f"train.eval_every {every} is more than train.steps {spec.train.steps}, so it never runs; lower it or remove it",
                ("train", "eval_every"))
    elif every and spec.distribution.processes.count > 1:
        r.error("train.eval_every runs evals on one process and cannot evaluate a model sharded over "
                f"{spec.distribution.processes.count} processes; remove it", ("train", "eval_every"))
    if ev.builtin_tasks:
        names = list(BUILTIN_HELD_OUT_TASKS) + list(BUILTIN_TRAIN_TASKS)
        for i, task in enumerate(ev.builtin_tasks):
            if task not in names:
                close = suggest(task, names)
                hint = close if close.startswith("; did") else f"; held-out tasks: {', '.join(BUILTIN_HELD_OUT_TASKS)}"
                r.error(f"unknown built-in task '{task}'{hint}", ("eval", "builtin_tasks", i), ("eval", "builtin_tasks"))


def normalised(spec: Spec) -> Spec:
    """The spec with mixture proportions rescaled to sum to 1 (when normalize is on and needed)."""
    mix = spec.mixture
    total = math.fsum(c.proportion for c in mix.collections)
    if not mix.normalize or total <= 0 or abs(total - 1.0) <= _SUM_TOLERANCE:
        return spec
    collections = [c.model_copy(update={"proportion": c.proportion / total}) for c in mix.collections]
    return spec.model_copy(update={"mixture": mix.model_copy(update={"collections": collections})})
