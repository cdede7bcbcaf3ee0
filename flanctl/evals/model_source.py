"""Which model `flanctl eval` talks to: a run's exported preset, a checkpoint dir, or a preset.

Resolves the source, sets the Keras backend from the run's plan before Keras is imported, and
wraps the model in the models room's `KerasPredictor` (the evals' `Predictor`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flanctl.errors import FlanctlError


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


def _plan_of(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "plan.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _family_of(source, model) -> str:
    """The family recorded by `save_preset` (flanctl.json), else the loaded model's own class:
    flanctl's PaLM / packed T5 models, or 'preset' for any other keras-hub task (a keras-hub
    T5 preset is a 'preset': its config names T5 but it is keras-hub's `T5Seq2SeqLM`)."""
    if isinstance(source, Path):
        try:
            return json.loads((source / "flanctl.json").read_text(encoding="utf-8"))["family"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass
    from flanctl.models import model_family

    return model_family(model)


def run_tokenizer(plan: dict[str, Any]):
    """The run's own tokenizer (spec `model.tokenizer`), for presets saved without one; a
    missing SentencePiece model is trained as the trainer would (`tokenizer_for_spec`)."""
    spec = plan.get("spec")
    if not spec:
        return None
    from flanctl.data import tokenizer_for_spec
    from flanctl.spec.models import Spec

    base = Path(plan["spec_path"]).parent if plan.get("spec_path") else Path(".")
    return tokenizer_for_spec(Spec.model_validate(spec), base)


def load_predictor(run_dir: Path | None = None, checkpoint: str | None = None, preset: str | None = None,
                   batch_size: int = 16):
    """(predictor, description) for the chosen model source (exactly one should be given)."""
    family = None
    plan: dict[str, Any] = {}
    if run_dir is not None:
        run_dir = Path(run_dir)
        plan = _plan_of(run_dir)
        backend = (plan.get("distribution") or {}).get("backend") or ((plan.get("spec") or {}).get("distribution") or {}).get("backend")
        if backend:
            os.environ.setdefault("KERAS_BACKEND", backend)
        family = (plan.get("model") or {}).get("family")
        source = run_dir / "export"
        if not source.is_dir():
            raise FlanctlError(f"{run_dir}: no export/ folder (the final model); finish `flanctl apply` or pass --checkpoint DIR")
    elif checkpoint is not None:
        source = Path(checkpoint)
        if not source.exists():
            raise FlanctlError(f"--checkpoint {checkpoint}: not found")
    elif preset is not None:
        source = Path(preset) if Path(preset).exists() else preset
    else:
        raise FlanctlError("no model to evaluate: pass --run, --checkpoint, --preset or --predictions (no last applied run in this directory)")
    os.environ.setdefault("KERAS_BACKEND", "jax")
    from flanctl.runtime import quiet_tensorflow_import

    quiet_tensorflow_import()
    try:
        from flanctl.models import KerasPredictor, load_model
    except ImportError as exc:
        raise FlanctlError(f"model loading is not available ({exc}); score a file with --predictions instead") from exc
    model, tokenizer = load_model(str(source))
    if tokenizer is None and plan:
        tokenizer = run_tokenizer(plan)
    if family is None:
        family = _family_of(source, model)
    return KerasPredictor(model, tokenizer, family, batch_size=batch_size), str(source)


def run_data_dir(run_dir: Path) -> str | None:
    """The run's `eval.data_dir` from its plan, resolved against the spec file's folder."""
    plan = _plan_of(run_dir)
    data_dir = ((plan.get("spec") or {}).get("eval") or {}).get("data_dir")
    if not data_dir:
        return None
    spec_path = plan.get("spec_path")
    base = Path(spec_path).parent if spec_path else run_dir
    return str((base / data_dir).resolve()) if not Path(data_dir).is_absolute() else data_dir
