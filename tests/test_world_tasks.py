"""The built-in world tasks (issue 16): closed-book questions about the pretraining corpus's world.

The world's people and towns are split in two halves. Finetuning tasks ask about the first
half only; the held-out `recall_*` tasks ask the same kinds of question about the other half,
whose facts only the corpus's prose states. These tests check that the answers are the world's
facts, that the corpus states every held-out fact, that no finetuning example asks about (or
answers with) a held-out fact, and that plan refuses a mixture that trains on a held-out task.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS, BUILTIN_TASKS, BUILTIN_TRAIN_TASKS
from flanctl.data.builtin_tasks import SPLITS, UNSPLIT_TASKS, generate
from flanctl.data.corpus import generate_corpus, the_world

WORLD_TRAIN = {"home_town": "town", "trade": "trade", "pet_kind": "pet", "favourite_colour": "colour", "friend": "friend",
               "sibling": "sibling", "town_river": "river", "town_goods": "goods"}
# More kinds of question about the finetuning half (no held-out counterpart): the task count of
# the scaling grid grows in these.
WORLD_MORE = ("family_name", "birth_year", "pet_name", "town_founded", "town_neighbour", "town_resident", "pet_owner",
              "river_town")
# ... and the held-out counterparts of four of them (person facts), about the other half.
WORLD_MORE_HELD_OUT = {"recall_birth_year": "birth_year", "recall_pet_name": "pet_name", "recall_pet_owner": "pet_owner",
                       "recall_town_resident": "town_resident"}
WORLD_HELD_OUT = {"recall_home_town": "town", "recall_trade": "trade", "recall_pet_kind": "pet", "recall_town_goods": "goods",
                  "recall_favourite_colour": "colour", "recall_friend": "friend", "recall_town_river": "river"}


def _entities():
    w = the_world()
    return {p["name"]: p for p in w.people} | {t["name"]: t for t in w.towns}


def _held_out_names() -> set[str]:
    w = the_world()
    return {p["name"] for p in w.people[1::2]} | {t["name"] for t in w.towns[1::2]}


def _subject(inputs: str) -> str:
    """The one person or town of the world a question asks about."""
    [subject] = set(_entities()) & set(re.findall(r"[A-Z][a-z]+", inputs))
    return subject


def test_world_tasks_are_in_the_catalog_on_the_right_side():
    assert set(WORLD_TRAIN) <= set(BUILTIN_TRAIN_TASKS)
    assert set(WORLD_HELD_OUT) <= set(BUILTIN_HELD_OUT_TASKS)
    assert set(WORLD_MORE) <= set(BUILTIN_TRAIN_TASKS) and set(WORLD_MORE_HELD_OUT) <= set(BUILTIN_HELD_OUT_TASKS)
    assert UNSPLIT_TASKS == set(WORLD_HELD_OUT) | set(WORLD_TRAIN) | set(WORLD_MORE) | set(WORLD_MORE_HELD_OUT)
    world = [*WORLD_TRAIN, *WORLD_HELD_OUT, *WORLD_MORE, *WORLD_MORE_HELD_OUT]
    assert {BUILTIN_TASKS[t].category for t in world} == {"world knowledge"}


@pytest.mark.parametrize("task", [*WORLD_TRAIN, *WORLD_HELD_OUT])
def test_answers_are_the_worlds_facts_about_the_right_half(task):
    held_out = task in WORLD_HELD_OUT
    attr = (WORLD_HELD_OUT | WORLD_TRAIN)[task]
    for ex in generate(task, "test" if held_out else "train", 60, seed=3):
        assert ex.targets in ex.options and len(set(ex.options)) == len(ex.options) == 4
        subject = _subject(ex.inputs)
        assert (subject in _held_out_names()) == held_out
        entity = _entities()[subject]
        assert ex.targets == entity[attr]
        if attr == "river":  # rivers are one per town: the options are the rivers of the question's half
            halves = {t["river"]: t["name"] in _held_out_names() for t in the_world().towns}
            assert all(halves[o] == held_out for o in ex.options), ex.options
        if task in ("friend", "recall_friend"):  # no distractor is a friend either way round
            for o in ex.options:
                if o != ex.targets:
                    assert _entities()[o]["friend"] != subject


def test_no_held_out_answer_is_a_finetuning_answer_read_backwards():
    """Friendship reads both ways: a held-out friend question whose answer is a finetuning-half
    person who names the subject as friend would be answered by a finetuning example. Such
    people are not asked about, and there is no held-out sibling task, since siblings always
    pair across the halves."""
    finetuning = {p["name"]: p for p in the_world().people[0::2]}
    asked = set()
    for ex in generate("recall_friend", "test", 400, seed=0):
        subject = _subject(ex.inputs)
        asked.add(subject)
        other = finetuning.get(ex.targets)
        assert other is None or other["friend"] != subject, (subject, ex.targets)
    skipped = {p["name"] for p in the_world().people[1::2]} - asked
    assert skipped == {p["name"] for p in the_world().people[1::2]
                       if p["friend"] in finetuning and finetuning[p["friend"]]["friend"] == p["name"]}
    assert all(p["sibling"] in finetuning for p in the_world().people[1::2] if "sibling" in p)
    assert "recall_sibling" not in BUILTIN_TASKS


def test_held_out_world_tasks_ask_about_their_whole_half_in_every_split():
    half = {p["name"] for p in the_world().people[1::2]}
    asked = {_subject(ex.inputs) for ex in generate("recall_pet_kind", "test", 400, seed=0)}
    assert asked == half  # not the 10% of questions a hash split would leave
    for split in SPLITS:
        assert generate("recall_trade", split, 5, seed=1)


def test_the_corpus_states_every_held_out_fact():
    text = "\n".join(generate_corpus(3000, seed=0))
    for p in the_world().people[1::2]:
        n = re.escape(p["name"])
        assert re.search(rf"{n} (keeps|owns) an? {p['pet']}|is the {p['pet']} of {n}\.", text), p["name"]
        assert re.search(rf"{n} lives in {p['town']}|{n} has made a home in {p['town']}|house of {n} stands in {p['town']}", text)
        assert re.search(rf"{n} (works as|earns a living as|is) an? {p['trade']}", text)
        assert re.search(rf"favourite colour of {n} is {p['colour']}|{n} likes {p['colour']} more|{n} always wears something {p['colour']}", text)
        f = re.escape(p["friend"])
        assert re.search(rf"{n} is a good friend of {f}|{n} and {f} are close friends|{n} visits {f}", text)
    for t in the_world().towns[1::2]:
        assert re.search(rf"{t['name']} (is known for|for) its {t['goods']}", text)
        assert re.search(rf"town of {t['name']} lies on the {t['river']}|The {t['river']} flows through {t['name']}", text)


def test_no_finetuning_example_asks_about_the_held_out_half():
    """Every training example's question is about the finetuning half, and no held-out
    person's home town, trade or pet, or held-out town's goods, is its answer."""
    held = _held_out_names()
    for task in BUILTIN_TRAIN_TASKS:
        for ex in generate(task, "train", 150, seed=0):
            names = set(_entities()) & set(re.findall(r"[A-Z][a-z]+", ex.inputs))
            if task in WORLD_TRAIN:
                assert _subject(ex.inputs) not in held, (task, ex.inputs)
            elif task in WORLD_MORE:  # about the finetuning half (a home or a nearest town may lie in the other)
                assert ex.targets not in held or task == "town_neighbour", (task, ex.targets)
                assert not names & held - {p["town"] for p in the_world().people[0::2]}, (task, ex.inputs)
            else:
                assert not names, (task, ex.inputs)  # procedural tasks never name the world


def test_plan_refuses_training_on_a_held_out_world_task_in_any_builtin_collection(tmp_path):
    (tmp_path / "leak.yaml").write_text(
        "model: {family: palm, size: tiny}\ntrain: {steps: 5, batch_size: 4}\nmixture:\n  collections:\n"
        "    - {name: world, proportion: 1, source: {kind: builtin, path: builtin}, tasks: [home_town, recall_pet_kind]}\n")
    res = subprocess.run([sys.executable, "-m", "flanctl.cli", "plan", "leak.yaml"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    [line] = res.stderr.splitlines()
    assert "tasks: recall_pet_kind is held out for the builtin eval suite" in line
    assert not (tmp_path / ".flanctl" / "plan.json").exists()


@pytest.mark.parametrize("task", [*WORLD_MORE, *WORLD_MORE_HELD_OUT])
def test_more_world_formats_answer_with_the_worlds_facts_about_their_half(task):
    held_out = task in WORLD_MORE_HELD_OUT
    kind = WORLD_MORE_HELD_OUT.get(task, task)
    w = the_world()
    people = {p["name"]: p for p in (w.people[1::2] if held_out else w.people[0::2])}
    towns = {t["name"]: t for t in (w.towns[1::2] if held_out else w.towns[0::2])}
    by_pet_name = {p["pet_name"]: p for p in w.people}
    by_river = {t["river"]: t for t in w.towns}
    asked = set()  # the person or town each question is about
    for ex in generate(task, "test" if held_out else "train", 200, seed=5):
        assert ex.targets in ex.options and len(set(ex.options)) == len(ex.options) == 4, ex
        words = set(re.findall(r"[A-Z][a-z]+", ex.inputs))
        if kind in ("family_name", "birth_year", "pet_name"):
            [name] = words & set(people)
            p = people[name]
            asked.add(name)
            assert ex.targets == str({"family_name": p["family"], "birth_year": p["born"], "pet_name": p["pet_name"]}[kind])
            if kind == "pet_name":
                assert p["pet"] in ex.inputs
            # every option is a value of the question's half: a held-out question never offers
            # a finetuning answer, which a model could rule out for having learnt it elsewhere
            key = {"family_name": "family", "birth_year": "born", "pet_name": "pet_name"}[kind]
            assert set(ex.options) <= {str(q[key]) for q in people.values()}, ex.options
        elif kind in ("town_founded", "town_neighbour"):
            [name] = words & set(towns)
            asked.add(name)
            assert ex.targets == str(towns[name]["founded" if kind == "town_founded" else "neighbour"])
        elif kind == "town_resident":  # a person of the half, the only one among the options who lives in the town
            [town] = words & {t["name"] for t in w.towns}
            asked.add(ex.targets)
            assert people[ex.targets]["town"] == town and set(ex.options) <= set(people)
            assert [o for o in ex.options if people[o]["town"] == town] == [ex.targets]
            # several people live in a town: the question names its candidates, so that it has
            # one answer also without the options (chain of thought, no-options templates)
            assert all(o in ex.inputs for o in ex.options)
        elif kind == "pet_owner":
            [pet_name] = words & set(by_pet_name)
            asked.add(ex.targets)
            assert by_pet_name[pet_name]["name"] == ex.targets and set(ex.options) <= set(people)
        else:
            [river] = [r for r in by_river if r in ex.inputs]
            asked.add(ex.targets)
            assert by_river[river]["name"] == ex.targets and set(ex.options) <= set(towns)
    # the task asks about its whole half, and only about it
    assert asked == (set(towns) if kind in ("town_founded", "town_neighbour", "river_town") else set(people))


def test_the_corpus_states_the_facts_the_more_world_formats_ask_for():
    text = "\n".join(generate_corpus(3000, seed=0))
    for p in the_world().people:  # the held-out half's birth years and pets' names too (recall_*)
        n = re.escape(p["name"])
        assert f"{p['name']} {p['family']}" in text
        assert re.search(rf"{n} (was born in|came into the world in) {p['born']}", text)
        assert re.search(rf"{n} (keeps|owns) an? {p['pet']} (called|named) {p['pet_name']}|{p['pet_name']} is the {p['pet']} of {n}\.", text)
    for t in the_world().towns[0::2]:
        assert re.search(rf"{t['name']} was founded in {t['founded']}|houses of {t['name']} were built in {t['founded']}", text)
        assert re.search(rf"nearest town to {t['name']} is {t['neighbour']}|From {t['name']} it is a short walk to {t['neighbour']}", text)
