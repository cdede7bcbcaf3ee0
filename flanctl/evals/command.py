"""What `flanctl eval` does, as one function: pick the model or the file, run, write results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flanctl.errors import FlanctlError
from flanctl.evals.runner import run_suite, run_suites, score_predictions, write_result
from flanctl.evals.suites import SUITE_NAMES


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
    method: str = "generate"
    mmlu_cot_prompts: str | None = None
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
    options = {"method": req.method, "cot_prompts": req.mmlu_cot_prompts}
    if req.predictions:
        if len(req.suites) != 1:
            raise FlanctlError("--predictions scores one suite at a time; pass a single --suite")
        return score_predictions(req.suites[0], req.predictions, req.data_dir, limit=req.limit, **options), []

    from flanctl.evals.model_source import load_predictor, resolve_run, run_data_dir

    run_dir = None
    if not (req.checkpoint or req.preset):
        run_dir = resolve_run(req.run, req.cwd)
        if run_dir is None:
            raise FlanctlError("no model to evaluate: no last applied run here (.flanctl/last_run); pass --run, --checkpoint, --preset or --predictions")
    data_dir = req.data_dir or (run_data_dir(run_dir) if run_dir is not None else None)
    limit = req.limit
    if limit is None and run_dir is not None:
        # Evaluating a run: its spec's eval.limit is the default, so that re-scoring a run
        # measures what apply measured.
        import json

        plan_file = run_dir / "plan.json"
        if plan_file.is_file():
            plan = json.loads(plan_file.read_text(encoding="utf-8"))
            limit = ((plan.get("spec") or {}).get("eval") or {}).get("limit")
    predictor, _source = load_predictor(run_dir, req.checkpoint, req.preset, batch_size=req.batch_size)
    sc = {"samples": req.samples, "temperature": req.temperature}
    kwargs = dict(limit=limit, self_consistency=sc, batch_size=req.batch_size, write_predictions_to=req.write_predictions, progress=progress, **options)
    if len(req.suites) == 1:
        result = run_suite(req.suites[0], predictor, data_dir, **kwargs)
    else:
        result = run_suites(req.suites, predictor, data_dir, **kwargs)
    written = write_result(result, run_dir / "evals") if run_dir is not None else []
    return result, written


def evaluate_run(
    run_dir: str | Path, plan: dict[str, Any] | None = None, predictor=None, progress=None, suffix: str = ""
) -> dict[str, Any] | None:
    """The eval stage of `apply`: the spec's `eval.suites` with its settings (limit, shots,
    self-consistency, batch size, decode length, data dir, built-in tasks), results written to
    `<run>/evals/<suite><suffix>.json`. Returns the result object, or None when the spec lists
    no suites."""
    import json

    from flanctl.evals.model_source import load_predictor, run_data_dir

    run_dir = Path(run_dir)
    if plan is None:
        plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    ev = (plan.get("spec") or {}).get("eval") or {}
    suites = list(ev.get("suites") or [])
    if not suites:
        return None
    if predictor is None:
        predictor, _ = load_predictor(run_dir)
    kwargs = dict(
        limit=ev.get("limit"), shots=ev.get("shots") or None, self_consistency=ev.get("self_consistency"),
        batch_size=ev.get("batch_size", 16), max_new_tokens=ev.get("max_decode_length"),
        builtin_tasks=ev.get("builtin_tasks") or None, progress=progress,
        # the generated texts beside each score, e.g. evals/builtin.before.predictions.jsonl
        write_predictions_to=Path(run_dir) / "evals" / f"{{suite}}{suffix}.predictions.jsonl",
    )
    data_dir = run_data_dir(run_dir)
    result = run_suite(suites[0], predictor, data_dir, **kwargs) if len(suites) == 1 else run_suites(suites, predictor, data_dir, **kwargs)
    write_result(result, run_dir / "evals", suffix=suffix)
    return result


def evaluate_initial_model(run_dir: str | Path, plan: dict[str, Any], progress=None) -> dict[str, Any] | None:
    """Score the model `apply` is about to finetune, as it stands at step 0, into
    `<run>/evals/<suite>.before.json`: the "before" of the before/after comparison.

    The model is the plan's `model.checkpoint`/`preset` when it names one, else the family's
    architecture initialised with `train.seed` (the trainer seeds the same way before it builds).
    Returns None when the spec lists no suites.
    """
    import os

    spec = plan["spec"]
    if not (spec.get("eval") or {}).get("suites"):
        return None
    os.environ.setdefault("KERAS_BACKEND", spec["distribution"]["backend"])
    import keras

    from flanctl.evals.model_source import run_tokenizer
    from flanctl.models import KerasPredictor, build_model, load_model

    family = spec["model"]["family"]
    tokenizer = None
    source = spec["model"].get("checkpoint") or spec["model"].get("preset")
    if source:
        model, tokenizer = load_model(str(source))
    else:
        keras.utils.set_random_seed(int(spec["train"].get("seed", 0)))
        model = build_model(plan["model"], family, dropout=0.0)
    tokenizer = tokenizer or run_tokenizer(plan)
    predictor = KerasPredictor(model, tokenizer, family, batch_size=int(spec["eval"].get("batch_size", 16)))
    run_dir = Path(run_dir)
    return evaluate_run(run_dir, plan, predictor=predictor, progress=progress, suffix=".before")


def apply_evaluator(console, scores: dict[str, dict]):
    """The `evaluate(plan, run, when)` hook that `apply` runs before and after training:
    the spec's suites with a progress bar, one summary line per suite, results kept in
    `scores[when]`. Only process 0 of a multi-process run evaluates."""
    import os

    from flanctl.evals.tables import ProgressPrinter

    def evaluate(plan: dict[str, Any], run, when: str):
        if plan["spec"]["distribution"]["processes"]["count"] > 1 and os.environ.get("FLANCTL_PROCESS_ID", "0") != "0":
            return None
        label = "before finetuning (step 0)" if when == "before" else "after finetuning"
        with ProgressPrinter(console) as progress:
            if when == "before":
                result = evaluate_initial_model(run.root, plan, progress=progress)
            else:
                result = evaluate_run(run.root, plan, progress=progress)
        if result is not None:
            scores[when] = result
            for r in result.get("suites", [result]):
                console.print(f"[bold]{r['suite']}[/bold] {label}: {r['score']:.1f}")
        return result

    return evaluate


def before_after_lines(scores: dict[str, dict]) -> list[str]:
    """`held-out <suite>: X before finetuning -> Y after` for every suite scored both times."""
    if "before" not in scores or "after" not in scores:
        return []
    before = {r["suite"]: r["score"] for r in scores["before"].get("suites", [scores["before"]])}
    return [
        f"held-out {r['suite']}: {before[r['suite']]:.1f} before finetuning -> {r['score']:.1f} after"
        for r in scores["after"].get("suites", [scores["after"]])
        if r["suite"] in before
    ]
