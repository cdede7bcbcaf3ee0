"""Predictions files (DESIGN.md): JSONL lines `{"id", "prediction"}` or `{"id", "predictions": [...]}`.

Reading checks every line and names the first bad one (`file:line: what is wrong`), so
outputs produced anywhere can be re-scored with the same extraction and aggregation.
"""

from __future__ import annotations

import json
from pathlib import Path

from flanctl.errors import FlanctlError
from flanctl.evals.file_text import read_utf8


def read_predictions(path: str | Path) -> dict[str, list[str]]:
    """id -> list of generated texts (one for greedy decoding, several for self-consistency)."""
    path = Path(path)
    if not path.is_file():
        raise FlanctlError(f"{path}: predictions file not found")
    out: dict[str, list[str]] = {}
    for n, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FlanctlError(f"{where}: not JSON ({exc.msg}); each line must be {{\"id\": ..., \"prediction\": \"...\"}}") from exc
        if not isinstance(row, dict) or "id" not in row:
            raise FlanctlError(f"{where}: each line must be an object with an \"id\"")
        ex_id = str(row["id"])
        if "predictions" in row:
            texts = row["predictions"]
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise FlanctlError(f"{where}: \"predictions\" must be a non-empty list of strings")
        elif "prediction" in row:
            if not isinstance(row["prediction"], str):
                raise FlanctlError(f"{where}: \"prediction\" must be a string")
            texts = [row["prediction"]]
        else:
            raise FlanctlError(f"{where}: needs \"prediction\" (a string) or \"predictions\" (a list of strings)")
        if ex_id in out:
            raise FlanctlError(f"{where}: duplicate id {ex_id!r}")
        out[ex_id] = texts
    return out


def write_predictions(path: str | Path, outputs: dict[str, list[str]]) -> Path:
    """Write id -> texts as JSONL (`prediction` for one text, `predictions` for several)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for ex_id, texts in outputs.items():
            row = {"id": ex_id, "prediction": texts[0]} if len(texts) == 1 else {"id": ex_id, "predictions": texts}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
