"""`apply_plan`: turn a saved (or freshly made) plan into a run directory and run it.

Verify the plan is fresh, take the run's exclusive lock, re-check the diff under the lock
(another apply may have moved the run on), write `spec.yaml`, `plan.json` and `state.json`,
then the stages: the before-finetuning eval on a fresh run, training, the final eval.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from flanctl.apply.stages import Stages, default_stages
from flanctl.errors import FlanctlError
from flanctl.plan import Plan, check_fresh
from flanctl.plan.diff import generated_data, run_diff
from flanctl.runs import RunDir, record_last_run, write_text_atomic
from flanctl.runs.interrupts import Interrupted, watch_interrupts


def apply_plan(
    plan: Plan,
    console: Any = None,
    *,
    replace: bool = False,
    cwd: str | Path | None = None,
    loader: Any = None,
    stages: Stages | None = None,
) -> dict[str, Any]:
    """Apply `plan`: returns the final state dict of the run.

    `stages` defaults to the real ones (`default_stages(console)`); `Stages()` does the
    plumbing only (state `planned`). `replace` allows starting afresh over a checkpoint that
    the plan's changes invalidate (it is moved aside, not deleted).
    """
    check_fresh(plan, loader=loader)
    if stages is None:
        stages = default_stages(console)
    spec_dict = plan.spec.model_dump(mode="json")
    steps = plan.spec.train.steps
    run = RunDir(plan.run.dir)
    with run.lock():
        diff = run_diff(run, spec_dict, steps, generated_data(plan.mixture))
        if diff["action"] == "replace":
            if not replace:
                raise FlanctlError(f"{diff['summary']} (or give the spec another name)")
            _move_checkpoints_aside(run, diff["step"])
            diff = run_diff(run, spec_dict, steps, generated_data(plan.mixture))
        previous = run.read_state()
        write_text_atomic(run.spec_path, yaml.safe_dump(spec_dict, sort_keys=False))
        plan.save(run.plan_path)
        history = list(previous.get("history", []))
        history.append({"time": time.time(), "plan_hash": plan.plan_hash, "action": diff["action"], "step": diff["step"]})
        state = run.update_state(
            status="planned",
            step=diff["step"],
            plan_hash=plan.plan_hash,
            spec_hash=plan.spec_hash,
            action=diff["action"],
            history=history,
        )
        record_last_run(cwd if cwd is not None else Path.cwd(), run.root)

        if diff["action"] == "none":
            return run.update_state(status="completed")
        if stages.train is None:
            if console is not None:
                console.print(f"run {run.root}: planned (plumbing only)")
            return state
        run.update_state(status="running")
        try:
            with watch_interrupts() as stop:
                if stages.evaluate is not None and diff["step"] == 0 and run.latest_checkpoint() is None:
                    run.update_state(status="evaluating", stage="before")
                    stages.evaluate(plan, run, "before")
                    _raise_if(stop)
                    run.update_state(status="running")
                metrics = stages.train(plan, run)
                _raise_if(stop)  # a Ctrl-C swallowed while the job was set up
                final = run.read_state()
                run.update_state(status="trained", step=final.get("step", steps), metrics=metrics)
                if stages.evaluate is not None:
                    run.update_state(status="evaluating", stage="after")
                    stages.evaluate(plan, run, "after")
                    _raise_if(stop)
        except Interrupted:
            raise  # the training loop recorded "interrupted at step N" with its checkpoint
        except KeyboardInterrupt:
            # Ctrl-C outside the training loop (an eval): nothing half-written to keep.
            state = run.read_state()
            stage = state.get("stage") if state.get("status") == "evaluating" else None
            where = {"before": "the before-finetuning eval", "after": "the after-finetuning eval"}.get(stage, "apply")
            step = state.get("step", 0)
            run.update_state(status="interrupted", error=None, interrupted_in=where)
            raise Interrupted(f"interrupted during {where} at step {step}; run the same `flanctl apply` again to go on") from None
        except BaseException as exc:
            run.update_state(status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        return run.update_state(status="completed")


def _raise_if(stop) -> None:
    """A Ctrl-C that a library swallowed during a stage still stops apply after it."""
    if stop.requested:
        raise KeyboardInterrupt


def _move_checkpoints_aside(run: RunDir, step: int) -> None:
    """Rename `checkpoints/` to `checkpoints.replaced-<step>-<n>/` so nothing is lost."""
    if not run.checkpoints_dir.exists():
        return
    n = 0
    while (target := run.root / f"checkpoints.replaced-{step}-{n}").exists():
        n += 1
    run.checkpoints_dir.rename(target)
    run.update_state(step=0, status="replaced", replaced_checkpoints=str(target))
