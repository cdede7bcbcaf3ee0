"""The suite registry: one home for name -> suite class (or group) and its catalog facts."""

import inspect
import re
import typing
from pathlib import Path

import pytest

from flanctl.catalog.suites import HEADLINE_SUITES, SUITES as FACTS
from flanctl.errors import FlanctlError
from flanctl.evals import runner
from reference_predictors import FixedPredictor
from flanctl.evals.runner import run_suite, score_predictions
from flanctl.evals.suites import HELD_OUT_SIX, REGISTRY, SUITE_NAMES, SuiteEntry, SuiteGroup, expand, lookup, make_suite
from flanctl.evals.suites.base import EvalExample, Suite

FIX = Path(__file__).parent / "fixtures" / "evals"


def test_spec_schema_lists_exactly_the_registry_names():
    # The spec room may not import the evals room, so its Literal is a copy: this keeps it honest.
    from flanctl.spec.models import SuiteName

    assert set(typing.get_args(SuiteName)) == set(SUITE_NAMES)


def test_registry_and_catalog_hold_the_same_suites():
    assert set(REGISTRY) == set(FACTS)
    for name, entry in REGISTRY.items():
        assert entry.name == name and entry.facts is FACTS[name]
        if isinstance(entry, SuiteEntry):
            assert entry.cls.name == name and issubclass(entry.cls, Suite) and not FACTS[name].members
        else:
            assert entry.members == FACTS[name].members and all(isinstance(REGISTRY[m], SuiteEntry) for m in entry.members)


def test_flan_held_out_is_a_group_of_the_six_paper_suites():
    group = lookup("flan-held-out")
    assert isinstance(group, SuiteGroup) and group.members == HELD_OUT_SIX == HEADLINE_SUITES
    assert expand(["mmlu", "flan-held-out", "builtin"]) == ["mmlu", "mmlu-cot", "bbh", "bbh-cot", "tydiqa", "mgsm", "builtin"]
    with pytest.raises(FlanctlError, match="flan-held-out is a group of suites"):
        make_suite("flan-held-out")
    with pytest.raises(FlanctlError, match="unknown suite 'nope'; choose from mmlu, "):
        expand(["nope"])


def test_the_runner_asks_the_registry_not_suite_names():
    source = inspect.getsource(runner)
    quoted = [name for name in SUITE_NAMES if re.search(rf"[\"']{re.escape(name)}[\"']", source)]
    assert quoted == [], f"runner.py compares suite names: {quoted}"
    assert "hasattr" not in source and "startswith(" not in source


def test_each_suite_reads_the_options_it_declares():
    mmlu = make_suite("mmlu", method="loglikelihood", cot_prompts="x.json", mmlu_split="test", builtin_tasks=["anagram_check"])
    assert (mmlu.method, str(mmlu.cot_prompts_path), mmlu.split) == ("loglikelihood", "x.json", "test")
    assert make_suite("builtin", builtin_tasks=["anagram_check"], mmlu_split="test").tasks == ["anagram_check"]
    assert make_suite("bbh", method="generate", cot_prompts="x.json").name == "bbh"  # options it does not take are ignored
    assert make_suite("mmlu").methods == ("generate", "loglikelihood") and make_suite("tydiqa").methods == ("generate",)
    with pytest.raises(FlanctlError, match=r"suite tydiqa cannot be scored with method 'loglikelihood': it takes generate"):
        run_suite("tydiqa", FixedPredictor("x"), FIX, method="loglikelihood")


class Echo(Suite):
    """A newcomer's suite: one module, one registry line."""

    name = "echo"
    max_new_tokens = 4

    def load(self, data_dir, limit=None, shots=None):
        return [EvalExample(id=f"echo-{i}", task="echo", prompt=f"say {i}", target=str(i), golds=(str(i),)) for i in range(limit or 3)]

    def extract(self, text, example):
        return text.strip()


def test_a_new_suite_needs_one_class_and_one_registry_line(monkeypatch, tmp_path):
    from flanctl.catalog.suites import PaperReference, SuiteFacts

    monkeypatch.setitem(REGISTRY, "echo", SuiteEntry("echo", Echo))
    monkeypatch.setitem(FACTS, "echo", SuiteFacts("echo", "says a number", 0, False, "exact_match", {}, 1, 0.0,
                                                  paper={None: PaperReference("nowhere", {"x": 1.0})}))
    result = run_suite("echo", FixedPredictor(" 1"), None)
    assert result["score"] == pytest.approx(100 / 3) and result["paper"] == {"x": 1.0} and result["paper_source"] == "nowhere"
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "echo-2", "prediction": "2"}\n')
    assert score_predictions("echo", preds, None)["tasks"] == {"echo": pytest.approx(100 / 3)}


def test_a_headline_over_no_headline_task_is_no_data_not_zero():
    """TyDiQA's headline excludes English: a data dir with only English has nothing to average."""
    import pytest

    from flanctl.errors import FlanctlError
    from flanctl.evals.suites import make_suite

    tydiqa = make_suite("tydiqa")
    with pytest.raises(FlanctlError, match="tydiqa: no data for the headline"):
        tydiqa.headline({"en": 80.0})
    assert tydiqa.headline({"en": 80.0, "fi": 40.0}) == 40.0
