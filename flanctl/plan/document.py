"""The plan document: built from a loaded spec, hashed, saved, loaded and checked for staleness.

`make_plan` is a pure function of the spec (plus the run directory's state for the diff and
the host's RAM for CPU plans); it imports no ML framework. The plan hash is sha256 over the
canonical JSON of the plan without its `plan_hash` key, so an edited plan file is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from flanctl import __version__
from flanctl.catalog.models import NOMINAL_PARAMS, is_decoder_only, param_count, resolve_architecture
from flanctl.errors import FlanctlError
from flanctl.plan.compute import compute_section
from flanctl.plan.diff import run_diff
from flanctl.plan.evals import eval_section
from flanctl.plan.inputs import local_inputs, trained_inputs
from flanctl.plan.memory import memory_section
from flanctl.plan.mixture import mixture_section
from flanctl.plan.presets import preset_architecture
from flanctl.runs.run_dir import RunDir, write_text_atomic

SCHEMA_VERSION = 1
DEFAULT_PLAN_PATH = Path(".flanctl") / "plan.json"


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the text the plan hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plan_hash(plan: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `plan` without its `plan_hash` key."""
    body = {k: v for k, v in plan.items() if k != "plan_hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def run_name(loaded: Any) -> str:
    """`spec.name`, or the spec file's stem made a valid name (as the spec loader does)."""
    from flanctl.spec.loader import default_name

    return loaded.spec.name or default_name(Path(loaded.path))


def make_plan(
    loaded: Any,
    runs_root: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] | None = None,
    realize: Any = None,
) -> dict[str, Any]:
    """Resolve a `LoadedSpec` into the plan document (JSON-able dict, hashed).

    `runs_root` is where run directories live (default `./runs`); `overrides` are the `--set`
    strings the spec was loaded with (kept so `apply` can reload and compare the spec).
    `realize(spec, base_dir) -> dict | None` fills `mixture.realized` with the counts of the
    data actually on disk (the CLI passes `flanctl.data.realize_mixture`; it is injected so that
    this room never imports the data room, and returns None when a source needs the network).
    """
    spec = loaded.spec
    spec_path = Path(loaded.path).resolve()
    base_dir = spec_path.parent
    notes: list[str] = list(getattr(loaded, "notes", []) or [])
    if overrides is None:
        overrides = list(getattr(loaded, "overrides", []) or [])

    model = spec.model
    family, size = model.family, model.size
    if family == "preset":
        arch, params = preset_architecture(model, base_dir, notes)
    else:
        try:
            arch = resolve_architecture(model)
        except ValueError as exc:
            raise FlanctlError(f"{spec_path}: {exc}") from None
        params = param_count(family, arch)
    if arch and model.tokenizer.kind == "byte" and model.architecture.vocab_size is None and size in _paper_sizes(family):
        notes.append(f"model: byte tokenizer, so vocab_size is 259 and the {size} count differs from the paper's; set model.tokenizer.kind: sentencepiece for the paper's vocabulary")
    if arch and model.tokenizer.kind == "sentencepiece" and model.tokenizer.vocab_size > arch["vocab_size"]:
        notes.append(f"model: tokenizer.vocab_size {model.tokenizer.vocab_size} exceeds the model's vocab_size {arch['vocab_size']}")
    if arch and is_decoder_only(family) and spec.mixture.inputs_length + spec.mixture.targets_length > arch["max_sequence_length"]:
        notes.append("model: inputs_length + targets_length exceeds max_sequence_length; packed sequences will be cut")

    runs_root = Path(runs_root) if runs_root is not None else Path.cwd() / "runs"
    run = RunDir(runs_root.resolve() / run_name(loaded))
    spec_dict = spec.model_dump(mode="json")
    dist = spec.distribution

    plan: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "flanctl_version": __version__,
        "spec_path": str(spec_path),
        "spec_hash": loaded.text_hash,
        "spec_overrides": list(overrides),
        "spec": spec_dict,
        "model": {
            "family": family,
            "size": size,
            "params": params,
            # PaLM Table 1 convention: without the layer-norm scales.
            "params_without_norms": param_count(family, arch, include_norms=False) if arch and is_decoder_only(family) else params,
            "params_nominal": NOMINAL_PARAMS.get((family, size or "")),
            "decoder_only": is_decoder_only(family) if family != "preset" else None,
            "architecture": arch,
            "checkpoint": model.checkpoint,
            "preset": model.preset,
            "tokenizer": model.tokenizer.model_dump(mode="json"),
            "precision": model.precision,
        },
        "compute": compute_section(spec, family, size, arch or {}, params or 0, notes) if params else None,
        # Presets are treated as decoder-only CausalLMs for the memory estimate.
        "memory": memory_section(spec, "palm" if family == "preset" else family, arch, params, notes),
        "distribution": {
            "backend": dist.backend,
            "mesh": {"data": dist.mesh.data, "model": dist.mesh.model},
            "devices": dist.mesh.data * dist.mesh.model,
            "processes": dist.processes.model_dump(mode="json"),
            "device": dist.device,
            "utilization": dist.utilization,
        },
        "train": spec.train.model_dump(mode="json"),
        "mixture": mixture_section(spec, notes),
        "eval": eval_section(spec, notes),
        "inputs": local_inputs(spec, base_dir),
        "run": {"name": run.name, "dir": str(run.root), "diff": run_diff(run, spec_dict, spec.train.steps)},
    }
    if realize is not None:
        try:
            plan["mixture"]["realized"] = realize(spec, base_dir)
        except FlanctlError as exc:
            notes.append(f"mixture: realized counts unavailable ({exc})")
    plan["notes"] = notes
    plan["plan_hash"] = plan_hash(plan)
    return plan


def _paper_sizes(family: str) -> set[str]:
    return {s for (f, s) in NOMINAL_PARAMS if f == family}


def save_plan(plan: dict[str, Any], path: str | Path = DEFAULT_PLAN_PATH) -> Path:
    """Write the plan (pretty JSON, atomically); returns the path."""
    path = Path(path)
    write_text_atomic(path, json.dumps(plan, indent=2, sort_keys=True) + "\n")
    return path


def load_plan(path: str | Path) -> dict[str, Any]:
    """Read a saved plan and verify its schema version and hash."""
    path = Path(path)
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FlanctlError(f"{path}: no such plan; run `flanctl plan SPEC` first") from None
    except json.JSONDecodeError as exc:
        raise FlanctlError(f"{path}:{exc.lineno}:{exc.colno}: plan is not valid JSON ({exc.msg}); run `flanctl plan SPEC` again") from None
    if not isinstance(plan, dict) or "plan_hash" not in plan:
        raise FlanctlError(f"{path}: not a flanctl plan (no plan_hash); run `flanctl plan SPEC` again")
    if plan.get("schema_version") != SCHEMA_VERSION:
        raise FlanctlError(f"{path}: plan schema version {plan.get('schema_version')!r} is not {SCHEMA_VERSION}; run `flanctl plan SPEC` again")
    if plan_hash(plan) != plan["plan_hash"]:
        raise FlanctlError(f"{path}: plan was modified after it was made (hash mismatch); run `flanctl plan SPEC` again")
    return plan


def check_fresh(plan: dict[str, Any], loader: Any = None) -> None:
    """Raise `FlanctlError` when the spec files or local inputs changed since planning.

    `loader(path, overrides) -> LoadedSpec` defaults to `flanctl.spec.load_spec`.
    """
    spec_path = Path(plan["spec_path"])
    again = f"run `flanctl plan {spec_path}` again"
    if not spec_path.is_file():
        raise FlanctlError(f"stale plan: spec file {spec_path} no longer exists; {again}")
    if loader is None:
        from flanctl.spec import load_spec as loader
    try:
        loaded = loader(spec_path, list(plan.get("spec_overrides", [])))
    except FlanctlError as exc:
        first = str(exc).splitlines()[0]
        raise FlanctlError(f"stale plan: {spec_path} no longer loads ({first}); fix it and {again}") from None
    if loaded.text_hash != plan["spec_hash"]:
        raise FlanctlError(f"stale plan: {spec_path} or a file it extends changed since it was planned; {again}")
    now = local_inputs(loaded.spec, spec_path.parent)
    before = plan.get("inputs", {})
    made_by_apply = trained_inputs(loaded.spec)
    for name in sorted(set(now) | set(before)):
        if name in made_by_apply and name not in before:
            continue  # e.g. the SentencePiece model a previous apply trained from this very spec
        if now.get(name) != before.get(name):
            raise FlanctlError(f"stale plan: input {name} changed since it was planned; {again}")
