"""Bad files and bad luck (issue 15): each case is a bad file or event, the exact one-line
message, the exit code, and that nothing already written changed (checksums of the folder
before and after). Fast cases only: no model is built here (see test_robustness_interrupts.py
for Ctrl-C and test_robustness_checkpoints.py for checkpoint integrity)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from flanctl.apply import Stages, apply_plan
from flanctl.errors import FlanctlError
from flanctl.plan import make_plan
from flanctl.runs import RunDir, write_text_atomic
from flanctl.spec import load_spec

TINY = """\
apiVersion: flanctl/v1
name: tiny
model: {family: palm, size: tiny}
mixture:
  collections: [{name: builtin, proportion: 1.0, cap: 50}]
  inputs_length: 64
  targets_length: 32
train: {batch_size: 4, steps: 20, precision: float32}
"""


def tree(root: Path) -> dict[str, str]:
    """Checksums of every file under `root` (kind for anything else)."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        mode = path.lstat().st_mode
        rel = str(path.relative_to(root))
        if stat.S_ISREG(mode):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif not stat.S_ISDIR(mode):
            out[rel] = f"mode {stat.S_IFMT(mode):o}"
    return out


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flanctl.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KERAS_BACKEND": "jax"})


def plan_of(tmp_path: Path, overrides=()):
    spec = tmp_path / "tiny.yaml"
    if not spec.exists():
        spec.write_text(TINY)
    return make_plan(load_spec(spec, list(overrides)), runs_root=tmp_path / "runs", overrides=list(overrides))


# ----------------------------------------------------------------------------- special files


def test_plan_out_never_replaces_a_special_file(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    before = tree(tmp_path)
    for name, kind in (("fifo", "a FIFO"), ("folder", "a directory")):
        res = cli(tmp_path, "plan", "tiny.yaml", "--out", name)
        assert res.returncode == 1
        assert res.stderr == f"error: {name}: is {kind}, not a regular file; flanctl writes only files here, choose another path\n"
    assert tree(tmp_path) == before


def test_plan_out_to_a_character_device_writes_through_it(tmp_path):
    """`--out /dev/null` discards the plan; the device node stays a device (tested on a copy)."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    res = cli(tmp_path, "plan", "tiny.yaml", "--out", "null")
    assert res.returncode == 0, res.stderr
    assert stat.S_ISCHR(null.lstat().st_mode)


def test_atomic_write_follows_a_symlink_and_keeps_it(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_text_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


# ----------------------------------------------------------------------------- provenance


def _run_with_checkpoint(tmp_path):
    plan = plan_of(tmp_path)
    apply_plan(plan, stages=Stages(), cwd=tmp_path)
    run = RunDir(plan.run.dir)
    (run.checkpoints_dir / "step_10").mkdir(parents=True)
    (run.checkpoints_dir / "step_10" / "meta.json").write_text('{"step": 10}')
    run.update_state(step=10, status="training")
    return run


def test_truncated_run_plan_never_continues_under_a_changed_spec(tmp_path):
    run = _run_with_checkpoint(tmp_path)
    run.plan_path.write_text(run.plan_path.read_text()[:100])  # plan.json cut short
    before = tree(run.root)
    changed = plan_of(tmp_path, ["mixture.seed=1"])
    # spec.yaml still says what was trained: the change is seen and refused.
    assert changed.run.diff["action"] == "replace"
    with pytest.raises(FlanctlError) as info:
        apply_plan(changed, stages=Stages(), cwd=tmp_path)
    assert str(info.value) == ("checkpoint at step 10 is invalidated by mixture.seed; apply --replace starts the run afresh "
                               "(or give the spec another name)")
    assert tree(run.root) == before


def test_run_with_no_readable_record_needs_replace(tmp_path):
    run = _run_with_checkpoint(tmp_path)
    run.plan_path.write_text("{")
    run.spec_path.write_bytes(b"\xff\xfe")
    before = tree(run.root)
    with pytest.raises(FlanctlError) as info:
        apply_plan(plan_of(tmp_path), stages=Stages(), cwd=tmp_path)  # even the same spec
    assert str(info.value) == (
        f"checkpoint at step 10 has no readable record of its spec ({run.plan_path} and {run.spec_path} are missing or "
        "unreadable); apply --replace starts the run afresh (or give the spec another name)"
    )
    assert tree(run.root) == before
    state = apply_plan(plan_of(tmp_path), stages=Stages(), cwd=tmp_path, replace=True)
    assert state["step"] == 0 and (run.root / "checkpoints.replaced-10-0" / "step_10").is_dir()


def test_truncated_run_plan_with_the_same_spec_resumes(tmp_path):
    run = _run_with_checkpoint(tmp_path)
    run.plan_path.write_text("")
    assert plan_of(tmp_path).run.diff["action"] == "resume"


def test_provenance_refusal_through_the_cli(tmp_path):
    run = _run_with_checkpoint(tmp_path)
    run.plan_path.write_text(run.plan_path.read_text()[:100])
    before = tree(tmp_path / "runs")
    del before["tiny/.lock"]  # the lock file records the pid of its last holder
    res = cli(tmp_path, "apply", "tiny.yaml", "--set", "mixture.seed=1")
    assert res.returncode == 1
    assert res.stderr.splitlines() == ["error: checkpoint at step 10 is invalidated by mixture.seed; apply --replace starts "
                                       "the run afresh (or give the spec another name)"]
    after = tree(tmp_path / "runs")
    del after["tiny/.lock"]
    assert after == before


# ----------------------------------------------------------------------------- state.json


@pytest.mark.parametrize("content, message", [
    ('{"step": "abc"}', "field 'step' must be a non-negative integer, got \"abc\""),
    ('{"step": -3}', "field 'step' must be a non-negative integer, got -3"),
    ('{"step": true}', "field 'step' must be a non-negative integer, got true"),
    ('{"status": 7}', "field 'status' must be a string, got 7"),
    ('{"history": {}}', "field 'history' must be a list of objects, got {}"),
    ('{"checkpoint": 5}', "field 'checkpoint' must be a path string, got 5"),
])
def test_state_file_of_the_wrong_type(tmp_path, content, message):
    plan = plan_of(tmp_path)
    run = RunDir(plan.run.dir)
    run.root.mkdir(parents=True)
    run.state_path.write_text(content)
    before = tree(run.root)
    res = cli(tmp_path, "plan", "tiny.yaml", "--out", "p.json")
    assert res.returncode == 1
    assert res.stderr == f"error: {run.state_path}: {message}; fix it, or delete state.json to let apply rebuild it from the checkpoints\n"
    assert tree(run.root) == before


def test_state_file_not_utf8(tmp_path):
    run = RunDir(tmp_path / "r")
    run.root.mkdir()
    run.state_path.write_bytes(b'{"step": 1, "x": "\xff"}')
    with pytest.raises(FlanctlError) as info:
        run.read_state()
    assert str(info.value) == f"{run.state_path}: state file is not UTF-8 text (byte 18); delete it to let apply rebuild it from the checkpoints"


# ----------------------------------------------------------------------------- --set bounds


@pytest.mark.parametrize("setting, message", [
    ("mixture.seed=-1", "mixture.seed: input should be greater than or equal to 0, got -1"),
    ("train.seed=-1", "train.seed: input should be greater than or equal to 0, got -1"),
    ("mixture.seed=4294967296", "mixture.seed: input should be less than or equal to 4294967295, got 4294967296"),
    ("mixture.inputs_length=99999999999999", "mixture.inputs_length: input should be less than or equal to 1048576, got 99999999999999"),
    ("mixture.targets_length=2000000", "mixture.targets_length: input should be less than or equal to 1048576, got 2000000"),
])
def test_set_values_the_code_cannot_run_are_refused_at_plan_time(tmp_path, setting, message):
    (tmp_path / "tiny.yaml").write_text(TINY)
    before = tree(tmp_path)
    res = cli(tmp_path, "plan", "tiny.yaml", "--set", setting)
    assert (res.returncode, res.stderr) == (2, f"error: --set {setting}: {message}\n")
    assert tree(tmp_path) == before  # no plan saved


# ----------------------------------------------------------------------------- templates


BOMBS = {
    "nested_range": ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "more than 100000 loop iterations"),
    "lipsum": ("{{ lipsum(10**7) }}", "lipsum of more than 100 paragraphs of 1000 words"),
    "string_times": ("{{ 'a' * 10**10 }}", "a value of more than 1000000 characters or items"),
    "list_doubling": ("{% set ns = namespace(x=[1]) %}{% for i in range(80) %}{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x|length }}",
                      "a value of more than 1000000 characters or items"),
    "concat_doubling": ("{% set ns = namespace(x='ab') %}{% for i in range(80) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}",
                        "a value of more than 1000000 characters or items"),
    "list_extend": ("{% set x = [1] %}{% for i in range(70) %}{% set _ = x.extend(x) %}{% endfor %}{{ x|length }}",
                    "a value of more than 1000000 characters or items"),
    "recursive_macro": ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion too deep (a macro that calls itself without end?)"),
    "tree_recursion": ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
                       "rendering took more than 2 s (render budget per example)"),
    "center_filter": ("{{ inputs|center(10**9) }}", "a size argument of 1000000000 (more than 1000000)"),
    "ljust_method": ("{{ inputs.ljust(10**9) }}", "a size argument of 1000000000 (more than 1000000)"),
    "percent_format": ("{{ '%0999999999d'|format(1) }}", "a format width of more than 1000000 characters"),
    "str_format": ("{{ '{:>999999999}'.format(1) }}", "a format width of more than 1000000 characters"),
    "huge_power": ("{{ 2 ** 100000000 }}", "a number of more than 100000 bits"),
    "replace_growth": ("{% set s = 'a' * 100000 %}{{ s|replace('a', s) }}", "a value of more than 1000000 characters or items"),
    "big_output": ("{% for i in range(99999) %}{{ 'x' * 999 }}{% endfor %}", "output of more than 1000000 characters"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_template_bombs_stop_within_the_render_budget(tmp_path, name):
    from flanctl.data.examples import Example
    from flanctl.data.templates import load_templates, render_example
    import random

    source, limit = BOMBS[name]
    path = tmp_path / "bomb.yaml"
    path.write_text(json.dumps({"templates": {"zero_shot_noopts": [{"inputs": source, "targets": "{{ targets }}"}]}}))
    ex = Example(inputs="q", targets="a", task="mytask")
    with pytest.raises(FlanctlError) as info:
        render_example(ex, "zero_shot_noopts", load_templates(path), random.Random(0))
    suffix = "" if limit.endswith(("(render budget per example)", "without end?)")) else " (render budget per example)"
    assert str(info.value) == f"templates {path}: task mytask: template stopped: {limit}{suffix}; simplify the template"


def test_templates_within_the_budget_render_as_before(tmp_path):
    from flanctl.data.examples import Example
    from flanctl.data.templates import compile_template, load_templates, render_example
    import random

    path = tmp_path / "fine.yaml"
    source = ("{{ inputs|upper }} {% for o in options %}[{{ loop.index }}] {{ o|center(5) }}{% endfor %} {{ 'ab' * 3 }}"
              "{{ inputs ~ '!' }} {{ '%5s'|format('x') }} {{ '{:>4}'.format(7) }} {{ lipsum(1, html=False)|length > 0 }}")
    path.write_text(json.dumps({"templates": {"zero_shot_noopts": [{"inputs": source, "targets": "{{ targets }}"}]}}))
    out = render_example(Example(inputs="q", targets="a", options=["x", "y"], task="t"), "zero_shot_noopts", load_templates(path), random.Random(0))
    assert out.inputs == "Q [1]   x  [2]   y   abababq!     x    7 True"
    with pytest.raises(FlanctlError, match="reaches the internal attribute '__flanctl_budgeted_iter'"):
        compile_template("{{ __flanctl_budgeted_iter }}", "x")


def test_template_bomb_through_the_cli(tmp_path):
    """`flanctl data preview` on a user task whose templates file loops 10^10 times: one line, exit 1, quickly."""
    (tmp_path / "own.jsonl").write_text("".join(json.dumps({"inputs": f"q{i}", "targets": f"a{i}"}) + "\n" for i in range(5)))
    (tmp_path / "bomb.yaml").write_text(json.dumps({"templates": {"zero_shot_noopts": [
        {"inputs": BOMBS["nested_range"][0], "targets": "{{ targets }}"}]}}))
    (tmp_path / "s.yaml").write_text(
        "apiVersion: flanctl/v1\nmodel: {family: palm, size: tiny}\n"
        "mixture:\n  inputs_length: 64\n  targets_length: 32\n  collections:\n"
        "    - name: mine\n      proportion: 1\n"
        "      templates: {zero_shot_noopts: 1, zero_shot_opts: 0, few_shot_opts: 0, few_shot_noopts: 0}\n"
        "      user_tasks: [{name: own, source: {kind: local, path: own.jsonl}, templates: bomb.yaml}]\n"
    )
    before = tree(tmp_path)
    res = cli(tmp_path, "data", "preview", "s.yaml", "-n", "1")
    assert res.returncode == 1
    # (the data room's `datasets` loader prints progress lines of its own before it)
    assert res.stderr.splitlines()[-1] == (f"error: templates {tmp_path / 'bomb.yaml'}: task own: template stopped: more than 100000 "
                                           "loop iterations (render budget per example); simplify the template")
    assert {k: v for k, v in tree(tmp_path).items() if not k.startswith(".flanctl")} == before


# ----------------------------------------------------------------------------- eval files


def _mgsm_dir(tmp_path: Path, langs=("en",)) -> Path:
    root = tmp_path / "data" / "mgsm"
    root.mkdir(parents=True)
    shots = {str(k): {"q": f"Question: {k}+1?", "a": f"Step-by-Step Answer: The answer is {k + 1}."} for k in range(1, 9)}
    (root / "exemplars.json").write_text(json.dumps({"exemplars": {lang: shots for lang in ("en", "de")}}))
    for lang in langs:
        (root / f"mgsm_{lang}.tsv").write_text("1+1?\t2\n2+2?\t4\n")
    return root


def test_mgsm_with_only_english_has_no_headline(tmp_path):
    root = _mgsm_dir(tmp_path)
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "en-0", "prediction": "The answer is 2."}\n{"id": "en-1", "prediction": "The answer is 4."}\n')
    res = cli(tmp_path, "eval", "--suite", "mgsm", "--predictions", str(preds), "--data-dir", str(tmp_path / "data"))
    assert res.returncode == 1
    assert res.stderr == (f"error: mgsm: no data for the headline in {root} (found mgsm_en.tsv): it averages the non-English "
                          "languages (bn de es fr ja ru sw te th zh), so there is nothing to average; add their mgsm_<lang>.tsv files\n")


def test_mgsm_with_one_other_language_scores(tmp_path):
    from flanctl.evals.suites.mgsm import MGSM

    _mgsm_dir(tmp_path, langs=("en", "de"))
    examples = MGSM().load(tmp_path / "data")
    assert sorted({e.task for e in examples}) == ["de", "en"]


@pytest.mark.parametrize("name, content, message", [
    ("predictions", b'{"id": "en-0", "prediction": "ok"}\n{"id": "en-1", "prediction": "\xff"}\n',
     "{p}:2:31: not UTF-8 text (byte 0xff); save the file as UTF-8"),
    ("mgsm_tsv", b"1+1?\t2\n2+2?\t\xfe4\n", "{p}:2:6: not UTF-8 text (byte 0xfe); save the file as UTF-8"),
    ("mgsm_exemplars", b'{"exemplars": \xff}', "{p}:1:15: not UTF-8 text (byte 0xff); save the file as UTF-8"),
    ("mgsm_exemplars_shape", b'{"exemplars": {"en": "x"}}',
     '{p}: exemplars["en"] is not numbered {"q", "a"} pairs; expected {"exemplars": {lang: {"1": {"q": "...", "a": "..."}, ...}}}'),
    ("mgsm_exemplars_json", b'{"exemplars": ', '{p}:1:15: not valid JSON (Expecting value); expected {"exemplars": {lang: {"1": {"q": "...", "a": "..."}, ...}}}'),
    ("bbh_utf8", b'{"examples": [{"input": "\xff", "target": "x"}]}', "{p}:1:26: not UTF-8 text (byte 0xff); save the file as UTF-8"),
    ("bbh_list", b'["a", "b"]', '{p}: not a BBH file (no "examples" list); expected {{"examples": [{{"input": "...", "target": "..."}}, ...]}}'),
    ("bbh_rows", b'{"examples": ["just a string"]}',
     '{p}: examples[0] is not an object with string "input" and "target"; expected {{"examples": [{{"input": "...", "target": "..."}}, ...]}}'),
    ("bbh_json", b'{"examples": [', '{p}:1:15: not valid JSON (Expecting value); expected {{"examples": [{{"input": "...", "target": "..."}}, ...]}}'),
])
def test_eval_files_name_file_line_and_fix(tmp_path, name, content, message):
    from flanctl.evals.predictions_file import read_predictions
    from flanctl.evals.suites.bbh import BBH
    from flanctl.evals.suites.mgsm import MGSM

    if name == "predictions":
        path = tmp_path / "p.jsonl"
        path.write_bytes(content)
        call = lambda: read_predictions(path)  # noqa: E731
    elif name.startswith("mgsm"):
        root = _mgsm_dir(tmp_path, langs=("en", "de"))
        path = root / ("mgsm_de.tsv" if name == "mgsm_tsv" else "exemplars.json")
        path.write_bytes(content)
        call = lambda: MGSM().load(tmp_path / "data")  # noqa: E731
    else:
        root = tmp_path / "data" / "bbh"
        (root / "bbh").mkdir(parents=True)
        (root / "cot-prompts").mkdir()
        (root / "cot-prompts" / "boolean_expressions.txt").write_text("Evaluate.\n\nQ: True\nA: Let's think. So the answer is True.\n")
        path = root / "bbh" / "boolean_expressions.json"
        path.write_bytes(content)
        call = lambda: BBH().load(tmp_path / "data")  # noqa: E731
    before = tree(tmp_path)
    with pytest.raises(FlanctlError) as info:
        call()
    assert str(info.value) == message.replace("{p}", str(path)).replace("{{", "{").replace("}}", "}") if name.startswith("bbh") else \
        str(info.value) == message.replace("{p}", str(path))
    assert tree(tmp_path) == before


# ----------------------------------------------------------------------------- metrics.jsonl


@pytest.mark.parametrize("line, message", [
    (b'{"step": 2, "loss": \xff1.0}', "{p}:2:21: not UTF-8 text (byte 0xff); fix or delete the line"),
    (b'{"step": "two", "loss": 1.0}', "{p}:2: 'step' must be an integer, got \"two\"; fix or delete the line"),
    (b'{"step": 2, "loss": null}', "{p}:2: 'loss' is null; fix or delete the line"),
    (b'{"step": 2, "loss": "low"}', "{p}:2: 'loss' must be a number, got \"low\"; fix or delete the line"),
])
def test_report_on_damaged_metrics(tmp_path, line, message):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    metrics = run / "metrics.jsonl"
    metrics.write_bytes(b'{"step": 1, "loss": 2.0}\n' + line + b'\n{"step": 3, "loss": 1.0}\n')
    before = tree(tmp_path)
    res = cli(tmp_path, "report", str(run), "--out", str(tmp_path / "rep"))
    assert res.returncode == 1
    assert res.stderr == "error: " + message.format(p=metrics) + "\n"
    assert tree(tmp_path) == before


def test_resume_truncation_skips_damaged_metrics_lines(tmp_path):
    from flanctl.train.metrics_log import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "loss": 2.0}\n\xff\xfe garbage\n{"step": "two"}\n[1]\n{"step": 2, "loss": 1.5}\n{"step": 9, "loss": 1.0}\n{"st')
    truncate_metrics(path, 5)
    assert path.read_text() == '{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n'


# ----------------------------------------------------------------------------- more of the same kinds


def test_atomic_write_refuses_a_socket(tmp_path):
    import socket

    path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        with pytest.raises(FlanctlError) as info:
            write_text_atomic(path, "x")
    finally:
        sock.close()
    assert str(info.value) == f"{path}: is a socket, not a regular file; flanctl writes only files here, choose another path"
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_plan_out_under_a_file(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "afile").write_text("keep")
    before = tree(tmp_path)
    res = cli(tmp_path, "plan", "tiny.yaml", "--out", "afile/plan.json")
    assert (res.returncode, res.stderr) == (1, "error: afile/plan.json: cannot write here (Not a directory); choose another path\n")
    assert tree(tmp_path) == before


def test_state_file_that_is_a_directory(tmp_path):
    run = RunDir(tmp_path / "r")
    run.state_path.mkdir(parents=True)
    with pytest.raises(FlanctlError) as info:
        run.read_state()
    assert str(info.value) == f"{run.state_path}: cannot read the state file (Is a directory); make it a readable file or delete it"


@pytest.mark.parametrize("name, content, message", [
    ("evals/mgsm.json", b'{"suite": "mgsm", "score": \xff}', "{p}: not UTF-8 text; re-run the step that wrote it"),
    ("spec.yaml", b"name: \xff\n", "{p}: spec.yaml is not UTF-8 text; re-run `flanctl apply` to rewrite it"),
    ("plan.json", b'{"run": "\xff"}', "{p}: not UTF-8 text; re-run `flanctl apply` to rewrite it"),
])
def test_report_on_damaged_run_files(tmp_path, name, content, message):
    run = tmp_path / "runs" / "r"
    (run / "evals").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    (run / name).write_bytes(content)
    before = tree(tmp_path)
    res = cli(tmp_path, "report", str(run), "--out", str(tmp_path / "rep"))
    assert (res.returncode, res.stderr) == (1, "error: " + message.replace("{p}", str(run / name)) + "\n")
    assert tree(tmp_path) == before
