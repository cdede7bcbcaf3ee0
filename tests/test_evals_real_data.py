"""BBH and MGSM on the real files in ../shared/data: prompt building, oracle and fixed-answer scores."""

import json
from pathlib import Path

import pytest

from flanctl.evals.answers import mgsm_answer, number_key
from reference_predictors import EchoPredictor, FixedPredictor, GoldPredictor
from flanctl.evals.runner import run_suite
from flanctl.evals.suites import make_suite
from flanctl.evals.suites.bbh import SUBTASKS, option_chance, parse_cot_prompt, task_of

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_bbh = pytest.mark.skipif(not (DATA / "bbh" / "cot-prompts").is_dir(), reason=f"real BBH files not found at {DATA / 'bbh'}")
needs_mgsm = pytest.mark.skipif(not (DATA / "mgsm" / "exemplars.json").is_file(), reason=f"real MGSM files not found at {DATA / 'mgsm'}")
LIMIT = 12


@needs_bbh
def test_every_bbh_prompt_file_parses_to_three_exemplars():
    for sub in SUBTASKS:
        description, shots = parse_cot_prompt((DATA / "bbh" / "cot-prompts" / f"{sub}.txt").read_text(), sub)
        assert description and len(shots) == 3, sub
        for question, rationale, answer in shots:
            assert rationale.startswith("Let's think step by step.") and answer and "So the answer is" not in answer


@needs_bbh
def test_bbh_prompts_direct_and_cot():
    direct = {e.id: e for e in make_suite("bbh").load(DATA, limit=1)}
    cot = {e.id: e for e in make_suite("bbh-cot").load(DATA, limit=1)}
    assert len(direct) == 27 and set(direct) == set(cot)
    d, c = direct["date_understanding-0"].prompt, cot["date_understanding-0"].prompt
    assert d.startswith("Infer the date from context.\n\nQ: Today is Christmas Eve of 1937.")
    assert "\nA: (D)\n\nQ: Tomorrow is 11/12/2019." in d and "think step by step" not in d
    assert "canary" not in d and "canary" not in c
    assert "So the answer is (D).\n\nQ: Tomorrow is 11/12/2019." in c
    assert c.endswith("\nA: Let's think step by step.") and d.endswith("\nA:")
    assert d.count("\n\nQ: ") == c.count("\n\nQ: ") == 4  # three exemplars + the question


@needs_bbh
@pytest.mark.parametrize("suite, fmt", [("bbh", " {}"), ("bbh-cot", " Reasoning here. So the answer is {}.")])
def test_bbh_gold_predictor_scores_100(suite, fmt):
    examples = make_suite(suite).load(DATA, limit=LIMIT)
    result = run_suite(suite, GoldPredictor(examples, fmt), DATA, limit=LIMIT)
    assert result["score"] == 100.0 and result["micro"] == 100.0
    assert len(result["tasks"]) == 27 and len(result["aggregates"]["bbh-paper-23-tasks"]["tasks"]) == 23
    assert result["n"] == 27 * LIMIT and result["missing"] == 0
    assert result["paper"]["flan-palm-540b"] in (57.9, 66.3)
    assert len(result["prompts_hash"]) == 64


def _raw(sub):
    return json.loads((DATA / "bbh" / "bbh" / f"{sub}.json").read_text())["examples"]


@needs_bbh
def test_bbh_fixed_answer_rate_matches_an_independent_count():
    """Always answering "(A)": per subtask the share of "(A)" targets; the headline their mean over
    the 27 files (Flan), the BBH paper's aggregate with the three-way tasks averaged first."""
    result = run_suite("bbh", FixedPredictor(" (A)"), DATA, limit=None)
    rates = {sub: 100.0 * sum(e["target"] == "(A)" for e in _raw(sub)) / len(_raw(sub)) for sub in SUBTASKS}
    for sub in SUBTASKS:
        assert result["tasks"][sub] == pytest.approx(rates[sub])
    assert result["score"] == pytest.approx(sum(rates.values()) / 27)
    bbh23 = result["aggregates"]["bbh-paper-23-tasks"]
    three = (rates["logical_deduction_three_objects"] + rates["logical_deduction_five_objects"] + rates["logical_deduction_seven_objects"]) / 3
    assert bbh23["tasks"]["logical_deduction"] == pytest.approx(three)
    by_task = {}
    for sub, r in rates.items():
        by_task.setdefault(task_of(sub), []).append(r)
    assert bbh23["score"] == pytest.approx(sum(sum(v) / len(v) for v in by_task.values()) / 23)
    total = sum(len(_raw(s)) for s in SUBTASKS)
    assert result["n"] == total == 6511
    assert result["micro"] == pytest.approx(100.0 * sum(sum(e["target"] == "(A)" for e in _raw(s)) for s in SUBTASKS) / total)


@needs_bbh
def test_bbh_cot_fixed_true_and_bracketless_letter():
    result = run_suite("bbh-cot", FixedPredictor("x. So the answer is True."), DATA, limit=LIMIT)
    raw = _raw("boolean_expressions")[:LIMIT]
    assert result["tasks"]["boolean_expressions"] == pytest.approx(100.0 * sum(e["target"] == "True" for e in raw) / LIMIT)
    assert result["tasks"]["navigate"] == 0.0  # "True" is not "Yes"
    result = run_suite("bbh-cot", FixedPredictor("So the answer is (B"), DATA, limit=LIMIT)
    raw = _raw("hyperbaton")[:LIMIT]
    assert result["tasks"]["hyperbaton"] == pytest.approx(100.0 * sum(e["target"] == "(B)" for e in raw) / LIMIT)


@needs_bbh
def test_bbh_chance_from_option_counts():
    examples = make_suite("bbh").load(DATA)
    by_id = {e.id: e for e in examples}
    assert by_id["hyperbaton-0"].chance == 0.5  # two "(A)/(B)" options
    assert by_id["boolean_expressions-0"].chance == 0.5  # binary True/False targets, no options listed
    assert by_id["causal_judgement-0"].chance == 0.5  # "- Yes / - No" options
    assert by_id["word_sorting-0"].chance == 0.0 and by_id["dyck_languages-0"].chance == 0.0
    assert by_id["logical_deduction_seven_objects-0"].chance == pytest.approx(1 / 7)
    assert option_chance("Q\nOptions:\n(A) x\n(B) y\n(C) z", set()) == pytest.approx(1 / 3)
    chance = make_suite("bbh").chance_level(examples)
    assert 20.0 < chance < 35.0  # the paper-era estimate of BBH's random rate is in the mid-20s
    per_file = {}
    for e in examples:
        per_file.setdefault(e.task, []).append(e.chance)
    assert chance == pytest.approx(100 * sum(sum(v) / len(v) for v in per_file.values()) / 27)  # like the headline


@needs_bbh
def test_bbh_echo_predictor_scores_almost_nothing():
    result = run_suite("bbh", EchoPredictor(), DATA, limit=4)
    assert result["score"] < 5.0


# ----------------------------------------------------------------------------- MGSM
@needs_mgsm
def test_mgsm_exemplars_extract_to_their_number_answers():
    data = json.loads((DATA / "mgsm" / "exemplars.json").read_text())
    for lang, shots in data["exemplars"].items():
        for k, shot in shots.items():
            want = number_key(mgsm_answer(str(data["number_answers"][int(k) - 1]), "en"))
            assert number_key(mgsm_answer(shot["a"], lang)) == want, (lang, k)


@needs_mgsm
def test_mgsm_prompts_use_each_languages_exemplars():
    examples = {e.id: e for e in make_suite("mgsm").load(DATA, limit=2)}
    assert len(examples) == 22
    zh = examples["zh-0"].prompt
    assert zh.count("问题：") == 9 and zh.endswith("逐步解答：") and "Question:" not in zh
    bn = examples["bn-1"].prompt
    assert bn.count("প্রশ্ন: ") == 9 and bn.endswith("ধাপে ধাপে উত্তর:")
    assert examples["fr-0"].prompt.count("Question : ") == 9


@needs_mgsm
def test_mgsm_gold_and_fixed_predictors():
    suite = make_suite("mgsm")
    examples = suite.load(DATA, limit=LIMIT)
    result = run_suite("mgsm", GoldPredictor(examples, "Some steps. The answer is {}."), DATA, limit=LIMIT)
    assert result["score"] == 100.0 and set(result["tasks"]) == {"bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh"}
    assert result["chance"] == 0.0
    # A fixed "18" is right exactly where the gold (read independently from the TSV) is 18.
    result = run_suite("mgsm", FixedPredictor("The answer is 18."), DATA, limit=LIMIT)
    for lang in ("de", "ja", "te"):
        rows = (DATA / "mgsm" / f"mgsm_{lang}.tsv").read_text(encoding="utf-8").splitlines()[:LIMIT]
        golds = [float(r.split("\t")[1].replace(",", "")) for r in rows]
        assert result["tasks"][lang] == pytest.approx(100.0 * golds.count(18.0) / LIMIT)
    non_en = [v for k, v in result["tasks"].items() if k != "en"]
    assert result["score"] == pytest.approx(sum(non_en) / 10)


@needs_mgsm
def test_mgsm_gold_answers_with_thousands_separators():
    examples = make_suite("mgsm").load(DATA)
    comma = [e for e in examples if "," in e.target]
    assert len(comma) >= 4
    texts = [f"The answer is {e.target.replace(',', '')}.0" for e in comma]
    suite = make_suite("mgsm")
    assert all(suite.answer_key(t, e) in e.golds for t, e in zip(texts, comma))


@needs_bbh
def test_bbh_file_sizes_match_the_catalog():
    from flanctl.catalog.suites import BBH_SUBTASK_SIZES

    assert {sub: len(_raw(sub)) for sub in SUBTASKS} == BBH_SUBTASK_SIZES


@needs_bbh
def test_catalog_bbh_chance_is_the_one_computed_from_the_files():
    from flanctl.catalog.suites import BBH_CHANCE_23_TASKS, SUITES

    result = run_suite("bbh", FixedPredictor(" nothing"), DATA)
    assert SUITES["bbh"].chance == SUITES["bbh-cot"].chance == pytest.approx(result["chance"], abs=0.05)
    assert BBH_CHANCE_23_TASKS == pytest.approx(result["aggregates"]["bbh-paper-23-tasks"]["chance"], abs=0.05)
