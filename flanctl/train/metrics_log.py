"""Per-step metrics: `metrics.jsonl` (one JSON object a line) and TensorBoard scalars in `tb/`."""

from __future__ import annotations

import json
from pathlib import Path

from flanctl.train.tb_events import EventWriter

FIELDS = ("step", "loss", "lr", "tokens", "tokens_per_s", "mfu", "time")


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines past `last_step`: after a resume those steps run again and are re-logged."""
    if not path.exists():
        return
    kept = []
    for raw in path.read_bytes().splitlines():
        # A line cut short by a kill, or damaged on disk, records nothing the report could use.
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        step = row.get("step") if isinstance(row, dict) else None
        if isinstance(step, int) and not isinstance(step, bool) and step <= last_step:
            kept.append(raw.decode("utf-8"))
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(k + "\n" for k in kept))
    tmp.replace(path)


class MetricsLog:
    """Writes one record per logged step to metrics.jsonl and the TensorBoard event file."""

    def __init__(self, jsonl: Path, tb_dir: Path, resume_step: int = 0):
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        truncate_metrics(jsonl, resume_step)
        self._jsonl = open(jsonl, "a")
        self._tb = EventWriter(tb_dir)

    def log(self, record: dict) -> None:
        self._jsonl.write(json.dumps({k: record[k] for k in FIELDS if k in record}) + "\n")
        self._jsonl.flush()
        self._tb.scalars(record["step"], {f"train/{k}": record[k] for k in ("loss", "lr", "tokens_per_s", "mfu") if k in record})
        self._tb.flush()

    def log_evals(self, step: int, scores: dict[str, float]) -> None:
        """One line `{"step": n, "eval/<suite>": score, ...}` (held-out evals of train.eval_every)."""
        self._jsonl.write(json.dumps({"step": step, **scores}) + "\n")
        self._jsonl.flush()
        self._tb.scalars(step, dict(scores))
        self._tb.flush()

    def close(self) -> None:
        self._jsonl.close()
        self._tb.close()
