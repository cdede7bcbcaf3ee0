"""The held-out leak: a builtin collection that trains on a task the `builtin` eval suite holds out.

`validate` and `plan` refuse it with one line at the offending task entry, in the words the data
room uses when it meets such a spec; training on a held-out generator on purpose (a user task)
and training on train tasks only still pass.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flanctl.cli import app
from flanctl.errors import FlanctlError

SCRIPT = Path(sys.executable).parent / "flanctl"

HEAD = "model: {family: palm, size: tiny}\ntrain: {steps: 5, batch_size: 4}\n"
LEAK = HEAD + """\
mixture:
  collections:
    - name: builtin
      proportion: 1
      tasks: [parity, anagram_check, word_sorting]
eval:
  suites: [builtin]
"""
LINE = ("error: leak.yaml:7:23: mixture.collections[builtin].tasks: anagram_check is held out for the builtin eval "
        "suite (never trained on); remove it from tasks, or train on it on purpose as a user_tasks entry with "
        "source {kind: builtin, path: anagram_check}")


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def run_flanctl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed at {SCRIPT} (pip install -e .)")
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_refuse_the_leak_with_one_line(here, command):
    (here / "leak.yaml").write_text(LEAK)
    res = run_flanctl(command, "leak.yaml", cwd=here)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [LINE]
    assert res.stdout == ""
    assert not (here / ".flanctl" / "plan.json").exists()


def test_the_data_room_refuses_it_in_the_same_words(here):
    import yaml

    from flanctl.data.mixture import realize
    from flanctl.spec import Spec

    unchecked = Spec.model_validate({"name": "leak", **yaml.safe_load(LEAK)})  # past validate's checks
    with pytest.raises(FlanctlError) as exc:
        realize(unchecked, here)
    assert LINE.endswith(": " + str(exc.value))


def test_several_held_out_tasks_one_line_at_the_first(here):
    (here / "leak.yaml").write_text(HEAD + "mixture:\n  collections:\n    - name: builtin\n      proportion: 1\n"
                                    "      tasks:\n        - parity\n        - modular_arithmetic\n        - anagram_check\n"
                                    "eval: {suites: [mmlu]}\n")  # apply refuses it whatever the eval lists
    res = _run("validate", "leak.yaml")
    assert res.exit_code == 2
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: leak.yaml:9:11: mixture.collections[builtin].tasks: anagram_check, "
                           "modular_arithmetic are held out for the builtin eval suite")


def test_train_tasks_only_still_pass(here):
    (here / "ok.yaml").write_text(LEAK.replace("anagram_check", "spelling"))
    res = _run("validate", "ok.yaml")
    assert res.exit_code == 0 and res.stdout == "ok: ok.yaml\n", res.output
    res = run_flanctl("plan", "ok.yaml", cwd=here)
    assert res.returncode == 0, res.stderr
    assert "held out" not in res.stdout + res.stderr


def test_a_held_out_generator_as_a_user_task_is_on_purpose(here):
    (here / "ok.yaml").write_text(HEAD + "mixture:\n  collections:\n    - name: mine\n      proportion: 1\n"
                                  "      user_tasks: [{name: anagrams, source: {kind: builtin, path: anagram_check}}]\n")
    res = _run("validate", "ok.yaml")
    assert res.exit_code == 0, res.output


def test_an_unknown_task_of_a_builtin_collection_is_refused_too(here):
    (here / "typo.yaml").write_text(LEAK.replace("anagram_check", "parityy"))
    res = _run("validate", "typo.yaml")
    assert res.exit_code == 2
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: typo.yaml:7:23: mixture.collections[builtin].tasks: unknown built-in task(s) parityy; known: ")
