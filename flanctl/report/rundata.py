"""Reading one run directory into a `RunRecord`: the report's whole input contract.

The layout is the one DESIGN.md fixes for `runs/<name>/`: `plan.json`, `spec.yaml`,
`metrics.jsonl` (one JSON object per line with at least `step`, `loss`, `tokens_per_s`) and
`evals/<suite>.json`. Only the standard library and PyYAML are used here: reading a run must
not pull in an ML framework.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flanctl.errors import FlanctlError
from flanctl.plan.document import saved_summary

#: Eval files whose name ends like this hold the score of the model before finetuning
#: (e.g. `evals/builtin.before.json`); they are shown beside the final score.
BEFORE_SUFFIX = ".before"


@dataclass
class SuiteResult:
    """One eval suite's result as written to `evals/<suite>.json`."""

    suite: str
    score: float | None
    tasks: dict[str, float] = field(default_factory=dict)
    n: int | None = None
    paper: dict[str, float] = field(default_factory=dict)
    chance: float | None = None
    source: Path | None = None
    #: The suite's normalized score as the evals computed it (each task by its own chance).
    normalized: float | None = None


@dataclass
class RunRecord:
    """Everything the report needs from one run directory."""

    name: str
    root: Path
    plan: dict[str, Any]
    spec: dict[str, Any]
    metrics: list[dict[str, Any]]
    evals: dict[str, SuiteResult]
    evals_before: dict[str, SuiteResult]
    normalized_average: float | None = None

    @property
    def params(self) -> int | None:
        """Parameter count from `plan.json` `model.params` (None when the plan lacks it)."""
        value = (self.plan.get("model") or {}).get("params")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def eval_curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """{suite: (steps, scores)} of the held-out evals run during training (`train.eval_every`:
        metrics.jsonl lines with `eval/<suite>` keys), the step-0 score first when recorded."""
        curves: dict[str, dict[int, float]] = {}
        for m in self.metrics:
            for key, value in m.items():
                if key.startswith("eval/") and isinstance(value, (int, float)) and isinstance(m.get("step"), int):
                    curves.setdefault(key[len("eval/"):], {})[int(m["step"])] = float(value)
        for suite, points in curves.items():
            before = self.evals_before.get(suite)
            if before is not None and before.score is not None:
                points.setdefault(0, before.score)
        return {s: (sorted(p), [p[k] for k in sorted(p)]) for s, p in sorted(curves.items())}

    @property
    def loss_curve(self) -> tuple[list[int], list[float]]:
        """(steps, losses) of the metrics lines that carry a loss, in step order."""
        pts = sorted((int(m["step"]), float(m["loss"])) for m in self.metrics if "loss" in m and "step" in m)
        return [p[0] for p in pts], [p[1] for p in pts]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise FlanctlError(f"{path}: not UTF-8 text; re-run the step that wrote it") from None
    except json.JSONDecodeError as exc:
        raise FlanctlError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); re-run the step that wrote it") from None


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """Parse `metrics.jsonl`; a truncated last line (a run killed mid-write) is skipped."""
    rows: list[dict[str, Any]] = []
    lines = path.read_bytes().splitlines()
    for lineno, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if lineno == len(lines):
                continue
            raise FlanctlError(f"{path}:{lineno}:{exc.start + 1}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); fix or delete the line") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if lineno == len(lines):  # a run killed while writing its last line
                continue
            raise FlanctlError(f"{path}:{lineno}:{exc.colno}: not a JSON object ({exc.msg}); fix or delete the line") from None
        if not isinstance(row, dict):
            raise FlanctlError(f"{path}:{lineno}:1: expected a JSON object per line, got {type(row).__name__}")
        step = row.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            raise FlanctlError(f"{path}:{lineno}: 'step' must be an integer, got {json.dumps(step)}; fix or delete the line")
        for key, value in row.items():
            if key != "step" and value is not None and not isinstance(value, (int, float)) or isinstance(value, bool):
                raise FlanctlError(f"{path}:{lineno}: '{key}' must be a number, got {json.dumps(value)[:40]}; fix or delete the line")
        if "loss" in row and row["loss"] is None:
            raise FlanctlError(f"{path}:{lineno}: 'loss' is null; fix or delete the line")
        rows.append(row)
    return rows


def _suite_from_dict(data: dict[str, Any], source: Path) -> SuiteResult:
    if "suite" not in data:
        raise FlanctlError(f"{source}: eval result has no 'suite' key; expected the object `flanctl eval --json` prints")
    score = data.get("score")
    return SuiteResult(
        suite=str(data["suite"]),
        score=float(score) if isinstance(score, (int, float)) else None,
        tasks={str(k): float(v) for k, v in (data.get("tasks") or {}).items() if isinstance(v, (int, float))},
        n=data.get("n") if isinstance(data.get("n"), int) else None,
        paper={str(k): float(v) for k, v in (data.get("paper") or {}).items() if isinstance(v, (int, float))},
        chance=float(data["chance"]) if isinstance(data.get("chance"), (int, float)) else None,
        source=source,
        normalized=float(data["normalized"]) if isinstance(data.get("normalized"), (int, float)) else None,
    )


def _read_evals(evals_dir: Path) -> tuple[dict[str, SuiteResult], dict[str, SuiteResult], float | None]:
    """Final results, before-finetuning results, and a stored normalized average if any."""
    after: dict[str, SuiteResult] = {}
    before: dict[str, SuiteResult] = {}
    normalized: float | None = None
    if not evals_dir.is_dir():
        return after, before, normalized
    for path in sorted(evals_dir.glob("*.json")):
        data = _read_json(path)
        if not isinstance(data, dict):
            raise FlanctlError(f"{path}: expected a JSON object, got {type(data).__name__}")
        target = before if path.stem.endswith(BEFORE_SUFFIX) else after
        # Several suites in one file: `{"suites": [...], "normalized_average": x}`.
        if isinstance(data.get("suites"), list):
            for item in data["suites"]:
                if isinstance(item, dict):
                    res = _suite_from_dict(item, path)
                    target[res.suite] = res
            if target is after and isinstance(data.get("normalized_average"), (int, float)):
                normalized = float(data["normalized_average"])
            continue
        res = _suite_from_dict(data, path)
        target[res.suite] = res
    return after, before, normalized


def _read_spec(path: Path) -> dict[str, Any]:
    import yaml  # PyYAML, safe loading only

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise FlanctlError(f"{path}: spec.yaml is not UTF-8 text; re-run `flanctl apply` to rewrite it") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise FlanctlError(f"{where}: spec.yaml is not valid YAML; re-run `flanctl apply` to rewrite it") from None
    return data if isinstance(data, dict) else {}


def read_run(root: str | Path) -> RunRecord:
    """Read a run directory; raise a one-line `FlanctlError` when it is missing or not a run."""
    root = Path(root)
    if not root.exists():
        raise FlanctlError(f"run directory '{root}' does not exist; pass a run folder such as runs/<name>/")
    if not root.is_dir():
        raise FlanctlError(f"'{root}' is a file, not a run directory; pass a run folder such as runs/<name>/")
    plan_path, spec_path, metrics_path = root / "plan.json", root / "spec.yaml", root / "metrics.jsonl"
    evals_dir = root / "evals"
    if not any(p.exists() for p in (plan_path, metrics_path, evals_dir)):
        raise FlanctlError(
            f"'{root}' is not a run directory (no plan.json, metrics.jsonl or evals/); run `flanctl apply SPEC` first"
        )
    plan = saved_summary(plan_path) if plan_path.exists() else {}
    spec = _read_spec(spec_path) if spec_path.exists() else dict(plan.get("spec") or {})
    metrics = _read_metrics(metrics_path) if metrics_path.exists() else []
    after, before, normalized = _read_evals(evals_dir)
    name = str((plan.get("run") or {}).get("name") or spec.get("name") or root.resolve().name)
    return RunRecord(name=name, root=root, plan=plan, spec=spec, metrics=metrics,
                     evals=after, evals_before=before, normalized_average=normalized)
