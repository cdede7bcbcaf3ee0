"""The stages `apply` runs, wired to the rooms that do them: train (in this process, or in a
child when this one cannot host the plan's backend), and the held-out evals before, during
(`train.eval_every`) and after finetuning. Only process 0 of a multi-process run evaluates."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from flanctl.errors import FlanctlError
from flanctl.plan import Plan
from flanctl.runs import RunDir
from flanctl.runs.interrupts import EXIT_INTERRUPTED, Interrupted, interrupts_left_to_child

TrainStage = Callable[[Plan, RunDir], dict]
#: `evaluate(plan, run, when)`, `when` "before" (the step-0 model) or "after" (the export).
EvalStage = Callable[[Plan, RunDir, str], Any]


@dataclass
class Stages:
    """What apply runs. `train=None`: plumbing only; `evaluate=None`: no evals."""

    train: TrainStage | None = None
    evaluate: EvalStage | None = None
    #: Results of the before/after evals, by `when`.
    scores: dict[str, dict] = field(default_factory=dict)


def is_chief() -> bool:
    return os.environ.get("FLANCTL_PROCESS_ID", "0") == "0"


def step_dir(run: RunDir, step: int) -> Path:
    """Where the evals of `train.eval_every` at `step` are written."""
    return run.evals_dir / f"step_{step}"


def periodic_eval(plan: Plan, run: RunDir, console=None) -> Callable[[int, Any], dict | None] | None:
    """The `on_step(step, model)` hook of `train.eval_every`: the spec's suites on the model in
    memory, results in `evals/step_<n>/`, scores returned for metrics.jsonl and TensorBoard
    (as `eval/<suite>`). None when the spec asks for no periodic evals."""
    every = plan.spec.train.eval_every
    if not every or not plan.spec.eval.suites:
        return None
    from flanctl.evals.command import evaluate_plan, suite_scores
    from flanctl.evals.model_source import model_predictor, plan_tokenizer

    tokenizer = plan_tokenizer(plan)

    def on_step(step: int, model) -> dict | None:
        if step % every or not is_chief():
            return None
        result = evaluate_plan(plan, step_dir(run, step), model_predictor(plan, model, tokenizer))
        scores = suite_scores(result)
        if console is not None and scores:
            console.print(" ".join(f"[bold]{s}[/bold] at step {step}: {v:.1f}" for s, v in scores.items()))
        return {f"eval/{suite}": score for suite, score in scores.items()}

    return on_step


def train_stage(console=None) -> TrainStage:
    """Training in this process when it can host the plan's backend, else in a child process
    (`python -m flanctl.apply.worker`) that inherits the terminal; the child reports through
    `state.json`."""

    def train(plan: Plan, run: RunDir) -> dict:
        from flanctl.train import needs_child, run_training

        if needs_child(plan):
            return _train_in_child(plan, run)
        return run_training(plan, run, console, on_step=periodic_eval(plan, run, console))

    return train


def _train_in_child(plan: Plan, run: RunDir) -> dict:
    plan_file = run.root / ".train-plan.json"
    plan.save(plan_file)
    # The child chooses the plan's backend itself (flanctl.runtime.setup_process).
    # Ctrl-C reaches the child too; it stops at a step boundary itself and exits 130.
    with interrupts_left_to_child():
        proc = subprocess.run([sys.executable, "-m", "flanctl.apply.worker", str(plan_file), str(run.root)])
    if proc.returncode == EXIT_INTERRUPTED:
        state = run.read_state()
        raise Interrupted(
            f"interrupted at step {state.get('step', 0)} of {plan.spec.train.steps}; checkpoint {state.get('checkpoint')} kept; "
            "run the same `flanctl apply` again to resume"
        )
    if proc.returncode != 0:
        raise FlanctlError(f"training in a {plan.backend} child process failed (exit {proc.returncode}); see its output above")
    return run.read_state().get("train_metrics", {})


def eval_stage(console, scores: dict[str, dict]) -> EvalStage:
    """The before/after evals with a progress bar and one summary line per suite."""
    from flanctl.evals.tables import ProgressPrinter

    def evaluate(plan: Plan, run: RunDir, when: str):
        if plan.processes > 1 and not is_chief():
            return None
        if not plan.spec.eval.suites:
            return None
        from flanctl.evals.command import evaluate_plan
        from flanctl.evals.model_source import initial_predictor, load_predictor

        label = "before finetuning (step 0)" if when == "before" else "after finetuning"
        if when == "before":
            predictor = initial_predictor(plan)
        else:
            predictor, _ = load_predictor(plan, run.root, batch_size=plan.spec.eval.batch_size)
        with ProgressPrinter(console) as progress:
            result = evaluate_plan(plan, run.evals_dir, predictor, progress=progress, suffix=".before" if when == "before" else "")
        if result is not None:
            scores[when] = result
            if console is not None:
                for r in result.get("suites", [result]):
                    console.print(f"[bold]{r['suite']}[/bold] {label}: {r['score']:.1f}")
        return result

    return evaluate


def default_stages(console=None) -> Stages:
    stages = Stages(train=train_stage(console))
    stages.evaluate = eval_stage(console, stages.scores)
    return stages


def before_after_lines(scores: dict[str, dict]) -> list[str]:
    """`held-out <suite>: X before finetuning -> Y after (chance C; normalized N -> M)` for every
    suite scored both times, then one line per task of the suite (before -> after), so the
    gain can be read task by task."""
    if "before" not in scores or "after" not in scores:
        return []
    before = {r["suite"]: r for r in scores["before"].get("suites", [scores["before"]])}
    lines = []
    for r in scores["after"].get("suites", [scores["after"]]):
        b = before.get(r["suite"])
        if b is None:
            continue
        line = f"held-out {r['suite']}: {b['score']:.1f} before finetuning -> {r['score']:.1f} after"
        if "chance" in r and "normalized" in r and "normalized" in b:
            line += f" (chance {r['chance']:.1f}; normalized {b['normalized']:.1f} -> {r['normalized']:.1f})"
        lines.append(line)
        tasks, tasks_before = r.get("tasks") or {}, b.get("tasks") or {}
        if len(tasks) > 1:
            width = max(len(t) for t in tasks)
            lines += [f"  {t:<{width}}  {tasks_before[t]:5.1f} -> {s:5.1f}" for t, s in tasks.items() if t in tasks_before]
    return lines
