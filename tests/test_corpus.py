"""The built-in pretraining corpus (issue 16): deterministic per seed, plain prose, facts of its world."""

from __future__ import annotations

import re

from flanctl.data.corpus import World, generate_corpus


def test_corpus_is_deterministic_per_seed():
    a = generate_corpus(300, seed=7)
    assert a == generate_corpus(300, seed=7)
    assert a[:50] == generate_corpus(50, seed=7)  # a document does not depend on how many are asked for
    assert a != generate_corpus(300, seed=8)
    assert len(set(a)) > 250


def test_corpus_is_prose_without_instruction_or_question_formats():
    docs = generate_corpus(500, seed=0)
    text = "\n".join(docs)
    assert "?" not in text
    for marker in ("Question:", "Answer:", "Q:", "A:", "Options:", "Input:", "Output:"):
        assert marker not in text
    assert all(d.strip() and d.rstrip().endswith(".") for d in docs)


def test_corpus_carries_the_worlds_facts_and_written_out_procedures():
    world = World(0)
    text = "\n".join(generate_corpus(2000, seed=0))
    people = [p for p in world.people if f"{p['name']} {p['family']} lives in {p['town']}" in text]
    assert len(people) > 0.8 * len(world.people)  # nearly everyone's home town is stated somewhere
    for t in world.towns:
        assert f"{t['name']} was founded in {t['founded']}." in text
    for proc in ("Counting up from", "Sorted alphabetically", "times", "The day after", "is spelled"):
        assert proc in text
    for a, b, s in re.findall(r"Adding (\d+) to (\d+) gives (-?\d+)", text):
        assert int(a) + int(b) == int(s)
    for w, spelled in re.findall(r"The word (\w+) is spelled ([\w-]+)\.", text):
        assert spelled.replace("-", "") == w


def test_corpus_source_realizes_as_one_text_task(tmp_path):
    from flanctl.data.mixture import realize
    from flanctl.spec.loader import load_spec

    p = tmp_path / "s.yaml"
    p.write_text("apiVersion: flanctl/v1\nmodel: {family: palm, size: tiny}\nmixture:\n  collections:\n"
                 "    - {name: corpus, proportion: 1, cap: 40, source: {kind: builtin, path: corpus}}\n"
                 "train: {objective: causal_lm}\n")
    spec = load_spec(p).spec
    [task] = realize(spec, tmp_path).tasks
    assert task.text and task.size == 40
    assert [e.inputs for e in task.load()] == generate_corpus(40, seed=0)
