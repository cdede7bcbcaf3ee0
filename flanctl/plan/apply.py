"""`apply`: turn a saved (or freshly made) plan into a run directory and run it.

The plumbing lives here: verify the plan, take the run's exclusive lock, re-check the diff
under the lock (another apply may have moved the run on), write `spec.yaml`, `plan.json` and
`state.json`, then hand over to `flanctl.train.run_training` when the train room provides it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from flanctl.errors import FlanctlError
from flanctl.plan.diff import run_diff
from flanctl.plan.document import check_fresh
from flanctl.runs import RunDir, record_last_run, write_json_atomic, write_text_atomic

Trainer = Callable[[dict, RunDir, Any], dict]
#: `evaluate(plan, run, when)` with `when` "before" (the step-0 model) or "after" (the
#: exported model); returns the eval result or None. Injected by the CLI (evals room).
Evaluator = Callable[[dict, RunDir, str], Any]


def find_trainer() -> Trainer | None:
    """`flanctl.train.run_training` if the train room provides it, else None (plumbing only)."""
    if importlib.util.find_spec("flanctl.train") is None:
        return None
    module = importlib.import_module("flanctl.train")
    return getattr(module, "run_training", None)


def apply_plan(
    plan: dict[str, Any],
    console: Any = None,
    *,
    replace: bool = False,
    trainer: Trainer | None | bool = True,
    cwd: str | Path | None = None,
    loader: Any = None,
    evaluate: Evaluator | None = None,
) -> dict[str, Any]:
    """Apply `plan`: returns the final state dict of the run.

    `trainer=True` looks up `flanctl.train.run_training`; `False`/`None` does the plumbing
    only (state `planned`); a callable is used as the trainer. `replace` allows starting
    afresh over a checkpoint that the plan's changes invalidate (it is moved aside, not deleted).
    `evaluate` runs the spec's eval suites on the step-0 model of a fresh run and on the final
    model after training (data -> train -> eval).
    """
    check_fresh(plan, loader=loader)
    run = RunDir(plan["run"]["dir"])
    with run.lock():
        diff = run_diff(run, plan["spec"], plan["spec"]["train"]["steps"])
        if diff["action"] == "replace":
            if not replace:
                raise FlanctlError(f"{diff['summary']} (or give the spec another name)")
            _move_checkpoints_aside(run, diff["step"])
            diff = run_diff(run, plan["spec"], plan["spec"]["train"]["steps"])
        previous = run.read_state()
        write_text_atomic(run.spec_path, yaml.safe_dump(plan["spec"], sort_keys=False))
        write_json_atomic(run.plan_path, plan)
        history = list(previous.get("history", []))
        history.append({"time": time.time(), "plan_hash": plan["plan_hash"], "action": diff["action"], "step": diff["step"]})
        state = run.update_state(
            status="planned",
            step=diff["step"],
            plan_hash=plan["plan_hash"],
            spec_hash=plan["spec_hash"],
            action=diff["action"],
            history=history,
        )
        record_last_run(cwd if cwd is not None else Path.cwd(), run.root)

        if diff["action"] == "none":
            return run.update_state(status="completed")
        if trainer is True:
            os.environ.setdefault("KERAS_BACKEND", plan["distribution"]["backend"])
            trainer = find_trainer()
        if not trainer:
            if console is not None:
                console.print(f"run {run.root}: planned (no trainer available; plumbing only)")
            return state
        run.update_state(status="running")
        try:
            if evaluate is not None and diff["step"] == 0 and run.latest_checkpoint() is None:
                run.update_state(status="evaluating", stage="before")
                evaluate(plan, run, "before")
                run.update_state(status="running")
            metrics = trainer(plan, run, console)
            final = run.read_state()
            run.update_state(status="trained", step=final.get("step", plan["spec"]["train"]["steps"]), metrics=metrics)
            if evaluate is not None:
                run.update_state(status="evaluating", stage="after")
                evaluate(plan, run, "after")
        except BaseException as exc:
            run.update_state(status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        return run.update_state(status="completed")


def _move_checkpoints_aside(run: RunDir, step: int) -> None:
    """Rename `checkpoints/` to `checkpoints.replaced-<step>-<n>/` so nothing is lost."""
    if not run.checkpoints_dir.exists():
        return
    n = 0
    while (target := run.root / f"checkpoints.replaced-{step}-{n}").exists():
        n += 1
    run.checkpoints_dir.rename(target)
    run.update_state(step=0, status="replaced", replaced_checkpoints=str(target))
