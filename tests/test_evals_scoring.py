"""Predictions files, self-consistency votes, aggregation math, hub-offline errors, results files."""

import json
from pathlib import Path

import pytest

from flanctl.errors import FlanctlError
from flanctl.evals.predictions_file import read_predictions
from reference_predictors import CyclingPredictor, FixedPredictor
from flanctl.evals.runner import combine, run_suite, run_suites, score_predictions, write_result
from flanctl.evals.suites import make_suite
from flanctl.evals.suites.base import EvalExample
from flanctl.evals.suites.bbh import BBH

FIX = Path(__file__).parent / "fixtures" / "evals"


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_predictions_file_scores_like_a_live_run(tmp_path):
    examples = make_suite("mmlu").load(FIX)  # the validation split, the paper's default
    preds = tmp_path / "out.jsonl"
    live = run_suite("mmlu", FixedPredictor(" B"), FIX, write_predictions_to=preds)
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["id"] for r in rows] == [e.id for e in examples] and rows[0]["prediction"] == " B"
    scored = score_predictions("mmlu", preds, FIX)
    assert scored["score"] == live["score"] and scored["tasks"] == live["tasks"]
    assert scored["prompts_hash"] == live["prompts_hash"]


def test_missing_ids_are_counted_and_wrong_unknown_ids_are_errors(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"id": "abstract_algebra-0", "prediction": "A"}, {"id": "abstract_algebra-1", "prediction": "B"}])
    result = score_predictions("mmlu", path, FIX, mmlu_split="test")
    assert result["missing"] == 5 and result["tasks"] == {"abstract_algebra": 50.0, "high_school_geography": 0.0}
    path = _write(tmp_path / "q.jsonl", [{"id": f"nope-{i}", "prediction": "A"} for i in range(5)])
    with pytest.raises(FlanctlError, match=r"5 ids are not in suite mmlu: nope-0, nope-1, nope-2, \.\.\."):
        score_predictions("mmlu", path, FIX)
    # Ids are rows of the split scored: abstract_algebra-1 is a test row, not a validation one.
    with pytest.raises(FlanctlError, match=r"1 ids are not in suite mmlu: abstract_algebra-1"):
        score_predictions("mmlu", tmp_path / "p.jsonl", FIX)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"p.jsonl:2: not JSON"),
        ('{"prediction": "A"}', r"p.jsonl:2: each line must be an object with an \"id\""),
        ('{"id": "x"}', r"p.jsonl:2: needs \"prediction\""),
        ('{"id": "x", "predictions": []}', r"p.jsonl:2: \"predictions\" must be a non-empty list"),
        ('{"id": "x", "prediction": 3}', r"p.jsonl:2: \"prediction\" must be a string"),
        ('{"id": "abstract_algebra-0", "prediction": "B"}', r"p.jsonl:2: duplicate id"),
    ],
)
def test_bad_predictions_file_names_the_line(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "abstract_algebra-0", "prediction": "A"}\n' + line + "\n")
    with pytest.raises(FlanctlError, match=message):
        read_predictions(path)


def test_self_consistency_majority_vote_from_file(tmp_path):
    rows = [
        {"id": "abstract_algebra-0", "predictions": ["So the answer is (A).", "the answer is (B)", "The answer is A."]},  # A wins 2:1
        {"id": "abstract_algebra-1", "predictions": ["the answer is (A)", "the answer is (C)", "the answer is (B)", "nothing", "the answer is (B)"]},  # B
        {"id": "abstract_algebra-2", "predictions": ["nothing", "nothing", "the answer is (D)"]},  # D: non-answers do not vote
        {"id": "abstract_algebra-3", "predictions": ["the answer is (A)", "the answer is (D)"]},  # tie -> first (A), gold D
    ]
    result = score_predictions("mmlu-cot", _write(tmp_path / "sc.jsonl", rows), FIX, mmlu_split="test")
    # Gold: A, B, C, D -> correct, correct, wrong, wrong.
    assert result["tasks"]["abstract_algebra"] == 50.0
    assert result["settings"]["self_consistency"]["samples"] == 5


def test_self_consistency_votes_on_numbers():
    predictor = CyclingPredictor(["The answer is 18.", "The answer is 20.", "x = 18.0"])
    examples = [EvalExample(id="de-0", task="de", prompt="p", target="18", golds=("18",))]
    suite = make_suite("mgsm")
    assert suite.score(examples, {"de-0": predictor.generate(["p"], 10, [], 0.7, 3)[0]})["score"] == 100.0


def test_run_suite_self_consistency_settings():
    predictor = CyclingPredictor([" A", " B", " A"])
    result = run_suite("mmlu", predictor, FIX, self_consistency={"samples": 3, "temperature": 0.5}, mmlu_split="test")
    assert {c["num_samples"] for c in predictor.calls} == {3} and {c["temperature"] for c in predictor.calls} == {0.5}
    assert result["tasks"]["abstract_algebra"] == 25.0 and result["settings"]["self_consistency"] == {"samples": 3, "temperature": 0.5}
    greedy = CyclingPredictor([" A"])
    run_suite("mmlu", greedy, FIX, self_consistency={"samples": 1, "temperature": 0.9})
    assert {c["temperature"] for c in greedy.calls} == {0.0}  # one sample = greedy


def test_bbh_headline_is_the_mean_over_subtask_files_and_the_23_task_aggregate_is_kept():
    def ex(sub, i, target="(A)", chance=0.0):
        return EvalExample(id=f"{sub}-{i}", task=sub, prompt=f"{sub}{i}", target=target, golds=(target,), chance=chance)

    examples = [ex("logical_deduction_three_objects", i, chance=1 / 3) for i in range(4)] + \
               [ex("logical_deduction_five_objects", 0, chance=0.2)] + [ex("logical_deduction_seven_objects", 0, chance=1 / 7)] + \
               [ex("navigate", i, chance=0.5) for i in range(2)]
    outputs = {e.id: [" (A)"] for e in examples}
    outputs["logical_deduction_three_objects-0"] = [" (B)"]  # 3/4 on the three-object file
    outputs["logical_deduction_seven_objects-0"] = [" (B)"]  # 0/1 on the seven-object file
    outputs["navigate-1"] = [" (B)"]  # 1/2
    result = BBH().score(examples, outputs)
    assert result["tasks"] == {"logical_deduction_five_objects": 100.0, "logical_deduction_seven_objects": 0.0,
                               "logical_deduction_three_objects": 75.0, "navigate": 50.0}
    # Flan paper (App. D.2): every subtask file counts as a task, unweighted.
    assert result["score"] == pytest.approx((75.0 + 100.0 + 0.0 + 50.0) / 4)
    assert "27 subtask files" in result["headline"]
    assert result["chance"] == pytest.approx(100 * (1 / 3 + 0.2 + 1 / 7 + 0.5) / 4)
    # The BBH paper's aggregate: three-way tasks averaged over their files first (not pooled 4/6).
    bbh23 = result["aggregates"]["bbh-paper-23-tasks"]
    assert bbh23["tasks"]["logical_deduction"] == pytest.approx((75.0 + 100.0 + 0.0) / 3)
    assert bbh23["score"] == pytest.approx(((175.0 / 3) + 50.0) / 2)
    assert bbh23["chance"] == pytest.approx((100 * (1 / 3 + 0.2 + 1 / 7) / 3 + 50.0) / 2)
    assert result["micro"] == pytest.approx(100.0 * 5 / 8)


def test_normalized_average_and_several_suites():
    fake = [
        {"suite": "mmlu", "score": 55.0, "chance": 25.0},
        {"suite": "bbh", "score": 40.0, "chance": 20.0},
        {"suite": "mgsm", "score": 10.0, "chance": 0.0},
        {"suite": "builtin", "score": 90.0, "chance": 10.0},  # not one of the six: not averaged
    ]
    out = combine(fake)
    assert out["normalized"] == pytest.approx({"mmlu": 40.0, "bbh": 25.0, "mgsm": 10.0})
    assert out["normalized_average"] == pytest.approx(25.0)
    assert out["chance"] == {"mmlu": 25.0, "bbh": 20.0, "mgsm": 0.0, "builtin": 10.0}
    assert "missing: mmlu-cot, bbh-cot, tydiqa" in out["normalized_average_note"]


def test_run_suites_writes_one_file_per_suite(tmp_path):
    predictor = FixedPredictor(" A")
    result = run_suites(["mmlu", "mmlu-cot", "tydiqa"], predictor, FIX, write_predictions_to=tmp_path / "preds.jsonl")
    assert [r["suite"] for r in result["suites"]] == ["mmlu", "mmlu-cot", "tydiqa"]
    assert (tmp_path / "preds.mmlu.jsonl").exists() and (tmp_path / "preds.mmlu-cot.jsonl").exists()
    written = write_result(result, tmp_path / "evals")
    assert sorted(p.name for p in written) == ["mmlu-cot.json", "mmlu.json", "normalized_average.json", "tydiqa.json"]
    saved = json.loads((tmp_path / "evals" / "mmlu.json").read_text())
    assert saved["suite"] == "mmlu" and saved["settings"]["shots"] == 5 and len(saved["prompts_hash"]) == 64



def test_suite_placeholder_names_each_predictions_file(tmp_path):
    template = tmp_path / "evals" / "{suite}.predictions.jsonl"
    run_suites(["mmlu", "tydiqa"], FixedPredictor(" A"), FIX, write_predictions_to=template)
    run_suite("mmlu-cot", FixedPredictor(" A"), FIX, write_predictions_to=template)
    names = sorted(p.name for p in (tmp_path / "evals").iterdir())
    assert names == ["mmlu-cot.predictions.jsonl", "mmlu.predictions.jsonl", "tydiqa.predictions.jsonl"]
    row = json.loads((tmp_path / "evals" / "mmlu.predictions.jsonl").read_text().splitlines()[0])
    assert row["prediction"] == " A"


def test_prompts_hash_changes_with_shots():
    a = run_suite("mmlu", FixedPredictor(" A"), FIX)["prompts_hash"]
    b = run_suite("mmlu", FixedPredictor(" A"), FIX, shots={"mmlu": 2})["prompts_hash"]
    assert a != b
    # A suite's own key wins over its variant's shared one.
    cot = make_suite("mmlu-cot")
    assert cot.shots_for({"mmlu": 2, "mmlu-cot": 4}) == 4 and cot.shots_for({"mmlu": 2}) == 2 and cot.shots_for(3) == 3


def test_offline_hub_gives_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(FlanctlError, match=r"cannot load cais/mmlu/abstract_algebra \(dev\) .*offline.*pass --data-dir"):
        make_suite("mmlu").load(None)


def test_flan_held_out_with_predictions_is_refused(tmp_path):
    with pytest.raises(FlanctlError, match="one suite at a time"):
        score_predictions("flan-held-out", tmp_path / "x.jsonl", FIX)
    with pytest.raises(FlanctlError, match="unknown suite 'mmlu-pro'"):
        make_suite("mmlu-pro")
