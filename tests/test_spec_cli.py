"""`flanctl validate` and `flanctl schema`, through the real console script and in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from flanctl.cli import app

SCRIPT = Path(sys.executable).parent / "flanctl"
MALFORMED = Path(__file__).resolve().parent / "malformed"
TINY = "model: {family: palm, size: tiny}\ntrain: {steps: 5, batch_size: 4}\n"


def run_flanctl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed at {SCRIPT} (pip install -e .)")
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_validate_script_exit_codes_and_one_line_errors(tmp_path):
    (tmp_path / "good.yaml").write_text(TINY)
    (tmp_path / "bad.yaml").write_text(TINY + "eval:\n  suits: [mmlu]\n  limit: -1\n")
    ok = run_flanctl("validate", "good.yaml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "ok: good.yaml\n" and ok.stderr == ""

    bad = run_flanctl("validate", "good.yaml", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stdout == "ok: good.yaml\n"
    assert bad.stderr.splitlines() == [
        "error: bad.yaml:4:3: unknown key 'suits' in eval; did you mean 'suites'?",
        "error: bad.yaml:5:10: eval.limit: input should be greater than 0, got -1",
    ]
    assert "Traceback" not in bad.stderr


def test_validate_script_set_and_python_tag(tmp_path):
    (tmp_path / "good.yaml").write_text(TINY)
    res = run_flanctl("validate", "good.yaml", "--set", "train.stepz=3", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == "error: --set train.stepz=3: unknown key 'stepz' in train; did you mean 'steps'?\n"
    evil = MALFORMED / "python_tag_apply.yaml"
    res = run_flanctl("validate", str(evil), cwd=tmp_path)
    assert res.returncode == 2 and "could not determine a constructor" in res.stderr
    assert not (tmp_path / "flanctl-python-tag-ran").exists()


def test_traceback_only_with_debug(tmp_path):
    res = run_flanctl("schema", "--out", str(tmp_path / "no" / "such" / "dir" / "s.json"), cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.startswith("error: cannot write the schema to") and len(res.stderr.splitlines()) == 1
    dbg = run_flanctl("--debug", "schema", "--out", str(tmp_path / "no" / "s.json"), cwd=tmp_path)
    assert dbg.returncode != 0 and "Traceback" in dbg.stderr


def test_validate_in_process_notes_and_many_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mix.yaml").write_text(TINY + "mixture:\n  collections:\n    - {name: muffin, proportion: 2}\n")
    res = CliRunner().invoke(app, ["validate", "mix.yaml", str(MALFORMED / "zero_steps.yaml"), str(MALFORMED / "empty_file.yaml")])
    assert res.exit_code == 2
    assert "ok: mix.yaml" in res.stdout
    assert "note: mix.yaml: mixture proportions summed to 2; normalised to 1" in res.stdout
    assert "zero_steps.yaml:4:10: train.steps: input should be greater than 0, got 0" in res.output
    assert "empty_file.yaml:1:1: the spec is empty" in res.output


def test_schema_command_stdout_and_out_file(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == 0
    schema = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    out = tmp_path / "schema.json"
    res = runner.invoke(app, ["schema", "--out", str(out)])
    assert res.exit_code == 0 and json.loads(out.read_text()) == schema
    # the schema agrees with the loader on a valid and on an invalid spec
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(yaml.safe_load(TINY + "extends: base.yaml\n")))
    bad = yaml.safe_load((MALFORMED / "typo_train_key.yaml").read_text())
    assert any("stpes" in e.message for e in validator.iter_errors(bad))
