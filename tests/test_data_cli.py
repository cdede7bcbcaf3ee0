"""`flanctl data stats` and `flanctl data preview` on a real spec file."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from flanctl.cli import app
from flanctl.data.stats import realize_mixture
from flanctl.spec.models import Spec

SPEC = {
    "apiVersion": "flanctl/v1",
    "model": {"family": "palm", "size": "tiny", "tokenizer": {"kind": "byte"}},
    "mixture": {
        "collections": [{"name": "builtin", "proportion": 1.0, "cap": 40, "tasks": ["parity", "spelling", "comparisons"]}],
        "inputs_length": 128, "targets_length": 32, "few_shot": {"min_shots": 1, "max_shots": 2},
    },
    "train": {"batch_size": 4, "steps": 20},
}


def _spec_file(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(SPEC))
    return p


def test_stats_json_is_deterministic_and_complete(tmp_path):
    p = _spec_file(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["data", "stats", str(p), "--json"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["data", "stats", str(p), "--json"])  # second run reads the cache
    assert first.output == second.output
    stats = json.loads(first.output)
    assert 0 < stats["packing_efficiency"] <= 1
    assert sorted(t["task"] for t in stats["tasks"]) == ["comparisons", "parity", "spelling"]
    for t in stats["tasks"]:
        assert t["count"] == 40 and abs(t["rate"] - 1 / 3) < 1e-5 and t["tokens"] > 0 and t["epochs"] > 0
    assert (tmp_path / ".flanctl" / "cache" / "tokenized").is_dir()  # cache next to the spec by default


def test_stats_table_and_preview_render(tmp_path):
    p = _spec_file(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["data", "stats", str(p)])
    assert res.exit_code == 0 and "efficiency" in res.output and "parity" in res.output
    res = runner.invoke(app, ["data", "preview", str(p), "-n", "3", "--task", "spelling"])
    assert res.exit_code == 0, res.output
    assert res.output.count("spelling[") == 3 and "target" in res.output and "tokens" in res.output


def test_preview_unknown_task_is_one_line_error(tmp_path):
    p = _spec_file(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "data", "preview", str(p), "--task", "nope"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --task nope: not in this mixture")


def test_realize_mixture_for_the_plan(tmp_path):
    spec = Spec.model_validate(SPEC)
    real = realize_mixture(spec, tmp_path)
    assert real["collections"]["builtin"] == {"proportion": 1.0, "tasks": 3, "examples": 120}
    assert {t["name"] for t in real["tasks"]} == {"parity", "spelling", "comparisons"}
    hub = Spec.model_validate({**SPEC, "mixture": {"collections": [{"name": "muffin", "proportion": 1.0}]}})
    assert realize_mixture(hub, tmp_path) is None  # would need the network: the plan leaves it out
