"""The paper's eval protocol (issue 12) on the real files in ../shared/data and the paper's own numbers:
BBH aggregation and decode budgets, MMLU splits and CoT prompts, the normalized average."""

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from flanctl.catalog.suites import BBH_CHANCE, SUITES, normalized_score
from flanctl.errors import FlanctlError
from flanctl.evals.answers import mmlu_letter
from reference_predictors import FixedPredictor
from flanctl.evals.runner import combine, run_suite, score_predictions
from flanctl.evals.suites import make_suite
from flanctl.evals.suites.base import EvalExample
from flanctl.evals.suites.bbh import BBH, parse_cot_prompt
from flanctl.evals.suites.mmlu import SUBJECTS, cot_answers

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIX = Path(__file__).parent / "fixtures" / "evals"
PAPER = json.loads((FIX / "flan_paper_tables.json").read_text())
needs_bbh = pytest.mark.skipif(not (DATA / "bbh" / "cot-prompts").is_dir(), reason=f"real BBH files not found at {DATA / 'bbh'}")
needs_mmlu = pytest.mark.skipif(not (DATA / "mmlu" / "mmlu-cot.json").is_file(), reason=f"real MMLU files not found at {DATA / 'mmlu'}")
needs_mgsm = pytest.mark.skipif(not (DATA / "mgsm" / "exemplars.json").is_file(), reason=f"real MGSM files not found at {DATA / 'mgsm'}")


class Recorder(FixedPredictor):
    """FixedPredictor that also keeps which prompts each call got."""

    def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
        self.calls.append({"prompts": list(prompts), "max_new_tokens": max_new_tokens})
        return [[self.text] * num_samples for _ in prompts]


# ----------------------------------------------------------------------------- 1. BBH headline
@needs_bbh
def test_bbh_headline_is_the_mean_over_27_files_and_the_23_task_mean_is_kept_labelled():
    result = run_suite("bbh", FixedPredictor(" (A)"), DATA)
    assert len(result["tasks"]) == 27 and result["score"] == pytest.approx(sum(result["tasks"].values()) / 27)
    bbh23 = result["aggregates"]["bbh-paper-23-tasks"]
    assert len(bbh23["tasks"]) == 23 and "23 tasks" in bbh23["about"] and bbh23["score"] != pytest.approx(result["score"])
    # Chance aggregated the same two ways; the catalog holds the Flan one.
    assert result["chance"] == pytest.approx(BBH_CHANCE, abs=0.05) and bbh23["chance"] == pytest.approx(27.3, abs=0.05)


# ----------------------------------------------------------------------------- 2. decode budgets
@needs_bbh
@pytest.mark.parametrize("suite", ["bbh", "bbh-cot"])
def test_every_bbh_subtask_budget_covers_its_prompt_files_longest_example_answer(suite):
    s = make_suite(suite)
    examples = s.load(DATA)
    for path in sorted((DATA / "bbh" / "cot-prompts").glob("*.txt")):
        _, shots = parse_cot_prompt(path.read_text(encoding="utf-8"), path.name)
        longest = max(len((" " + (text if s.cot else answer)).encode("utf-8")) for _, text, answer in shots)
        # UTF-8 bytes bound the tokens of every tokenizer (byte: one per byte; pieces cover >= 1 byte).
        assert s.budgets[path.stem] >= 2 * longest, path.stem
    assert {e.max_new_tokens for e in examples} == set(s.budgets.values())
    assert s.settings()["decode_budgets"] == s.budgets and s.max_new_tokens == max(s.budgets.values())
    # The subtasks whose own exemplar answers exceeded the old fixed budgets now fit.
    if s.cot:
        assert s.budgets["geometric_shapes"] > 1800 and min(s.budgets.values()) > 256
    else:  # sorted word lists grow with the question: every gold list fits, even one byte per token
        assert s.budgets["word_sorting"] >= max(len((" " + e.target).encode()) for e in examples if e.task == "word_sorting")


@needs_bbh
def test_each_batch_gets_its_questions_budget_and_the_spec_setting_replaces_it():
    s = make_suite("bbh-cot")
    budget_of = {e.prompt: e.max_new_tokens for e in s.load(DATA, limit=2)}
    predictor = Recorder("So the answer is (A).")
    run_suite("bbh-cot", predictor, DATA, limit=2, batch_size=2)
    assert all(c["max_new_tokens"] == max(budget_of[p] for p in c["prompts"]) for c in predictor.calls)
    capped = Recorder("x")
    result = run_suite("bbh-cot", capped, DATA, limit=2, batch_size=2, max_new_tokens=300)
    assert {c["max_new_tokens"] for c in capped.calls} == {300} and result["settings"]["max_new_tokens"] == 300
    high = Recorder("x")
    s = make_suite("bbh")
    budget_of = {e.prompt: e.max_new_tokens for e in s.load(DATA, limit=1)}
    run_suite("bbh", high, DATA, limit=1, batch_size=1, max_new_tokens=5_000)  # raisable too
    assert {c["max_new_tokens"] for c in high.calls} == {5_000}
    assert max(budget_of.values()) < 5_000


@needs_mgsm
def test_mgsm_budget_per_language_covers_its_longest_exemplar():
    s = make_suite("mgsm")
    s.load(DATA, limit=1)
    data = json.loads((DATA / "mgsm" / "exemplars.json").read_text(encoding="utf-8"))["exemplars"]
    for lang, shots in data.items():
        assert s.budgets[lang] >= max(len(v["a"].encode("utf-8")) for v in shots.values()), lang


# ----------------------------------------------------------------------------- 3. MMLU splits
def _csv_rows(split, subject):
    with (DATA / "mmlu" / split / f"{subject}_{split}.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


@needs_mmlu
@pytest.mark.parametrize("split, total", [("val", 1_531), ("test", 14_042)])
def test_mmlu_prompts_for_every_subject_and_split(split, total):
    examples = make_suite("mmlu", mmlu_split=split).load(DATA)
    assert len(examples) == total == SUITES["mmlu"].splits[split]
    by_subject = Counter(e.task for e in examples)
    assert set(by_subject) == set(SUBJECTS)
    for subject in SUBJECTS:
        rows = _csv_rows(split, subject)
        assert by_subject[subject] == len(rows)
        first = next(e for e in examples if e.id == f"{subject}-0")
        assert first.prompt.startswith(f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n")
        assert first.prompt.count("\nAnswer:") == 6 and first.target == rows[0][5]
        assert first.prompt.endswith(f"{rows[0][0]}\nA. {rows[0][1]}\nB. {rows[0][2]}\nC. {rows[0][3]}\nD. {rows[0][4]}\nAnswer:")


@needs_mmlu
@pytest.mark.parametrize("split", ["val", "test"])
def test_mmlu_gold_letters_score_100_and_a_fixed_letter_scores_its_count(split, tmp_path):
    examples = make_suite("mmlu", mmlu_split=split).load(DATA)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": e.id, "prediction": f" {e.target}"}) + "\n" for e in examples))
    assert score_predictions("mmlu", gold, DATA, mmlu_split=split)["score"] == 100.0
    fixed = tmp_path / "c.jsonl"
    fixed.write_text("".join(json.dumps({"id": e.id, "prediction": " C"}) + "\n" for e in examples))
    result = score_predictions("mmlu", fixed, DATA, mmlu_split=split)
    count_c = sum(row[5] == "C" for s in SUBJECTS for row in _csv_rows(split, s))
    assert result["micro"] == pytest.approx(100.0 * count_c / len(examples))


@needs_mmlu
def test_mmlu_default_is_the_validation_split_with_its_reference_numbers():
    result = run_suite("mmlu", FixedPredictor(" A"), DATA, limit=1)
    assert result["settings"]["split"] == "val" and result["paper"] == {"flan-palm-540b": 73.5, "flan-t5-xxl": 55.1}
    test = run_suite("mmlu-cot", FixedPredictor(" A"), DATA, limit=1, mmlu_split="test")
    assert test["paper"] == {"flan-palm-540b": 70.2, "flan-t5-xxl": None} and "Table 4" in test["paper_source"]


# ----------------------------------------------------------------------------- 4. MMLU-CoT prompts and extraction
@needs_mmlu
def test_mmlu_cot_prompt_for_every_subject_is_the_papers_file():
    prompts = json.loads((DATA / "mmlu" / "mmlu-cot.json").read_text(encoding="utf-8"))
    s = make_suite("mmlu-cot")
    examples = s.load(DATA, limit=1)
    assert len(examples) == 57 and "mmlu-cot.json" in s.settings()["prompts"]
    for e in examples:
        head = prompts[e.task].rstrip("\n") + "\n\n"
        assert e.prompt.startswith(head) and e.prompt.endswith("\nA: Let's think step by step.")
        assert e.max_new_tokens >= 2 * max(len(a.encode()) for a in cot_answers(prompts[e.task]))


@needs_mmlu
def test_cot_answers_cut_before_the_answer_give_no_letter():
    prompts = json.loads((DATA / "mmlu" / "mmlu-cot.json").read_text(encoding="utf-8"))
    answers = [a for p in prompts.values() for a in cot_answers(p)]
    assert len(answers) >= 281
    articles = 0
    for a in answers:
        letter = re.search(r"answer is \(([A-E])\)", a).group(1)
        assert mmlu_letter(a, cot=True) == (letter if letter in "ABCD" else None)
        rationale = a.strip()[len("Let's think step by step."):]
        cut = rationale[: rationale.lower().index("the answer is")]
        articles += cut.strip().startswith("A ")
        assert mmlu_letter(cut, cot=True) is None, cut[:60]
    assert articles == 5  # rationales that start with the article "A": no longer read as (A)
    assert mmlu_letter("(B)", cot=True) == "B" and mmlu_letter(" B.", cot=True) == "B"  # a bare option still counts


def test_mmlu_cot_without_the_file_is_an_error_inside_flan_held_out(tmp_path):
    import shutil

    shutil.copytree(FIX / "mmlu", tmp_path / "mmlu")
    (tmp_path / "mmlu" / "mmlu-cot.json").unlink()
    with pytest.raises(FlanctlError, match="mmlu-cot needs the paper's chain-of-thought exemplars"):
        run_suite("flan-held-out", FixedPredictor(" A"), tmp_path)


# ----------------------------------------------------------------------------- 5. normalized average
TABLE5 = PAPER["table5"]
BBH18 = PAPER["bbh_subtasks_tables_17_18"]


def _bbh_file_chances():
    s = make_suite("bbh")
    return BBH.task_chances(s.load(DATA))


def _suite_level(row, bbh_chance):
    _, m, mc, b, bc, ty, mg = row
    return (normalized_score(m, 25) + normalized_score(mc, 25) + normalized_score(b, bbh_chance)
            + normalized_score(bc, bbh_chance) + ty + mg) / 6


def test_normalization_per_task_equals_the_suite_level_one_where_every_task_has_the_same_chance():
    examples = [EvalExample(id=f"{t}-{i}", task=t, prompt="p", target="A", golds=("A",), chance=0.25) for t in ("x", "y") for i in range(4)]
    suite = make_suite("mmlu")
    tasks = {"x": 50.0, "y": 75.0}
    assert suite.normalized(tasks, examples) == pytest.approx(normalized_score(62.5, 25.0))
    bbh = [EvalExample(id="a-0", task="a", prompt="p", target="x", golds=("x",), chance=0.5),
           EvalExample(id="b-0", task="b", prompt="p", target="x", golds=("x",), chance=0.0)]
    # BBH: each subtask file by its own chance, not the suite mean by the mean chance.
    assert BBH().normalized({"a": 75.0, "b": 10.0}, bbh) == pytest.approx((50.0 + 10.0) / 2)
    out = combine([{"suite": "bbh", "score": 42.5, "chance": 25.0, "normalized": 30.0}, {"suite": "mgsm", "score": 10.0, "chance": 0.0}])
    assert out["normalized"] == {"bbh": 30.0, "mgsm": 10.0} and out["normalized_average"] == 20.0


@needs_bbh
def test_paper_table5_rows_are_within_what_per_subtask_normalization_allows():
    """Table 5's printed normalized averages against the per-task method, fed the paper's own numbers:
    MMLU (25%), TyDiQA and MGSM (0%) per suite, BBH per subtask file from Tables 17-18. Table 19
    (BBH files 19-27) is not available here, so the nine other files are only bounded (each 0-100,
    their sum fixed by Table 5's 27-file mean): every printed value must lie in that interval, give
    or take the tables' rounding (0.05 + 0.1 of inputs). The suite-level method with one BBH chance
    misses some row by more than 0.59 whatever the chance (issue 12)."""
    chance = _bbh_file_chances()
    rest = sorted(set(chance) - set(next(iter(BBH18.values()))["direct"]))
    assert len(rest) == 9

    def bbh_interval(known, mean27):
        left = 27 * mean27 - sum(known.values())
        base = sum(normalized_score(v, chance[k]) for k, v in known.items()) - sum(100 * chance[k] / (100 - chance[k]) for k in rest)
        weights = sorted(100 / (100 - chance[k]) for k in rest)

        def fill(ws):
            total, remaining = 0.0, left
            for w in ws:
                s = min(100.0, max(0.0, remaining))
                remaining -= s
                total += w * s
            return total

        return (base + fill(weights)) / 27, (base + fill(weights[::-1])) / 27

    tol = 0.15
    for model, (printed, m, mc, b, bc, ty, mg) in TABLE5.items():
        lo_d, hi_d = bbh_interval(BBH18[model]["direct"], b)
        lo_c, hi_c = bbh_interval(BBH18[model]["cot"], bc)
        fixed = normalized_score(m, 25) + normalized_score(mc, 25) + ty + mg
        lo, hi = (fixed + lo_d + lo_c) / 6, (fixed + hi_d + hi_c) / 6
        assert lo - tol <= printed <= hi + tol, (model, lo, printed, hi)
    worst = min(max(abs(_suite_level(row, c / 10) - row[0]) for row in TABLE5.values()) for c in range(200, 320))
    assert worst > 0.59
