"""What `flanctl eval` does, as one function: pick the model or the file, run, write results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flanctl.errors import FlanctlError
from flanctl.evals.runner import run_suite, run_suites, score_predictions, write_result
from flanctl.evals.suites import SUITE_NAMES
from flanctl.plan import Plan


@dataclass
class EvalRequest:
    """The eval command's options, as parsed by the CLI."""

    suites: list[str]
    run: str | None = None
    checkpoint: str | None = None
    preset: str | None = None
    predictions: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    samples: int = 1
    temperature: float = 0.7
    write_predictions: str | None = None
    method: str | None = None  # None: the run's eval.method, else "generate"
    mmlu_cot_prompts: str | None = None
    mmlu_split: str = "val"
    mmlu_cot_fallback: bool = False
    max_new_tokens: int | None = None
    batch_size: int = 16
    cwd: str = "."
    notes: list[str] = field(default_factory=list)


def evaluate(req: EvalRequest, progress=None) -> tuple[dict[str, Any], list[Path]]:
    """Run the request; returns (the `--json` object, files written under the run's evals/)."""
    if not req.suites:
        raise FlanctlError("no suite given: pass --suite with one of " + ", ".join(SUITE_NAMES))
    for s in req.suites:
        if s not in SUITE_NAMES:
            raise FlanctlError(f"unknown suite {s!r}; choose from {', '.join(SUITE_NAMES)}")
    if req.limit is not None and req.limit <= 0:
        raise FlanctlError(f"--limit must be positive, got {req.limit}")
    if req.samples < 1:
        raise FlanctlError(f"--samples must be at least 1, got {req.samples}")
    sources = [n for n, v in (("--run", req.run), ("--checkpoint", req.checkpoint), ("--preset", req.preset), ("--predictions", req.predictions)) if v]
    if len(sources) > 1:
        raise FlanctlError(f"pass only one of {', '.join(sources)}")
    options = {"method": req.method or "generate", "cot_prompts": req.mmlu_cot_prompts, "mmlu_split": req.mmlu_split,
               "mmlu_cot_fallback": req.mmlu_cot_fallback}
    if req.predictions:
        if len(req.suites) != 1:
            raise FlanctlError("--predictions scores one suite at a time; pass a single --suite")
        return score_predictions(req.suites[0], req.predictions, req.data_dir, limit=req.limit, **options), []

    from flanctl.evals.model_source import load_predictor, resolve_run, run_plan

    run_dir = plan = None
    if not (req.checkpoint or req.preset):
        run_dir = resolve_run(req.run, req.cwd)
        if run_dir is None:
            raise FlanctlError("no model to evaluate: no last applied run here (.flanctl/last_run); pass --run, --checkpoint, --preset or --predictions")
        if not (run_dir / "export").is_dir():
            raise FlanctlError(f"{run_dir}: no export/ folder (the final model); finish `flanctl apply` or pass --checkpoint DIR")
        plan = run_plan(run_dir)
    data_dir = req.data_dir or (plan.eval_data_dir if plan is not None else None)
    # Evaluating a run: its spec's eval.limit is the default, so that re-scoring a run
    # measures what apply measured.
    limit = req.limit if req.limit is not None or plan is None else plan.spec.eval.limit
    if req.method is None and plan is not None:  # and the way it scored
        options["method"] = plan.spec.eval.method
    predictor, _source = load_predictor(plan, run_dir, req.checkpoint, req.preset, batch_size=req.batch_size)
    sc = {"samples": req.samples, "temperature": req.temperature}
    kwargs = dict(limit=limit, self_consistency=sc, batch_size=req.batch_size, max_new_tokens=req.max_new_tokens,
                  write_predictions_to=req.write_predictions, progress=progress, **options)
    if len(req.suites) == 1:
        result = run_suite(req.suites[0], predictor, data_dir, **kwargs)
    else:
        result = run_suites(req.suites, predictor, data_dir, **kwargs)
    written = write_result(result, run_dir / "evals") if run_dir is not None else []
    return result, written


def evaluate_plan(plan: Plan, out_dir: str | Path, predictor, progress=None, suffix: str = "") -> dict[str, Any] | None:
    """The spec's `eval.suites` with its settings (limit, shots, self-consistency, batch size,
    decode length, data dir, built-in tasks, method) on `predictor`; results written to
    `<out_dir>/<suite><suffix>.json` with the generated texts beside them
    (`<suite><suffix>.predictions.jsonl`). Returns the result object, or None when the spec
    lists no suites. `apply` calls it before, during (`train.eval_every`) and after training."""
    ev = plan.spec.eval
    if not ev.suites:
        return None
    out_dir = Path(out_dir)
    kwargs = dict(
        limit=ev.limit, shots=ev.shots or None, self_consistency=ev.self_consistency.model_dump(),
        batch_size=ev.batch_size, max_new_tokens=ev.max_decode_length,
        builtin_tasks=ev.builtin_tasks or None, mmlu_split=ev.mmlu_split, method=ev.method, progress=progress,
        write_predictions_to=out_dir / f"{{suite}}{suffix}.predictions.jsonl",
    )
    suites = list(ev.suites)
    data_dir = plan.eval_data_dir
    result = run_suite(suites[0], predictor, data_dir, **kwargs) if len(suites) == 1 else run_suites(suites, predictor, data_dir, **kwargs)
    write_result(result, out_dir, suffix=suffix)
    return result


def suite_scores(result: dict[str, Any] | None) -> dict[str, float]:
    """{suite: score} of a result object (one suite or several)."""
    if not result:
        return {}
    return {r["suite"]: float(r["score"]) for r in result.get("suites", [result])}
