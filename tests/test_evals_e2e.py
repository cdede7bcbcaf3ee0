"""The evals against real Keras models (palm family, byte tokenizer), not fakes.

- default: an untrained tiny PaLM through `KerasPredictor` on `builtin` -- the Predictor seam,
  written predictions re-scored identically, greedy decoding reproducible;
- slow: a tiny model trained for a few steps by the train room, exported to `runs/<name>/export/`,
  then `flanctl eval --run` on `builtin` through the CLI.
"""

from __future__ import annotations

import json
import sys

import pytest

from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS
from flanctl.evals.predictor import Predictor
from flanctl.evals.runner import run_suite, score_predictions

ARCH = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "num_kv_heads": 1, "head_dim": 16, "ffn_dim": 64,
        "vocab_size": 259, "max_sequence_length": 256}


def test_untrained_palm_predictor_runs_builtin(tmp_path):
    from flanctl.data.tokenizers import ByteTokenizer
    from flanctl.models import KerasPredictor, build_model

    model = build_model(ARCH, "palm")
    predictor = KerasPredictor(model, ByteTokenizer(), "palm", batch_size=8)
    assert isinstance(predictor, Predictor)
    preds = tmp_path / "preds.jsonl"
    tasks = ["anagram_check", "modular_arithmetic"]
    result = run_suite("builtin", predictor, None, limit=2, max_new_tokens=4, batch_size=4, builtin_tasks=tasks, write_predictions_to=preds)
    assert result["n"] == 4 and 0.0 <= result["score"] <= 100.0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == result["n"] and all(isinstance(r["prediction"], str) for r in rows)
    rescored = score_predictions("builtin", preds, None, limit=2, builtin_tasks=tasks)
    assert rescored["tasks"] == result["tasks"] and rescored["prompts_hash"] == result["prompts_hash"]
    again = tmp_path / "again.jsonl"
    run_suite("builtin", predictor, None, limit=2, max_new_tokens=4, batch_size=4, builtin_tasks=tasks, write_predictions_to=again)
    assert again.read_text() == preds.read_text()  # greedy decoding is deterministic


@pytest.mark.slow
def test_trained_tiny_model_end_to_end_through_the_cli(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from flanctl.cli import main
    from flanctl.plan import make_plan
    from flanctl.runs import RunDir, record_last_run
    from flanctl.spec.loader import load_spec
    from flanctl.train import run_training

    quickstart = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
    # a tiny random model instead of the shipped base (the quickstart's model.checkpoint)
    overrides = ["model.checkpoint=null", "train.steps=2", "train.checkpoint_every=2", "train.log_every=1", "train.batch_size=4",
                 "mixture.inputs_length=96", "mixture.targets_length=32", "mixture.collections.0.cap=50",
                 *(f"model.architecture.{k}={v}" for k, v in ARCH.items() if k != "max_sequence_length"),
                 "model.architecture.max_sequence_length=128", "model.tokenizer.kind=byte", "model.tokenizer.path=null"]
    monkeypatch.chdir(tmp_path)
    plan = make_plan(load_spec(quickstart, overrides))
    run = RunDir(plan.run.dir)
    run.root.mkdir(parents=True, exist_ok=True)
    run.plan_path.write_text(json.dumps(plan.document()))
    final = run_training(plan, run, None)
    assert Path(final["export"]).is_dir()
    record_last_run(tmp_path, run.root)

    preds = tmp_path / "p.jsonl"
    monkeypatch.setattr(sys, "argv", ["flanctl", "eval", "--suite", "builtin", "--limit", "3", "--json", "--write-predictions", str(preds)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    assert (exc.value.code or 0) == 0, out.err
    result = json.loads(out.out)
    assert result["suite"] == "builtin" and result["n"] == 3 * len(BUILTIN_HELD_OUT_TASKS)
    assert set(result["tasks"]) == set(BUILTIN_HELD_OUT_TASKS) and 0.0 <= result["score"] <= 100.0
    saved = json.loads((run.root / "evals" / "builtin.json").read_text())
    assert saved["score"] == result["score"] and saved["prompts_hash"] == result["prompts_hash"]
    assert score_predictions("builtin", preds, None, limit=3)["score"] == result["score"]
