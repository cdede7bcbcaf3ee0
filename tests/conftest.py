import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def apply_spec():
    """`flanctl apply SPEC` in a real process in `cwd`; returns the run directory and its
    training losses (metrics.jsonl), after asserting that apply succeeded."""

    def run(cwd: Path, spec: str, run_name: str, timeout: int = 900) -> tuple[Path, list[float]]:
        proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "apply", spec], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        run_dir = Path(cwd) / "runs" / run_name
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return run_dir, [r["loss"] for r in rows if "loss" in r]

    return run
