"""The `builtin` suite: held-out procedural tasks, offline, with the training templates' layout."""

import pytest

from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS
from flanctl.data.builtin_tasks import generate
from flanctl.errors import FlanctlError
from reference_predictors import EchoPredictor, FixedPredictor, GoldPredictor
from flanctl.evals.runner import run_suite
from flanctl.evals.suites import make_suite


def test_builtin_examples_ids_and_prompts():
    examples = make_suite("builtin").load(None, limit=5)
    assert [e.id for e in examples[:5]] == [f"{BUILTIN_HELD_OUT_TASKS[0]}-{i}" for i in range(5)]
    assert {e.task for e in examples} == set(BUILTIN_HELD_OUT_TASKS)
    raw = generate("anagram_check", "test", 5, 0)
    mine = [e for e in examples if e.task == "anagram_check"]
    assert [e.target for e in mine] == [r.targets for r in raw]
    assert mine[0].prompt == raw[0].inputs + "\n\nOPTIONS:\n- Yes\n- No\n"  # zero-shot template, variant 0
    mod = [e for e in examples if e.task == "modular_arithmetic"][0]
    assert "OPTIONS" not in mod.prompt and mod.chance == 0.0


def test_builtin_zero_shot_prompts_are_the_training_templates_variant_0():
    # The eval must ask held-out questions exactly as training phrased the seen ones.
    from flanctl.data.templates import load_templates, _render

    templates = load_templates()
    for task in BUILTIN_HELD_OUT_TASKS:
        ex = make_suite("builtin").load(None, limit=1)
        ex = [e for e in ex if e.task == task][0]
        raw = generate(task, "test", 1, 0)[0]
        fmt = "zero_shot_opts" if raw.options else "zero_shot_noopts"
        assert ex.prompt == _render(templates.variants[fmt][0].inputs, raw, "test")


def test_builtin_few_shot_uses_validation_exemplars_and_delimiters():
    examples = make_suite("builtin").load(None, limit=2, shots=2)
    p = examples[0].prompt
    assert p.startswith("Q: ") and p.endswith("\nA:") and p.count("\nA: ") == 2
    test_questions = {r.inputs for r in generate(BUILTIN_HELD_OUT_TASKS[0], "test", 2, 0)}
    shots = generate(BUILTIN_HELD_OUT_TASKS[0], "validation", 2, 0)
    assert all(s.inputs in p for s in shots) and not any(s.inputs in test_questions for s in shots)


def test_builtin_scores():
    examples = make_suite("builtin").load(None, limit=20)
    assert run_suite("builtin", GoldPredictor(examples), None, limit=20)["score"] == 100.0
    result = run_suite("builtin", FixedPredictor(" Yes\nmore"), None, limit=20)
    want = 100.0 * sum(r.targets == "Yes" for r in generate("anagram_check", "test", 20, 0)) / 20
    assert result["tasks"]["anagram_check"] == pytest.approx(want)
    assert result["tasks"]["modular_arithmetic"] == 0.0
    assert result["score"] == pytest.approx(want / len(BUILTIN_HELD_OUT_TASKS))
    assert run_suite("builtin", EchoPredictor(), None, limit=20)["score"] < 10.0
    assert 0.0 < result["chance"] < 50.0


def test_builtin_rejects_training_tasks():
    with pytest.raises(FlanctlError, match="not a held-out built-in task"):
        make_suite("builtin", builtin_tasks=["parity"]).load(None, limit=2)
    result = run_suite("builtin", FixedPredictor("No"), None, limit=4, builtin_tasks=["anagram_check"])
    assert list(result["tasks"]) == ["anagram_check"]


def test_catalog_builtin_chance_is_the_one_computed_from_the_options():
    from flanctl.catalog.suites import SUITES

    suite = make_suite("builtin")
    assert SUITES["builtin"].chance == pytest.approx(suite.chance_level(suite.load(None)))


# ----------------------------------------------------------------------------- builtin-cot


def test_builtin_cot_prompts_are_the_training_cot_template_variant_0():
    from flanctl.data.templates import load_templates, _render

    cot = load_templates().variants["cot"][0]
    examples = make_suite("builtin-cot").load(None, limit=2)
    assert {e.task for e in examples} == set(BUILTIN_HELD_OUT_TASKS)
    for task in BUILTIN_HELD_OUT_TASKS:
        ex = [e for e in examples if e.task == task][0]
        raw = generate(task, "test", 1, 0)[0]
        assert ex.prompt == _render(cot.inputs, raw, "test")
        assert "OPTIONS" not in ex.prompt and ex.prompt.endswith("A: Let's think step by step.")
        assert ex.golds == (raw.targets,) and ex.chance == (1 / len(raw.options) if raw.options else 0.0)


def test_builtin_cot_few_shot_exemplars_carry_rationale_and_answer():
    examples = make_suite("builtin-cot").load(None, limit=1, shots=2)
    shots = generate(BUILTIN_HELD_OUT_TASKS[0], "validation", 2, 0)
    p = examples[0].prompt
    for s in shots:
        assert f"Q: {s.inputs}\nA: Let's think step by step. {s.rationale} So the answer is {s.answer}." in p
    assert p.count("\n\n") >= 2 and p.endswith("A: Let's think step by step.")


def test_builtin_cot_reads_the_answer_after_the_phrase_and_always_generates():
    examples = make_suite("builtin-cot").load(None, limit=10)
    gold = GoldPredictor(examples, answer_format=" Some reasoning. So the answer is {}.\nQ: next")
    result = run_suite("builtin-cot", gold, None, limit=10, method="loglikelihood")
    assert result["score"] == 100.0 and result["settings"]["method"] == "generate" and result["settings"]["cot"]
    # reasoning that names the answer but never concludes is read by its first line: wrong here
    result = run_suite("builtin-cot", GoldPredictor(examples, answer_format=" I think about {} a lot."), None, limit=10)
    assert result["score"] == 0.0
    # an answer without the phrase is read directly
    assert run_suite("builtin-cot", GoldPredictor(examples, answer_format=" {}"), None, limit=10)["score"] == 100.0
    assert run_suite("builtin-cot", EchoPredictor(), None, limit=10)["score"] < 10.0


@pytest.mark.parametrize("suite", ["builtin", "builtin-cot"])
def test_few_shot_exemplars_never_state_the_fact_asked(suite):
    # World tasks draw validation and test questions from the same half of the world: an
    # exemplar about the same person and relation would hand the model the answer.
    examples = make_suite(suite).load(None, limit=25, shots=2)
    for ex in (e for e in examples if e.task == "recall_trade"):
        raw = generate("recall_trade", "test", 25, 0)[int(ex.id.rsplit("-", 1)[1])]
        name = raw.rationale.split(" works as")[0]  # "<name> works as a <trade>."
        assert ex.prompt.count(name) == 1  # only in the question asked
        assert raw.rationale not in ex.prompt and ex.prompt.count("Q: ") == 3
