"""The plan document as one typed, frozen object: the only reader and writer of `plan.json`.

`Plan` holds the resolved spec and everything the later rooms need decided once: the model's
family and kind (encoder-decoder or decoder-only), its architecture, whether rows are packed,
absolute paths of the checkpoint, preset and tokenizer. Rooms take a `Plan` and read its
attributes; none re-reads `plan.json` or re-defaults a setting.

The plan hash is sha256 over the canonical JSON of the plan without its `plan_hash` key, so an
edited plan file is refused. A plan of another schema version (an earlier flanctl) is refused
with "run `flanctl plan` again".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from flanctl.errors import FlanctlError
from flanctl.runs.run_dir import write_text_atomic
from flanctl.spec.models import Spec, Tokenizer

#: 2: typed plan (model.encoder_decoder, model.packed, absolute paths); 1 was an untyped dict.
SCHEMA_VERSION = 2
DEFAULT_PLAN_PATH = Path(".flanctl") / "plan.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResolvedModel(_Frozen):
    """The model to finetune, decided once at plan time."""

    family: str
    size: str | None = None
    #: True for T5 and keras-hub Seq2SeqLM presets (read from the preset folder).
    encoder_decoder: bool
    #: Whether the data stream packs several examples per row (mixture.packing and the family allows it).
    packed: bool
    params: int | None = None
    params_without_norms: int | None = None
    params_nominal: float | None = None
    #: Parameters the optimizer updates (LoRA adapters under `train.lora`; else all of them).
    trainable_params: int | None = None
    architecture: dict[str, int] | None = None
    #: Weights to start from: an absolute local folder, or a hub handle as written; None = fresh init.
    checkpoint: str | None = None
    #: The keras-hub preset (absolute folder or hub handle) of a `family: preset` model.
    preset: str | None = None
    #: The spec's tokenizer with `path` absolute.
    tokenizer: Tokenizer
    #: Precision of the weights (spec model.precision).
    precision: str

    @property
    def weights(self) -> str | None:
        """What to load the starting weights from (checkpoint, else preset), or None."""
        return self.checkpoint or self.preset


class RunInfo(_Frozen):
    name: str
    dir: str
    diff: dict[str, Any]


class Plan(_Frozen):
    """The plan document. `Plan.load(path)` / `plan.save(path)`; `plan.document()` is the JSON."""

    schema_version: int = SCHEMA_VERSION
    flanctl_version: str
    spec_path: str
    spec_hash: str
    spec_overrides: list[str]
    spec: Spec
    model: ResolvedModel
    compute: dict[str, Any] | None
    memory: dict[str, Any]
    distribution: dict[str, Any]
    mixture: dict[str, Any]
    eval: dict[str, Any]
    inputs: dict[str, str | None]
    run: RunInfo
    notes: list[str]
    plan_hash: str = ""

    # ---------------------------------------------------------------- derived, never stored
    @property
    def base_dir(self) -> Path:
        """The spec file's folder: relative paths in the spec are from here."""
        return Path(self.spec_path).parent

    @property
    def backend(self) -> str:
        return self.spec.distribution.backend

    @property
    def eval_data_dir(self) -> str | None:
        """`eval.data_dir`, absolute (None when the spec gives none)."""
        return self.eval.get("data_dir")

    @property
    def processes(self) -> int:
        return self.spec.distribution.processes.count

    # ---------------------------------------------------------------- the JSON document
    def document(self) -> dict[str, Any]:
        """The plan as the JSON-able dict `flanctl plan --json` prints and plan.json holds."""
        return self.model_dump(mode="json")

    def with_hash(self) -> "Plan":
        return self.model_copy(update={"plan_hash": plan_hash(self.document())})

    def save(self, path: str | Path = DEFAULT_PLAN_PATH) -> Path:
        """Write the plan (pretty JSON, atomically); returns the path."""
        path = Path(path)
        write_text_atomic(path, json.dumps(self.document(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        """Read a saved plan; verify its schema version and hash."""
        path = Path(path)
        again = "run `flanctl plan SPEC` again"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FlanctlError(f"{path}: no such plan; run `flanctl plan SPEC` first") from None
        except IsADirectoryError:
            raise FlanctlError(f"{path}: is a directory, not a plan file; pass the plan's .json file") from None
        except UnicodeDecodeError:
            raise FlanctlError(f"{path}: plan is not UTF-8 text; {again}") from None
        except json.JSONDecodeError as exc:
            raise FlanctlError(f"{path}:{exc.lineno}:{exc.colno}: plan is not valid JSON ({exc.msg}); {again}") from None
        if not isinstance(raw, dict) or "plan_hash" not in raw:
            raise FlanctlError(f"{path}: not a flanctl plan (no plan_hash); {again}")
        if raw.get("schema_version") != SCHEMA_VERSION:
            raise FlanctlError(
                f"{path}: plan schema version {raw.get('schema_version')!r} is from another flanctl version "
                f"(this one writes {SCHEMA_VERSION}); {again}"
            )
        if plan_hash(raw) != raw["plan_hash"]:
            raise FlanctlError(f"{path}: plan was modified after it was made (hash mismatch); {again}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise FlanctlError(f"{path}: plan field {where}: {first['msg']}; {again}") from None


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the text the plan hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plan_hash(plan: dict[str, Any] | Plan) -> str:
    """sha256 of the canonical JSON of `plan` without its `plan_hash` key."""
    doc = plan.document() if isinstance(plan, Plan) else plan
    body = {k: v for k, v in doc.items() if k != "plan_hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def save_plan(plan: Plan, path: str | Path = DEFAULT_PLAN_PATH) -> Path:
    return plan.save(path)


def load_plan(path: str | Path) -> Plan:
    return Plan.load(path)


def saved_section(path: str | Path, key: str) -> dict[str, Any] | None:
    """One JSON section (`spec`, `mixture`, ...) of a run's `plan.json`, of any schema version,
    or None when the file or the section is missing or unreadable.

    Used to diff a new plan against what a run was made from: a plan of an earlier version
    still tells which settings (and which generated data) the checkpoint was trained with.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    section = raw.get(key) if isinstance(raw, dict) else None
    return section if isinstance(section, dict) else None


def saved_spec(path: str | Path) -> dict[str, Any] | None:
    """The resolved spec recorded in a run's `plan.json` (`saved_section(path, "spec")`)."""
    return saved_section(path, "spec")


def saved_summary(path: str | Path) -> dict[str, Any]:
    """What a report needs from a run's `plan.json` (`run.name`, `model.family/size/params`,
    `mixture`, `spec`), read leniently: runs of earlier versions and hand-made folders are reported too.
    Raises `FlanctlError` only when the file is not a JSON object."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise FlanctlError(f"{path}: not UTF-8 text; re-run `flanctl apply` to rewrite it") from None
    except json.JSONDecodeError as exc:
        raise FlanctlError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); re-run the step that wrote it") from None
    if not isinstance(raw, dict):
        raise FlanctlError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    run = raw.get("run") if isinstance(raw.get("run"), dict) else {}
    spec = raw.get("spec") if isinstance(raw.get("spec"), dict) else {}
    return {
        "run": {"name": run.get("name")},
        "model": {k: model.get(k) for k in ("family", "size", "params")},
        "mixture": raw.get("mixture") if isinstance(raw.get("mixture"), dict) else {},
        "spec": spec,
    }
