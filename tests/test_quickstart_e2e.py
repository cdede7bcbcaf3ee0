"""The quickstart end to end through the real CLI: plan -> apply -> eval -> report.

Runs `examples/quickstart.yaml` at reduced steps and eval size in a temporary working
directory (so the run, its cache and `.flanctl/last_run` land there), with the same commands
`make demo` uses, and checks every artefact of the chain.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS, BUILTIN_TRAIN_TASKS

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
STEPS, LIMIT = 12, 4
OVERRIDES = [f"train.steps={STEPS}", "train.batch_size=8", "train.checkpoint_every=6", "train.log_every=3", f"eval.limit={LIMIT}",
             "eval.max_decode_length=16"]


def flanctl(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "flanctl.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def with_sets(*args: str) -> list[str]:
    return [*args, *(a for o in OVERRIDES for a in ("--set", o))]


def test_quickstart_spec_finetunes_the_shipped_base_and_holds_out_eval_tasks():
    """The shipped spec: the pretrained base (architecture and tokenizer from its folder),
    built-in tasks only, none of the held-out ones, held-out eval."""
    from flanctl.plan import make_plan
    from flanctl.spec.loader import load_spec

    loaded = load_spec(QUICKSTART)
    spec = loaded.spec
    assert spec.model.family == "palm" and spec.model.checkpoint == "base"
    plan = make_plan(loaded)
    base = REPO / "examples" / "base"
    assert plan.model.checkpoint == str(base)
    assert plan.model.architecture["num_layers"] == 4 and plan.model.architecture["hidden_dim"] == 128
    assert plan.model.tokenizer.kind == "sentencepiece"
    assert plan.model.tokenizer.path == str(base / "assets" / "tokenizer" / "spm.model")
    assert [c.name for c in spec.mixture.collections] == ["builtin", "world"]
    trained = set()
    for coll in spec.mixture.collections:
        assert coll.templates.cot > 0 and coll.templates.few_shot_opts > 0 and coll.templates.zero_shot_noopts > 0
        trained |= set(coll.tasks or BUILTIN_TRAIN_TASKS) - set(coll.exclude_tasks)
    assert trained == set(BUILTIN_TRAIN_TASKS) and not trained & set(BUILTIN_HELD_OUT_TASKS)
    assert spec.train.optimizer == "adafactor" and spec.train.schedule == "constant"
    assert spec.eval.suites == ["builtin"]


def test_quickstart_chain_plan_apply_eval_report(tmp_path):
    # plan: the machine-readable plan of the quickstart.
    proc = flanctl(tmp_path, *with_sets("plan", str(QUICKSTART), "--json"))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["model"]["family"] == "palm" and plan["model"]["params"] > 100_000
    assert plan["memory"]["fits"] is True

    # apply: data -> train (-> the spec's evals), into ./runs/quickstart/.
    proc = flanctl(tmp_path, *with_sets("apply", str(QUICKSTART)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "runs" / "quickstart"
    # apply scored the step-0 model and the finetuned one, and printed the pair.
    before = json.loads((run / "evals" / "builtin.before.json").read_text())
    after = json.loads((run / "evals" / "builtin.json").read_text())
    assert before["suite"] == after["suite"] == "builtin" and before["n"] == after["n"] == LIMIT * len(BUILTIN_HELD_OUT_TASKS)
    assert (f"held-out builtin: {before['score']:.1f} before finetuning -> {after['score']:.1f} after (chance 25.0; "
            f"normalized {before['normalized']:.1f} -> {after['normalized']:.1f})") in proc.stdout
    for task in BUILTIN_HELD_OUT_TASKS:  # and the per-task table
        assert f"  {task} " in proc.stdout
    assert before["settings"]["method"] == after["settings"]["method"] == "loglikelihood"
    assert json.loads((run / "state.json").read_text())["status"] == "completed"
    # ... and kept what the model said, one row per question, which re-scores to the same number.
    for when, scored in (("before.", before), ("", after)):
        preds = run / "evals" / f"builtin.{when}predictions.jsonl"
        rows = [json.loads(line) for line in preds.read_text().splitlines()]
        assert len(rows) == scored["n"] and all(set(r) == {"id", "prediction"} for r in rows)
        rescored = flanctl(tmp_path, "eval", "--suite", "builtin", "--predictions", str(preds), "--limit", str(LIMIT), "--json")
        assert rescored.returncode == 0, rescored.stderr[-2000:]
        assert json.loads(rescored.stdout)["score"] == pytest.approx(scored["score"])
    for name in ("spec.yaml", "plan.json", "state.json", "metrics.jsonl"):
        assert (run / name).is_file(), f"{name} missing from the run directory"
    assert yaml.safe_load((run / "spec.yaml").read_text())["name"] == "quickstart"
    assert json.loads((run / "plan.json").read_text())["model"]["params"] == plan["model"]["params"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train_rows = [r for r in rows if "loss" in r]
    assert train_rows and train_rows[-1]["step"] == STEPS
    assert all(math.isfinite(r["loss"]) and r["tokens_per_s"] > 0 for r in train_rows)
    # The base has never seen an instruction: its loss on them falls within a few steps.
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]
    assert any(p.name.startswith("step_") for p in (run / "checkpoints").iterdir())

    # eval: with no run given, the last applied run; it (re)writes runs/quickstart/evals/builtin.json.
    proc = flanctl(tmp_path, "eval", "--suite", "builtin", "--limit", str(LIMIT), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)
    result = json.loads((run / "evals" / "builtin.json").read_text())
    assert result["suite"] == printed["suite"] == "builtin"
    assert result["score"] == pytest.approx(printed["score"])
    assert set(result["tasks"]) == set(BUILTIN_HELD_OUT_TASKS)
    assert result["n"] == LIMIT * len(BUILTIN_HELD_OUT_TASKS)
    assert 0.0 <= result["score"] <= 100.0
    assert result["score"] == pytest.approx(sum(result["tasks"].values()) / len(result["tasks"]))

    # report: the run's loss plot and eval table.
    proc = flanctl(tmp_path, "report", str(run), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| builtin |" in md and (tmp_path / "report" / "loss.png").stat().st_size > 5000


def test_apply_of_a_broken_quickstart_override_is_one_line(tmp_path):
    proc = flanctl(tmp_path, "apply", str(QUICKSTART), "--set", "train.stepz=5")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "stepz" in lines[0] and "steps" in lines[0]
