"""MMLU and TyDiQA-GoldP on small fixtures in their original file formats (tests/fixtures/evals)."""

import json
import shutil
from pathlib import Path

import pytest

from flanctl.errors import FlanctlError
from reference_predictors import EchoPredictor, FixedPredictor, GoldPredictor
from flanctl.evals.runner import run_suite
from flanctl.evals.suites import make_suite

FIX = Path(__file__).parent / "fixtures" / "evals"


# ----------------------------------------------------------------------------- MMLU
def test_mmlu_direct_prompt_is_five_shot_from_dev():
    examples = {e.id: e for e in make_suite("mmlu", mmlu_split="test").load(FIX)}
    assert set(examples) == {f"abstract_algebra-{i}" for i in range(4)} | {f"high_school_geography-{i}" for i in range(3)}
    p = examples["abstract_algebra-2"].prompt
    assert p.startswith("The following are multiple choice questions (with answers) about abstract algebra.\n\n")
    assert p.count("\nAnswer:") == 6 and p.endswith("D. neither\nAnswer:")
    assert 'Which of "a, b" is a group, given "comma, quoted" sets?\nA. a\nB. b\nC. both, really' in p  # CSV quoting read right
    assert "\nAnswer: C\n\n" in p  # first dev exemplar's answer


def test_mmlu_scores_gold_fixed_and_echo():
    examples = make_suite("mmlu", mmlu_split="test").load(FIX)
    assert run_suite("mmlu", GoldPredictor(examples), FIX, mmlu_split="test")["score"] == 100.0
    result = run_suite("mmlu", FixedPredictor(" (A"), FIX, mmlu_split="test")
    # A is right for 1 of 4 abstract_algebra and 1 of 3 geography questions.
    assert result["tasks"] == pytest.approx({"abstract_algebra": 25.0, "high_school_geography": 100 / 3})
    assert result["score"] == pytest.approx((25.0 + 100 / 3) / 2)  # unweighted over subjects
    assert result["micro"] == pytest.approx(200 / 7)  # pooled over questions
    assert result["chance"] == 25.0
    assert run_suite("mmlu", EchoPredictor(), FIX, mmlu_split="test")["score"] == 0.0


@pytest.mark.parametrize(
    "suite, split, n, paper, source",
    [
        ("mmlu", None, 2, {"flan-palm-540b": 73.5, "flan-t5-xxl": 55.1}, "Table 5 (validation split)"),
        ("mmlu", "val", 2, {"flan-palm-540b": 73.5, "flan-t5-xxl": 55.1}, "Table 5 (validation split)"),
        ("mmlu", "test", 7, {"flan-palm-540b": 72.2, "flan-t5-xxl": None}, "Table 4 (test split)"),
        ("mmlu-cot", None, 2, {"flan-palm-540b": 70.9, "flan-t5-xxl": 48.6}, "Table 5 (validation split)"),
        ("mmlu-cot", "test", 7, {"flan-palm-540b": 70.2, "flan-t5-xxl": None}, "Table 4 (test split)"),
    ],
)
def test_mmlu_split_and_the_paper_numbers_for_it(suite, split, n, paper, source):
    """The validation split by default (the paper's, App. D.1); the reference numbers are always the scored split's."""
    result = run_suite(suite, FixedPredictor(" (B"), FIX, mmlu_split=split)
    assert result["n"] == n and result["settings"]["split"] == (split or "val")
    assert result["paper"] == paper and result["paper_source"] == source
    if n == 2:  # the validation rows: abstract_algebra answer B, geography answer C
        assert result["tasks"] == {"abstract_algebra": 100.0, "high_school_geography": 0.0}
        assert make_suite(suite).load(FIX)[0].prompt.count("How many generators does Z_6 have?") == 1


def test_mmlu_unknown_split():
    with pytest.raises(FlanctlError, match="unknown split 'dev'; use val or test"):
        make_suite("mmlu", mmlu_split="dev")


def test_mmlu_loglikelihood_ranking():
    examples = make_suite("mmlu", mmlu_split="test").load(FIX)
    assert run_suite("mmlu", GoldPredictor(examples), FIX, method="loglikelihood", mmlu_split="test")["score"] == 100.0
    result = run_suite("mmlu", FixedPredictor("B"), FIX, method="loglikelihood", mmlu_split="test")
    assert result["tasks"]["high_school_geography"] == pytest.approx(100 / 3)
    assert result["settings"]["method"] == "loglikelihood"


def _without_cot_file(tmp_path):
    shutil.copytree(FIX / "mmlu", tmp_path / "mmlu")
    (tmp_path / "mmlu" / "mmlu-cot.json").unlink()
    return tmp_path


def test_mmlu_cot_without_prompt_file_is_an_error_that_says_where_to_get_it(tmp_path):
    data = _without_cot_file(tmp_path)
    with pytest.raises(FlanctlError, match=r"mmlu-cot needs the paper's chain-of-thought exemplars: .*mmlu/mmlu-cot.json not found; .*jasonwei20/flan-2"):
        make_suite("mmlu-cot").load(data)
    with pytest.raises(FlanctlError, match="mmlu-cot needs"):  # also inside flan-held-out, before any suite runs
        run_suite("flan-held-out", FixedPredictor(" A"), data, mmlu_split="test")
    with pytest.raises(FlanctlError, match=r"nope.json: MMLU CoT prompt file not found; .*jasonwei20/flan-2"):
        make_suite("mmlu-cot", cot_prompts=tmp_path / "nope.json").load(data)
    make_suite("mmlu").load(data)  # the direct suite needs no CoT file


def test_mmlu_cot_fallback_is_explicit_and_labelled(tmp_path):
    data = _without_cot_file(tmp_path)
    suite = make_suite("mmlu-cot", mmlu_cot_fallback=True, mmlu_split="test")
    examples = suite.load(data, limit=1)
    p = examples[0].prompt
    assert "A: Let's think step by step. The answer is (C).\n\n" in p and p.endswith("A: Let's think step by step.")
    assert "no rationale" in suite.settings()["prompts"]
    result = run_suite("mmlu-cot", GoldPredictor(suite.load(data), " Because. So the answer is ({})."), data,
                       mmlu_cot_fallback=True, mmlu_split="test")
    assert result["score"] == 100.0 and "no rationale" in result["settings"]["prompts"]
    assert "not the paper's CoT exemplars" in result["note"]


def test_mmlu_cot_prompt_file(tmp_path):
    shutil.copytree(FIX / "mmlu", tmp_path / "mmlu")
    prompts = {
        "abstract_algebra": "The following are multiple choice questions (with answers) about abstract algebra.\n\nQ: 1+1?\n(A) 1 (B) 2 (C) 3 (D) 4\nA: Let's think step by step. One plus one is two. The answer is (B).",
        "high_school_geography": "Geo header.\n\n",
    }
    (tmp_path / "mmlu" / "mmlu-cot.json").write_text(json.dumps(prompts))
    suite = make_suite("mmlu-cot")
    examples = suite.load(tmp_path, limit=1)
    assert examples[0].prompt.startswith(prompts["abstract_algebra"] + "\n\nQ: How many generators")
    assert examples[1].prompt.startswith("Geo header.\n\nQ: Largest ocean?")
    assert "mmlu-cot.json" in suite.settings()["prompts"]
    del prompts["high_school_geography"]
    (tmp_path / "mmlu" / "mmlu-cot.json").write_text(json.dumps(prompts))
    with pytest.raises(FlanctlError, match="no entry for subject 'high_school_geography'"):
        make_suite("mmlu-cot").load(tmp_path)


def test_mmlu_bad_csv_names_file_and_line(tmp_path):
    shutil.copytree(FIX / "mmlu", tmp_path / "mmlu")
    (tmp_path / "mmlu" / "test" / "anatomy_test.csv").write_text("q,a,b,c,d,A\nq2,a,b,c,d,E\n")
    (tmp_path / "mmlu" / "dev" / "anatomy_dev.csv").write_text("q,a,b,c,d,A\n" * 5)
    with pytest.raises(FlanctlError, match=r"anatomy_test.csv:2: answer 'E'"):
        make_suite("mmlu", mmlu_split="test").load(tmp_path)
    with pytest.raises(FlanctlError, match="no mmlu/ folder"):
        make_suite("mmlu").load(tmp_path / "mmlu" / "val")


# ----------------------------------------------------------------------------- TyDiQA
def test_tydiqa_one_shot_prompts_per_language():
    examples = {e.id: e for e in make_suite("tydiqa").load(FIX)}
    assert {e.task for e in examples.values()} == {"ar", "bn", "fi", "en"}
    fi = examples["finnish-311-0"].prompt
    # The shortest Finnish training passage is the exemplar; one shot, then the question.
    assert fi.startswith("Passage: Tampere on kaupunki.\nQuestion: Mikä Tampere on?\nAnswer: kaupunki\n\n")
    assert fi.count("Passage: ") == 2 and fi.endswith("Question: Missä Jean Sibelius syntyi?\nAnswer:")
    assert "الدوحة" in examples["arabic-111-0"].prompt


def test_tydiqa_exact_match_max_over_golds_and_headline_languages():
    examples = make_suite("tydiqa").load(FIX)
    assert run_suite("tydiqa", GoldPredictor(examples), FIX)["score"] == 100.0
    answers = {
        "arabic-111-0": " في البحر المتوسط.",  # second gold, punctuation dropped
        "arabic-112-0": " النيل",  # not a gold
        "bengali-211-0": " বুড়িগঙ্গা\nextra line",  # first line only
        "finnish-311-0": " hämeenlinnassa",  # case-insensitive
        "finnish-312-0": " The 1865",  # article removed
        "english-411-0": " the moon",
    }

    class ById:
        def __init__(self):
            self.by_prompt = {e.prompt: answers[e.id] for e in examples}

        def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
            assert stop == ["\n"]
            return [[self.by_prompt[p]] for p in prompts]

    result = run_suite("tydiqa", ById(), FIX)
    assert result["tasks"] == {"ar": 50.0, "bn": 100.0, "en": 100.0, "fi": 100.0}
    # Headline: the paper's eight non-English languages present here (English reported, not averaged).
    assert result["score"] == pytest.approx((50.0 + 100.0 + 100.0) / 3)
    assert result["chance"] == 0.0


def test_tydiqa_limit_per_language_and_missing_training_language(tmp_path):
    examples = make_suite("tydiqa").load(FIX, limit=1)
    assert sorted(e.task for e in examples) == ["ar", "bn", "en", "fi"]
    (tmp_path / "tydiqa").mkdir()
    shutil.copy(FIX / "tydiqa" / "tydiqa-goldp-v1.1-dev.json", tmp_path / "tydiqa")
    with pytest.raises(FlanctlError, match=r"no \*train\*\.json"):
        make_suite("tydiqa").load(tmp_path)
    assert len(make_suite("tydiqa").load(tmp_path, shots=0)) == 6  # zero-shot needs no training file
    (tmp_path / "tydiqa" / "x-train.json").write_text('{"data": [{"paragraphs": [{"context": "c"}]}]}')
    with pytest.raises(FlanctlError, match="not SQuAD-1.1 JSON"):
        make_suite("tydiqa").load(tmp_path)
