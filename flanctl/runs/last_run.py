"""`.flanctl/last_run`: which run `apply` touched most recently (for `eval`/`report` defaults)."""

from __future__ import annotations

from pathlib import Path

from flanctl.runs.run_dir import write_text_atomic

STATE_DIR = ".flanctl"
LAST_RUN_FILE = "last_run"


def record_last_run(cwd: str | Path, run_dir: str | Path) -> Path:
    """Record `run_dir` (stored absolute) as the last applied run under `cwd/.flanctl/`."""
    path = Path(cwd) / STATE_DIR / LAST_RUN_FILE
    write_text_atomic(path, str(Path(run_dir).resolve()) + "\n")
    return path


def last_run(cwd: str | Path = ".") -> Path | None:
    """The run most recently applied from `cwd`, or None if none was (or it was deleted)."""
    path = Path(cwd) / STATE_DIR / LAST_RUN_FILE
    try:
        recorded = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not recorded:
        return None
    run = Path(recorded)
    return run if run.is_dir() else None
