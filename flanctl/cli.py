"""The `flanctl` command line: thin typer commands that parse, call one function, render.

Heavy libraries are imported inside the commands that need them, so `validate`, `plan` and
`schema` stay fast and framework-free.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from flanctl.errors import FlanctlError
from flanctl.runs.interrupts import EXIT_INTERRUPTED, Interrupted
from flanctl.spec.models import EvalSpec

#: The spec's default, so that `flanctl eval` decodes as `apply` does.
EVAL_BATCH_SIZE = EvalSpec.model_fields["batch_size"].default

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Instruction finetuning as code: spec -> plan -> apply -> eval.",
)
data_app = typer.Typer(no_args_is_help=True, help="Look at the training data a spec produces.")
app.add_typer(data_app, name="data")

_STATE = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _STATE["debug"] = debug


def main() -> None:
    """Console-script entry point: run the app, turn known errors into one line + exit code."""
    debug = "--debug" in sys.argv
    try:
        code = app(standalone_mode=False)
    except Interrupted as exc:
        # Not an error: say where it stopped and how to go on.
        _exit_interrupted(str(exc).replace("\n", " "))
    except KeyboardInterrupt:  # Ctrl-C outside a command (while typer starts or we import)
        _exit_interrupted("interrupted")
    except FlanctlError as exc:
        if debug:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            code = getattr(exc, "code", 0)
        sys.exit(code or 0)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # click usage errors and anything unexpected
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, click.UsageError) else 1)
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)
    # Without standalone mode typer returns the exit code of a `typer.Exit`, and turns Ctrl-C
    # in a command into Exit(130): dropping it made an interrupted command exit 0.
    if isinstance(code, int) and not isinstance(code, bool) and code:
        if code == EXIT_INTERRUPTED:
            _exit_interrupted("interrupted")
        sys.exit(code)


def _exit_interrupted(message: str) -> None:
    """Print one line and leave with 130 without the interpreter's teardown: an interrupt that
    landed inside XLA or TensorFlow can leave their threads in a state where finalizers crash
    (measured: a segfault after a Ctrl-C in the before-finetuning eval). Everything flanctl
    writes is complete on disk by now (atomic renames; metrics and events closed)."""
    import os

    print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


# Commands are added below, one function each, by room:
#   validate / schema / plan / apply  -> flanctl.spec, flanctl.plan, flanctl.runs, flanctl.train
#   data preview / data stats         -> flanctl.data
#   eval                              -> flanctl.evals
#   report                            -> flanctl.report


@app.command("validate")
def validate_cmd(
    specs: list[str] = typer.Argument(..., help="Spec files to check."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set train.steps=100 (repeatable)."),
) -> None:
    """Check spec files: schema and cross-field rules; every error as file:line:col (exit 2 if any is invalid)."""
    from flanctl.spec.loader import check_files

    results = check_files(specs, set_)
    for res in results:
        if res.ok:
            print(f"ok: {res.path}")
            for note in res.loaded.notes:
                print(f"note: {res.path}: {note}")
        for err in res.errors:
            print(f"error: {err}", file=sys.stderr)
    if not all(r.ok for r in results):
        raise SystemExit(2)


@app.command("schema")
def schema_cmd(out: Optional[str] = typer.Option(None, "--out", help="Write the schema to this file instead of stdout.")) -> None:
    """Print the JSON Schema of the spec (for editors and validators)."""
    from pathlib import Path

    from flanctl.spec.schema import json_schema_text

    text = json_schema_text()
    if out is None:
        print(text, end="")
        return
    try:
        Path(out).write_text(text)  # in place: never replaces what is there (a device stays one)
    except OSError as exc:
        raise FlanctlError(f"cannot write the schema to {out}: {exc.strerror or exc}") from None
    print(f"wrote {out}")


@app.command("plan")
def plan_cmd(
    spec: str = typer.Argument(..., help="Spec file to plan."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set train.steps=100 (repeatable)."),
    out: str = typer.Option(".flanctl/plan.json", "--out", help="Where to save the plan (apply with no argument reads it)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan document as JSON instead of tables."),
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 0 when the run is up to date, 2 when apply would change it, 1 on error."),
) -> None:
    """Resolve a spec into a plan: model, compute, memory, mixture, evals, and the diff against its run."""
    import json

    from flanctl.data import realize_mixture
    from flanctl.plan import make_plan
    from flanctl.spec import load_spec

    plan = make_plan(load_spec(spec, set_), overrides=set_, realize=realize_mixture)
    try:
        plan.save(out)
    except OSError as exc:
        raise FlanctlError(f"cannot save the plan to {out}: {exc.strerror or exc}") from None
    if as_json:
        print(json.dumps(plan.document(), indent=2, sort_keys=True))
    else:
        from rich.console import Console

        from flanctl.plan.render import render_plan

        render_plan(plan, Console())
        print(f"saved {out}")
    if detailed_exitcode and plan.run.diff["has_changes"]:
        raise SystemExit(2)


@app.command("apply")
def apply_cmd(
    target: Optional[str] = typer.Argument(None, help="A saved plan (.json) or a spec; default: the last saved plan (.flanctl/plan.json)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field when TARGET is a spec (repeatable)."),
    replace: bool = typer.Option(False, "--replace", help="Start afresh when the changes invalidate the run's checkpoint (old checkpoints are moved aside)."),
) -> None:
    """Apply a plan: create or resume runs/<name>/ (spec.yaml, plan.json, state.json, lock), then train and evaluate."""
    from rich.console import Console

    from flanctl.apply import apply_plan, default_stages
    from flanctl.apply.stages import before_after_lines
    from flanctl.plan import DEFAULT_PLAN_PATH, Plan, make_plan

    if target is None or target.endswith(".json"):
        if set_:
            raise FlanctlError("--set applies to a spec, not to a saved plan; run `flanctl plan SPEC --set ...` instead")
        plan = Plan.load(target or DEFAULT_PLAN_PATH)
    else:
        from flanctl.data import realize_mixture
        from flanctl.spec import load_spec

        plan = make_plan(load_spec(target, set_), overrides=set_, realize=realize_mixture)
        plan.save(DEFAULT_PLAN_PATH)
    from flanctl.runtime import setup_process

    setup_process(plan.backend, plan.spec.distribution)
    console = Console(stderr=True)
    stages = default_stages(console)
    try:
        state = apply_plan(plan, console, replace=replace, stages=stages)
    except Interrupted as exc:
        import shlex

        again = shlex.join(["flanctl", "apply", *([target] if target else []), *(a for s in set_ for a in ("--set", s))])
        raise Interrupted(str(exc).replace("the same `flanctl apply`", f"`{again}`")) from None
    for line in before_after_lines(stages.scores):
        print(line)
    print(f"run {plan.run.dir}: {state.get('status')} at step {state.get('step', 0)}")


@app.command("report")
def report_cmd(
    runs: list[str] = typer.Argument(..., help="Run directories (runs/<name>/) to report on."),
    out: Optional[str] = typer.Option(None, "--out", help="Output folder (default: reports/<UTC timestamp>/)."),
    title: str = typer.Option("flanctl report", "--title", help="Title of the report."),
) -> None:
    """Markdown + HTML report with PNG plots: loss, evals vs. the paper, scaling over runs."""
    from flanctl.report import make_report

    res = make_report(runs, out=out, title=title)
    for note in res.notes:
        print(f"note: {note}")
    print(f"wrote {res.markdown}, {res.html} and {len(res.images)} plot(s) for {len(res.runs)} run(s)")


@app.command("eval")
def eval_cmd(
    suite: list[str] = typer.Option([], "--suite", help="mmlu, mmlu-cot, bbh, bbh-cot, tydiqa, mgsm, flan-held-out, builtin (repeatable)."),
    run: Optional[str] = typer.Option(None, "--run", help="Run name or directory (default: the last applied run here)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="A saved model / preset directory to evaluate."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A keras-hub preset handle or directory."),
    predictions: Optional[str] = typer.Option(None, "--predictions", help="Score this JSONL predictions file instead of running a model."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with the suites' original files (mmlu/, bbh/, tydiqa/, mgsm/)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Examples per task/subject/language (quick looks)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    samples: int = typer.Option(1, "--samples", help="Self-consistency: samples per question (1 = greedy)."),
    temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature when --samples > 1."),
    write_predictions: Optional[str] = typer.Option(None, "--write-predictions", help="Also write the generated texts as JSONL ({suite} in the path: one file per suite)."),
    method: Optional[str] = typer.Option(None, "--method", help="generate, or loglikelihood (rank the options; mmlu and builtin). Default: the run's eval.method, else generate."),
    mmlu_cot_prompts: Optional[str] = typer.Option(None, "--mmlu-cot-prompts", help="JSON subject -> CoT prompt (default: <mmlu>/mmlu-cot.json, the paper's exemplars; without it mmlu-cot is refused unless --mmlu-cot-fallback)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1, help="Tokens generated per answer for every suite (raises or lowers the budgets each suite derives from its prompts)."),
    mmlu_split: str = typer.Option("val", "--mmlu-split", help="MMLU split scored: val (the paper's Table 5) or test (its Tables 1 and 4)."),
    mmlu_cot_fallback: bool = typer.Option(False, "--mmlu-cot-fallback", help="mmlu-cot without the paper's mmlu-cot.json: use dev exemplars without rationales (labelled in the results)."),
    batch_size: int = typer.Option(EVAL_BATCH_SIZE, "--batch-size", help="Prompts decoded together."),
) -> None:
    """Evaluate a run, a checkpoint, a preset, or a predictions file with the paper's protocol."""
    import json

    from rich.console import Console

    from flanctl.evals.command import EvalRequest, evaluate
    from flanctl.evals.tables import ProgressPrinter, render_results

    req = EvalRequest(
        suites=suite, run=run, checkpoint=checkpoint, preset=preset, predictions=predictions, data_dir=data_dir,
        limit=limit, samples=samples, temperature=temperature, write_predictions=write_predictions,
        method=method, mmlu_cot_prompts=mmlu_cot_prompts, mmlu_split=mmlu_split, mmlu_cot_fallback=mmlu_cot_fallback,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    console = Console(stderr=as_json)
    with ProgressPrinter(console) as progress:
        result, written = evaluate(req, progress=progress)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    render_results(result, console)
    for path in written:
        console.print(f"wrote {path}")


@app.command("export")
def export_cmd(
    run: Optional[str] = typer.Argument(None, help="Run name or directory (default: the last applied run here)."),
    fmt: str = typer.Option("hf", "--format", help="hf (a transformers folder) or keras-hub (a keras-hub preset folder)."),
    out: Optional[str] = typer.Option(None, "--out", help="Folder to write (default: <run>/export_<format>)."),
) -> None:
    """Export a finished run's model for other tools: Hugging Face transformers or keras-hub."""
    from pathlib import Path

    from flanctl.evals.model_source import resolve_run, run_plan
    from flanctl.runtime import setup_process

    run_dir = resolve_run(run)
    if run_dir is None:
        raise FlanctlError("no run to export: pass a run name or directory (no last applied run in this directory)")
    plan = run_plan(run_dir)
    setup_process(plan.backend)
    from flanctl.data import tokenizer_for_spec
    from flanctl.models import get_family
    from flanctl.models.export import export_run_model

    target = Path(out) if out else run_dir / f"export_{fmt.replace('-', '_')}"
    family = get_family(plan.model.family, plan.model.encoder_decoder)
    path = export_run_model(family, run_dir / "export", target, fmt, lambda: tokenizer_for_spec(plan.spec, plan.base_dir))
    print(f"wrote {path} ({fmt})")


@data_app.command("preview")
def data_preview_cmd(
    spec: str = typer.Argument(..., help="Spec file."),
    n: int = typer.Option(5, "-n", "--num", min=1, help="Examples to show."),
    task: Optional[str] = typer.Option(None, "--task", help="Only this task's examples."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set mixture.seed=1 (repeatable)."),
) -> None:
    """Show rendered training examples in stream order, the loss-masked target highlighted, with token counts."""
    from rich.console import Console

    from flanctl.data.render import render_preview
    from flanctl.data.stats import preview_examples
    from flanctl.spec import load_spec

    loaded = load_spec(spec, set_)
    render_preview(preview_examples(loaded.spec, loaded.path.parent, n=n, task=task), Console())


@data_app.command("stats")
def data_stats_cmd(
    spec: str = typer.Argument(..., help="Spec file."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set train.steps=100 (repeatable)."),
) -> None:
    """Per-task count, rate, epochs, tokens and truncation; overall packing efficiency."""
    import json

    from flanctl.data.stats import data_stats
    from flanctl.spec import load_spec

    loaded = load_spec(spec, set_)
    stats = data_stats(loaded.spec, loaded.path.parent)
    if as_json:
        print(json.dumps(stats, sort_keys=True))
        return
    from rich.console import Console

    from flanctl.data.render import render_stats

    render_stats(stats, Console())


if __name__ == "__main__":
    main()
