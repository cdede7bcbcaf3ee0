"""Which model an eval talks to: a run's exported preset, a checkpoint dir, a preset, the
step-0 model `apply` is about to finetune, or a model in memory during training.

Each source ends as its model family's generation engine (the evals' `Predictor`). The process's
Keras backend is chosen by `flanctl.runtime.setup_process` before Keras is imported: the
run's plan's backend for a run, else $KERAS_BACKEND or jax.
"""

from __future__ import annotations

from pathlib import Path

from flanctl.errors import FlanctlError
from flanctl.plan import Plan
from flanctl.runtime import setup_process


def resolve_run(run: str | None, cwd: str | Path = ".") -> Path | None:
    """A run directory from a name (`runs/<name>`) or a path; None without one and no last run."""
    cwd = Path(cwd)
    if run is None:
        from flanctl.runs.last_run import last_run

        return last_run(cwd)
    for candidate in (Path(run), cwd / "runs" / run):
        if candidate.is_dir():
            return candidate.resolve()
    raise FlanctlError(f"run {run!r} not found (looked for {run} and runs/{run}); pass a run directory or name")


def run_plan(run_dir: Path) -> Plan:
    """The plan a run was applied with (`<run>/plan.json`)."""
    path = Path(run_dir) / "plan.json"
    if not path.is_file():
        raise FlanctlError(f"{run_dir}: no plan.json; apply a spec to make this run, or pass --checkpoint DIR")
    return Plan.load(path)


def plan_tokenizer(plan: Plan):
    """The plan's tokenizer (spec `model.tokenizer`); a missing SentencePiece model is trained
    as the trainer would (`tokenizer_for_spec`)."""
    from flanctl.data import tokenizer_for_spec

    return tokenizer_for_spec(plan.spec, plan.base_dir)


def _plan_family(plan: Plan):
    from flanctl.models import get_family

    return get_family(plan.model.family, plan.model.encoder_decoder)


def load_predictor(plan: Plan | None = None, run_dir: Path | None = None, checkpoint: str | None = None,
                   preset: str | None = None, batch_size: int = 16):
    """(predictor, description) for a run's export (with its plan), a checkpoint or a preset.

    The family is the plan's; without a plan, the one recorded in the folder (flanctl.json),
    else the loaded model's class."""
    if run_dir is not None:
        source: str | Path = Path(run_dir) / "export"
        if not Path(source).is_dir():
            raise FlanctlError(f"{run_dir}: no export/ folder (the final model); finish `flanctl apply` or pass --checkpoint DIR")
    elif checkpoint is not None:
        source = Path(checkpoint)
        if not source.exists():
            raise FlanctlError(f"--checkpoint {checkpoint}: not found")
    elif preset is not None:
        source = Path(preset) if Path(preset).exists() else preset
    else:
        raise FlanctlError("no model to evaluate: pass --run, --checkpoint, --preset or --predictions (no last applied run in this directory)")
    setup_process(plan.backend if plan is not None else None)
    if plan is not None:
        family = _plan_family(plan)
        model, tokenizer = _load_local(source, family.load)
        tokenizer = tokenizer or plan_tokenizer(plan)
    else:
        from flanctl.models import family_of_model, load_model

        model, tokenizer = _load_local(source, load_model)
        family = family_of_model(model, source if isinstance(source, Path) else None)
    return family.engine(model, tokenizer, batch_size=batch_size), str(source)


def _load_local(source: str | Path, load):
    """`load(str(source))`; a local folder whose files do not load (truncated weights, a
    config that is not JSON) is one line naming the folder instead of the loader's exception."""
    import zipfile

    try:
        return load(str(source))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        if not isinstance(source, Path):
            raise
        detail = (str(exc).splitlines() or [""])[0][:120]
        raise FlanctlError(
            f"{source}: the saved model does not load ({type(exc).__name__}: {detail}); the folder is damaged or incomplete: "
            "restore it, or evaluate a checkpoint with --checkpoint DIR"
        ) from None


def initial_predictor(plan: Plan):
    """The model `apply` is about to finetune, as it stands at step 0: the plan's checkpoint or
    preset when it names one, else the family's architecture initialised with `train.seed`
    (the trainer seeds the same way before it builds), attending as `model.attention` as the
    trainer's model does."""
    setup_process(plan.backend)
    import keras

    family = _plan_family(plan)
    tokenizer = None
    attention = plan.spec.model.attention
    if plan.model.weights:
        model, tokenizer = family.load(plan.model.weights)
        model = family.as_planned(model, attention, (plan.model.architecture or {}).get("vocab_size"), plan.spec.train.seed)
    else:
        keras.utils.set_random_seed(plan.spec.train.seed)
        model = family.build(plan.model.architecture, dropout=0.0, attention=attention)
    return family.engine(model, tokenizer or plan_tokenizer(plan), batch_size=plan.spec.eval.batch_size)


def model_predictor(plan: Plan, model, tokenizer=None):
    """A predictor over a model in memory (the periodic evals of `train.eval_every`); the
    family's engine unwraps a training adapter to its task."""
    return _plan_family(plan).engine(model, tokenizer or plan_tokenizer(plan), batch_size=plan.spec.eval.batch_size)
