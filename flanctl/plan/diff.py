"""Diff of a new plan against the run directory: new run, resume at step N, or replace.

A change to the model, the tokenizer, the mixture, or what the data stream and optimizer
state depend on makes the existing checkpoint meaningless for the new spec ("invalidates");
anything else (more steps, a different learning rate, eval settings, the mesh) can resume
from it ("compatible").
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flanctl.plan.document import saved_section, saved_spec
from flanctl.spec.models import Spec
from flanctl.runs.run_dir import RunDir

#: Spec paths (prefixes) whose change invalidates an existing checkpoint, with the reason.
INVALIDATING: dict[str, str] = {
    "model": "the model (family, size, architecture, weights, tokenizer, precision) changed",
    "mixture": "the training data (mixture) changed",
    "train.batch_size": "the data stream position depends on the batch size",
    "train.grad_accum": "the optimizer's accumulators depend on grad_accum",
    "train.optimizer": "the optimizer state belongs to another optimizer",
    "train.seed": "initialisation and dropout seeds changed",
    "distribution.backend": "checkpoints are written by the backend that trained them",
}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {'a.b.c': leaf}; lists are leaves (compared whole)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj}


def _reason(path: str) -> str | None:
    for prefix, reason in INVALIDATING.items():
        if path == prefix or path.startswith(prefix + "."):
            return reason
    return None


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Leaf-level changes between two resolved spec dicts, each marked invalidating or not."""
    a, b = flatten(old), flatten(new)
    changes = []
    for path in sorted(set(a) | set(b)):
        if path == "name":
            continue
        if a.get(path, "<unset>") != b.get(path, "<unset>"):
            reason = _reason(path)
            changes.append({"path": path, "old": a.get(path), "new": b.get(path), "invalidates": reason is not None, "reason": reason})
    return changes


def _with_defaults(old_spec: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded spec with the current schema's defaults filled in, so that a field added
    in a later version (e.g. `source.format`) is not a change when it holds its default. A
    recorded spec the schema no longer accepts is compared as written."""
    try:
        return Spec.model_validate(old_spec).model_dump(mode="json")
    except ValidationError:
        return old_spec


def generated_data(mixture: dict[str, Any] | None) -> dict[str, str]:
    """{collection/task: fingerprint} of the realized mixture's built-in tasks (generated
    from code: the fingerprint carries the generator's or the corpus's version).

    Only these are compared between a run's plan and a new one. The spec says everything
    else about the data, and a file's fingerprint holds its modification time, which a copy
    or a `touch` changes without changing a row (the data stream checks its token counts on
    resume)."""
    tasks = ((mixture or {}).get("realized") or {}).get("tasks") or []
    return {f"{t.get('collection')}/{t.get('name')}": str(t["fingerprint"]) for t in tasks
            if isinstance(t, dict) and t.get("source") == "builtin" and t.get("fingerprint")}


def _data_changes(run: RunDir, new_data: dict[str, str] | None) -> list[dict[str, Any]]:
    """Built-in tasks whose generated data differ from what the run trained on (a flanctl
    upgrade that changed a generator): they invalidate its checkpoint like a mixture change."""
    if not new_data:
        return []
    old_data = generated_data(saved_section(run.plan_path, "mixture"))
    reason = "the built-in task's generated data changed (another flanctl version made them)"
    return [{"path": f"mixture.data.{key}", "old": old_data[key], "new": new_data[key], "invalidates": True, "reason": reason}
            for key in sorted(set(old_data) & set(new_data)) if old_data[key] != new_data[key]]


def run_diff(run: RunDir, new_spec: dict[str, Any], steps: int, data: dict[str, str] | None = None) -> dict[str, Any]:
    """The plan's `run.diff`: what apply will do to `run` given the new resolved spec (and
    `data`, the new plan's `generated_data`, when known)."""
    state = run.read_state()
    if not state and not run.plan_path.is_file():
        return {"action": "create", "step": 0, "changes": [], "has_changes": True, "summary": f"new run {run.root}"}

    old_spec = saved_spec(run.plan_path) if run.plan_path.is_file() else None
    if not isinstance(old_spec, dict):
        # plan.json lost or unreadable: the resolved spec.yaml beside it says the same.
        old_spec = _recorded_spec_yaml(run)
    changes = spec_changes(_with_defaults(old_spec), new_spec) if isinstance(old_spec, dict) else []
    changes += _data_changes(run, data)
    latest = run.latest_checkpoint()
    step = max(int(state.get("step", 0) or 0), latest[0] if latest else 0)
    invalid = [c for c in changes if c["invalidates"]]

    if old_spec is None and step > 0:
        # Nothing says what the checkpoint was trained with: never continue it under a spec
        # that may differ (that would make spec.yaml lie about the run).
        return {
            "action": "replace",
            "step": step,
            "changes": [],
            "has_changes": True,
            "summary": (
                f"checkpoint at step {step} has no readable record of its spec ({run.plan_path} and {run.spec_path} "
                "are missing or unreadable); apply --replace starts the run afresh"
            ),
        }

    if invalid and step > 0:
        paths = ", ".join(c["path"] for c in invalid[:4]) + (" ..." if len(invalid) > 4 else "")
        return {
            "action": "replace",
            "step": step,
            "changes": changes,
            "has_changes": True,
            "summary": f"checkpoint at step {step} is invalidated by {paths}; apply --replace starts the run afresh",
        }
    if state.get("status") == "completed" and step >= steps and not changes:
        return {"action": "none", "step": step, "changes": [], "has_changes": False, "summary": f"run complete at step {step}; nothing to do"}
    if step > 0:
        action, summary = "resume", f"resume at step {step} of {steps}"
    else:
        action, summary = "start", "run directory exists without a checkpoint: start at step 0"
    if changes:
        summary += f" ({len(changes)} compatible change{'s' if len(changes) != 1 else ''})"
    return {"action": action, "step": step, "changes": changes, "has_changes": True, "summary": summary}


def _recorded_spec_yaml(run: RunDir) -> dict[str, Any] | None:
    """The resolved spec apply wrote to `spec.yaml`, or None when missing or unreadable."""
    import yaml

    try:
        data = yaml.safe_load(run.spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("model"), dict) else None
