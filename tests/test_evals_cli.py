"""`flanctl eval`: exit codes, one-line errors, --json output, tables."""

import json
import sys
from pathlib import Path

import pytest

from flanctl.cli import main
from flanctl.plan import make_plan
from flanctl.spec import load_spec

FIX = Path(__file__).parent / "fixtures" / "evals"


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["flanctl", "eval", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def test_scores_a_predictions_file_as_json(monkeypatch, capsys, tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "abstract_algebra-0", "prediction": " B"}) + "\n")  # the validation split's one row
    code, out, err = run_cli(monkeypatch, capsys, "--suite", "mmlu", "--predictions", str(preds), "--data-dir", str(FIX), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["suite"] == "mmlu" and result["tasks"]["abstract_algebra"] == 100.0 and result["missing"] == 1
    assert result["settings"]["split"] == "val" and result["paper_source"] == "Table 5 (validation split)"
    assert {"score", "tasks", "n", "micro", "chance", "paper", "prompts_hash", "settings"} <= set(result)


def test_table_output_shows_paper_numbers(monkeypatch, capsys, tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "abstract_algebra-0", "prediction": " A"}) + "\n")
    code, out, _ = run_cli(monkeypatch, capsys, "--suite", "mmlu", "--predictions", str(preds), "--data-dir", str(FIX))
    assert code == 0
    assert "Flan-PaLM 540B" in out and "73.5" in out and "abstract_algebra" in out and "scored wrong" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--suite", "nope", "--predictions", "x.jsonl"], "unknown suite 'nope'"),
        (["--predictions", "x.jsonl"], "no suite given"),
        (["--suite", "mmlu", "--suite", "bbh", "--predictions", "x.jsonl"], "one suite at a time"),
        (["--suite", "mmlu", "--predictions", "missing.jsonl", "--data-dir", str(FIX)], "predictions file not found"),
        (["--suite", "mmlu", "--predictions", "x.jsonl", "--run", "r"], "pass only one of --run, --predictions"),
        (["--suite", "mmlu", "--limit", "0", "--predictions", "x.jsonl"], "--limit must be positive"),
        (["--suite", "builtin", "--run", "does-not-exist"], "run 'does-not-exist' not found"),
        (["--suite", "builtin"], "no last applied run"),
        (["--suite", "bbh", "--predictions", "x.jsonl", "--data-dir", str(FIX)], "no bbh/ folder"),
    ],
)
def test_errors_exit_1_with_one_line(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 1
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_bad_predictions_line_and_offline_hub(monkeypatch, capsys, tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "abstract_algebra-0", "prediction": "A"}\n[1, 2]\n')
    code, _, err = run_cli(monkeypatch, capsys, "--suite", "mmlu", "--predictions", str(preds), "--data-dir", str(FIX))
    assert code == 1 and "p.jsonl:2:" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    code, _, err = run_cli(monkeypatch, capsys, "--suite", "tydiqa", "--predictions", str(preds))
    assert code == 1 and "pass --data-dir" in err and err.count("\n") == 1


def test_run_without_export_is_an_error(monkeypatch, capsys, tmp_path):
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "--suite", "builtin", "--run", "r1")
    assert code == 1 and "no export/ folder" in err


def test_eval_of_last_run_writes_evals_json(monkeypatch, capsys, tmp_path):
    """Default model = the last applied run; its spec's eval.data_dir is used; results land in evals/."""
    import shutil

    from flanctl.evals import model_source
    from reference_predictors import FixedPredictor
    from flanctl.runs.last_run import record_last_run

    shutil.copytree(FIX / "mmlu", tmp_path / "data" / "mmlu")
    run = tmp_path / "runs" / "r1"
    (run / "export").mkdir(parents=True)
    (tmp_path / "spec.yaml").write_text("apiVersion: flanctl/v1\nmodel: {family: palm, size: tiny}\neval: {data_dir: data}\n")
    make_plan(load_spec(tmp_path / "spec.yaml"), runs_root=tmp_path / "runs").save(run / "plan.json")
    record_last_run(tmp_path, run)
    seen = {}

    def fake_load(plan, run_dir, checkpoint, preset, batch_size=16):
        seen["run_dir"] = run_dir
        return FixedPredictor(" A"), str(run_dir / "export")

    monkeypatch.setattr(model_source, "load_predictor", fake_load)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "--suite", "mmlu", "--suite", "mmlu-cot", "--limit", "2")
    assert code == 0, err
    assert seen["run_dir"] == run.resolve()
    saved = json.loads((run / "evals" / "mmlu.json").read_text())
    # The validation split (one row per fixture subject, answers B and C): " A" is wrong on both.
    assert saved["n"] == 2 and saved["tasks"]["abstract_algebra"] == 0.0 and saved["settings"]["limit"] == 2
    assert (run / "evals" / "mmlu-cot.json").exists() and "normalized average" in out


def test_evaluate_run_uses_the_specs_eval_settings(tmp_path):
    """`apply`'s eval stage: suites, limit, batch size and decode cap come from the plan's spec."""
    from flanctl.evals.command import evaluate_plan
    from reference_predictors import FixedPredictor

    evals = tmp_path / "runs" / "q" / "evals"
    spec = tmp_path / "q.yaml"
    spec.write_text("apiVersion: flanctl/v1\nmodel: {family: palm, size: tiny}\n"
                    "eval: {suites: [builtin], limit: 3, batch_size: 2, max_decode_length: 10, builtin_tasks: [anagram_check]}\n")
    plan = make_plan(load_spec(spec), runs_root=tmp_path / "runs")
    predictor = FixedPredictor("Yes")
    result = evaluate_plan(plan, evals, predictor)
    assert result["n"] == 3 and list(result["tasks"]) == ["anagram_check"]
    assert [c["n"] for c in predictor.calls] == [2, 1] and {c["max_new_tokens"] for c in predictor.calls} == {10}
    assert json.loads((evals / "builtin.json").read_text())["score"] == result["score"]
    assert (evals / "builtin.predictions.jsonl").is_file()
    spec.write_text("apiVersion: flanctl/v1\nmodel: {family: palm, size: tiny}\n")
    assert evaluate_plan(make_plan(load_spec(spec), runs_root=tmp_path / "runs"), evals, predictor) is None
