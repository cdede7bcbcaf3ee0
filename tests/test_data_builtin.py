"""Built-in procedural tasks: one generator per catalog name, deterministic, disjoint splits."""

from __future__ import annotations

import pytest

from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS, BUILTIN_TASKS, BUILTIN_TRAIN_TASKS
from flanctl.data import builtin_tasks
from flanctl.errors import FlanctlError


def test_every_catalog_task_has_a_generator_and_no_more():
    assert set(builtin_tasks.GENERATORS) == set(BUILTIN_TASKS)
    assert len(BUILTIN_TRAIN_TASKS) >= 16
    assert 3 <= len(BUILTIN_HELD_OUT_TASKS) <= 16


@pytest.mark.parametrize("task", sorted(BUILTIN_TASKS))
def test_generator_is_deterministic_with_disjoint_splits(task):
    a = builtin_tasks.generate(task, "train", 120, seed=3)
    assert a == builtin_tasks.generate(task, "train", 120, seed=3)
    assert [e.inputs for e in builtin_tasks.generate(task, "train", 120, seed=4)] != [e.inputs for e in a]
    splits = {s: {e.inputs for e in builtin_tasks.generate(task, s, 80, seed=s2)} for s, s2 in (("train", 1), ("validation", 2), ("test", 3))}
    if task in builtin_tasks.UNSPLIT_TASKS:  # world tasks: every split asks about the task's half of the world
        answers = {s: {e.answer for e in builtin_tasks.generate(task, s, 80, seed=s2)} for s, s2 in (("train", 1), ("test", 3))}
        assert BUILTIN_TASKS[task].category == "world knowledge" and answers["train"] & answers["test"]
    else:
        assert not splits["train"] & splits["validation"]
        assert not splits["train"] & splits["test"]
        assert not splits["validation"] & splits["test"]
    has_options = BUILTIN_TASKS[task].has_options
    for ex in a:
        assert ex.task == task
        limit = 16 if task in BUILTIN_HELD_OUT_TASKS else 40  # held-out answers: a few words, exact match
        assert ex.answer == ex.targets and 0 < len(ex.answer.encode()) <= limit, ex
        assert ex.rationale and ex.answer not in ("", None)
        if has_options:
            assert ex.options and ex.answer in ex.options, ex
        else:
            assert ex.options is None


def test_answers_are_right_on_checkable_tasks():
    for ex in builtin_tasks.generate("multistep_arithmetic", "test", 50, seed=0):
        expr = ex.inputs.removeprefix("Compute ").rstrip(".")
        assert str(eval(expr, {"__builtins__": {}})) == ex.answer  # our own generated arithmetic only
    for ex in builtin_tasks.generate("word_sorting", "test", 50, seed=0):
        words = ex.inputs.split(": ", 1)[1].rstrip(".").split(", ")
        assert ex.answer == " ".join(sorted(words))
    for ex in builtin_tasks.generate("letter_counting", "test", 50, seed=0):
        if ex.inputs.startswith("Does the word"):  # the Yes/No variant
            word, letter = ex.inputs.split("'")[1], ex.inputs.split("'")[3]
            assert ex.answer == ("Yes" if letter in word else "No")
            continue
        letter, word = ex.inputs.split("'")[1], ex.inputs.split("'")[3]
        assert ex.answer == str(word.count(letter))
    for ex in builtin_tasks.generate("comparisons", "test", 50, seed=0):
        a, b = (int(x) for x in ex.inputs.replace("?", "").replace(":", "").split() if x.isdigit())
        assert ex.answer == (("Yes" if a > b else "No") if ex.inputs.startswith("Is ") else str(max(a, b)))
    for ex in builtin_tasks.generate("modular_arithmetic", "test", 50, seed=0):
        expr, m = ex.inputs.removeprefix("What is ").rstrip("?").split(" mod ")
        assert str(eval(expr, {"__builtins__": {}}) % int(m)) == ex.answer
    ordinals = ("first", "second", "third", "fourth", "fifth")
    for ex in builtin_tasks.generate("list_position", "test", 50, seed=0):
        entries = ex.inputs.removeprefix("In the list ").split(", which entry comes ")[0].split("; ")
        where = ex.inputs.rsplit(" ", 1)[1].rstrip("?")
        assert ex.answer == (entries[-1] if where == "last" else entries[ordinals.index(where)])
        assert ex.answer in ex.options and set(ex.options) <= set(entries)
    kinds = set()
    for ex in builtin_tasks.generate("mention_pick", "test", 80, seed=0):
        said = ex.inputs.split(" yesterday.")[0]
        mentioned = said.split(" ", 2)[2]  # "<Name> <verb> <thing>"
        assert mentioned == ex.answer and ex.options.count(mentioned) == 1
        kinds.add("person" if ex.inputs.split(". ")[1].startswith("Who") else "thing")
    assert kinds == {"person", "thing"}  # the answer's form varies, so only copying generalises


def test_both_answers_of_yes_no_tasks_occur():
    for task in ("navigation", "anagram_check", "boolean_expressions", "parity", "comparisons", "letter_counting", "list_operations"):
        two_way = [e for e in builtin_tasks.generate(task, "train", 200, seed=0) if e.options and len(e.options) == 2]
        assert len({e.answer for e in two_way if e.options in (["Yes", "No"], ["True", "False"])}) == 2, task


def test_unknown_task_and_split_are_one_line_errors():
    with pytest.raises(FlanctlError, match="unknown built-in task 'nope'"):
        builtin_tasks.generate("nope", "train", 1)
    with pytest.raises(FlanctlError, match="unknown split 'dev'"):
        builtin_tasks.generate("parity", "dev", 1)
