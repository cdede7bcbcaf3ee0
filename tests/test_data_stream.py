"""The training stream: determinism, exact resume, sharding, packing isolation, rates, cache."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from flanctl.data import build_train_stream
from flanctl.data.mixture import realize
from flanctl.data.stream import build_example_dataset
from flanctl.data.tokenized import tokenize_tasks
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.errors import FlanctlError
from flanctl.spec.models import Spec

TOK = ByteTokenizer()
FEW = ["parity", "spelling", "comparisons", "list_operations", "swap_tracking"]


def make_spec(tmp_path, collections=None, family="palm", batch=4, packing=True, **mix) -> Spec:
    collections = collections or [{"name": "builtin", "proportion": 1, "cap": 60, "tasks": FEW,
                                   "templates": {"zero_shot_opts": 0.3, "zero_shot_noopts": 0.3, "few_shot_opts": 0.1, "few_shot_noopts": 0.1, "cot": 0.2}}]
    mixture = {"collections": collections, "inputs_length": 192, "targets_length": 48, "packing": packing,
               "few_shot": {"min_shots": 1, "max_shots": 2}, "cache_dir": str(tmp_path / "cache"), **mix}
    return Spec.model_validate({"model": {"family": family}, "mixture": mixture, "train": {"batch_size": batch, "steps": 10}})


def take(stream, n):
    return [next(stream) for _ in range(n)]


def same(a, b):
    return len(a) == len(b) and all(x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_decoder_batches_have_the_seam_keys_and_shapes(tmp_path):
    spec = make_spec(tmp_path)
    b = next(build_train_stream(spec, tmp_path, TOK))
    assert set(b) == {"token_ids", "segment_ids", "positions", "targets", "loss_mask"}
    for v in b.values():
        assert v.shape == (4, 240)
    assert b["loss_mask"].dtype == np.float32 and b["token_ids"].dtype == np.int32


def test_stream_is_deterministic_and_seed_dependent(tmp_path):
    spec = make_spec(tmp_path)
    a = take(build_train_stream(spec, tmp_path, TOK), 4)
    assert same(a, take(build_train_stream(spec, tmp_path, TOK), 4))
    other = make_spec(tmp_path, seed=1)
    assert not same(a, take(build_train_stream(other, tmp_path, TOK), 4))


def test_resume_from_saved_state_gives_exactly_the_same_batches(tmp_path):
    spec = make_spec(tmp_path)
    s = build_train_stream(spec, tmp_path, TOK)
    take(s, 3)
    state = json.loads(json.dumps(s.get_state()))  # what a checkpoint stores must survive JSON
    expected = take(s, 5)
    resumed = build_train_stream(spec, tmp_path, TOK)
    resumed.set_state(state)
    assert same(take(resumed, 5), expected)
    with pytest.raises(FlanctlError, match="different mixture"):
        build_train_stream(make_spec(tmp_path, seed=5), tmp_path, TOK).set_state(state)


def test_two_processes_partition_the_example_stream(tmp_path):
    spec = make_spec(tmp_path)
    mixture = realize(spec, tmp_path)
    tokenized = tokenize_tasks(mixture, TOK, spec.mixture, tmp_path)
    rates = [t.rate for t in mixture.tasks]
    whole = build_example_dataset(tokenized, rates, 0, 0, 1)
    p0 = build_example_dataset(tokenized, rates, 0, 0, 2)
    p1 = build_example_dataset(tokenized, rates, 0, 1, 2)
    for i in range(300):
        a, b = whole[2 * i], p0[i]
        c, d = whole[2 * i + 1], p1[i]
        assert (a["task"], a["index"]) == (b["task"], b["index"]) and np.array_equal(a["inputs"], b["inputs"])
        assert (c["task"], c["index"]) == (d["task"], d["index"]) and np.array_equal(c["inputs"], d["inputs"])
    # and the packed per-process streams are half batches that differ from each other
    s0 = build_train_stream(spec, tmp_path, TOK, process_index=0, process_count=2)
    s1 = build_train_stream(spec, tmp_path, TOK, process_index=1, process_count=2)
    b0, b1 = next(s0), next(s1)
    assert b0["token_ids"].shape == (2, 240) and not np.array_equal(b0["token_ids"], b1["token_ids"])
    with pytest.raises(FlanctlError, match="does not divide"):
        build_train_stream(make_spec(tmp_path, batch=3), tmp_path, TOK, process_index=0, process_count=2)


def test_packed_segments_never_cross_examples(tmp_path):
    spec = make_spec(tmp_path, batch=8)
    tok = TOK
    for b in take(build_train_stream(spec, tmp_path, tok), 3):
        for r in range(b["token_ids"].shape[0]):
            seg, pos, ids, tgt, mask = (b[k][r] for k in ("segment_ids", "positions", "token_ids", "targets", "loss_mask"))
            assert (mask[seg == 0] == 0).all() and (ids[seg == 0] == 0).all()
            ids_present = sorted(set(seg[seg > 0].tolist()))
            assert ids_present == list(range(1, len(ids_present) + 1))
            for s in ids_present:
                where = np.flatnonzero(seg == s)
                assert (np.diff(where) == 1).all()  # contiguous
                assert (pos[where] == np.arange(len(where))).all()  # positions restart at 0
                assert ids[where[0]] == tok.bos_id and tgt[where[-1]] == tok.eos_id
                # next-token targets stay inside the segment: target j is token j+1 of the same example
                assert np.array_equal(tgt[where[:-1]], ids[where[1:]])
                m = mask[where]
                first = int(np.argmax(m > 0))
                assert m[first:].all() and not m[:first].any()  # loss on the target part only, eos included
                assert 0 < first < len(where)


def test_encoder_decoder_batches(tmp_path):
    spec = make_spec(tmp_path, family="t5")
    b = next(build_train_stream(spec, tmp_path, TOK))
    assert {k: v.shape for k, v in b.items()} == {
        "encoder_token_ids": (4, 192), "encoder_segment_ids": (4, 192), "encoder_positions": (4, 192),
        "decoder_token_ids": (4, 48), "decoder_segment_ids": (4, 48), "decoder_positions": (4, 48),
        "targets": (4, 48), "loss_mask": (4, 48)}
    for r in range(4):
        for s in set(b["decoder_segment_ids"][r].tolist()) - {0}:
            d = np.flatnonzero(b["decoder_segment_ids"][r] == s)
            e = np.flatnonzero(b["encoder_segment_ids"][r] == s)
            assert len(e) > 0 and b["encoder_token_ids"][r][e[-1]] == TOK.eos_id
            assert b["decoder_token_ids"][r][d[0]] == 0  # decoder starts from pad, as T5 does
            assert np.array_equal(b["decoder_token_ids"][r][d[1:]], b["targets"][r][d[:-1]])
            assert b["targets"][r][d[-1]] == TOK.eos_id and (b["loss_mask"][r][d] == 1).all()


def test_no_packing_gives_one_example_per_row(tmp_path):
    b = next(build_train_stream(make_spec(tmp_path, packing=False), tmp_path, TOK))
    assert set(np.unique(b["segment_ids"]).tolist()) == {0, 1}
    assert (b["segment_ids"][:, 0] == 1).all()


def _local_task(tmp_path, name, n):
    p = tmp_path / f"{name}.jsonl"
    p.write_text("".join(json.dumps({"inputs": f"{name} question {i}", "targets": f"a{i}"}) + "\n" for i in range(n)))
    return {"name": name, "source": {"kind": "local", "path": p.name}}


def test_rates_follow_caps_proportions_and_temperature(tmp_path):
    colls = [
        {"name": "mine", "proportion": 0.7, "cap": 1000,
         "user_tasks": [_local_task(tmp_path, "small", 50), _local_task(tmp_path, "mid", 500), _local_task(tmp_path, "big", 3000)]},
        {"name": "builtin", "proportion": 0.3, "cap": 40, "tasks": ["parity", "spelling"]},
    ]
    spec = make_spec(tmp_path, collections=colls)
    mixture = realize(spec, tmp_path)
    sizes = {t.name: t.size for t in mixture.tasks}
    assert sizes == {"small": 50, "mid": 500, "big": 1000, "parity": 40, "spelling": 40}  # capped at 1000
    expected = {"small": 0.7 * 50 / 1550, "mid": 0.7 * 500 / 1550, "big": 0.7 * 1000 / 1550, "parity": 0.15, "spelling": 0.15}
    for t in mixture.tasks:
        assert t.rate == pytest.approx(expected[t.name])
    tokenized = tokenize_tasks(mixture, TOK, spec.mixture, tmp_path)
    ds = build_example_dataset(tokenized, [t.rate for t in mixture.tasks], 0, 0, 1)
    n = 20_000
    drawn = [(tokenized[el["task"]].name, el["index"]) for el in (ds[i] for i in range(n))]
    counts = Counter(name for name, _ in drawn)
    for name, rate in expected.items():
        assert counts[name] / n == pytest.approx(rate, abs=0.005)
    # the capped task cycles through exactly its 1000 kept examples, each once per epoch
    big = [i for name, i in drawn if name == "big"]
    assert sorted(big[:1000]) == list(range(1000))

    hot = realize(make_spec(tmp_path, collections=colls, temperature=2.0), tmp_path)
    w = {"small": 50 ** 0.5, "mid": 500 ** 0.5, "big": 1000 ** 0.5}
    for t in hot.tasks[:3]:
        assert t.rate == pytest.approx(0.7 * w[t.name] / sum(w.values()))


def test_proportions_are_normalised_or_refused(tmp_path):
    colls = [{"name": "builtin", "proportion": 2, "tasks": ["parity"]}, {"name": "b2", "proportion": 2, "user_tasks": [_local_task(tmp_path, "x", 5)]}]
    m = realize(make_spec(tmp_path, collections=colls), tmp_path)
    assert m.proportions == {"builtin": 0.5, "b2": 0.5} and "normalised" in m.notes[0]
    with pytest.raises(FlanctlError, match="set mixture.normalize"):
        realize(make_spec(tmp_path, collections=colls, normalize=False), tmp_path)
    with pytest.raises(FlanctlError, match="unknown built-in task"):
        realize(make_spec(tmp_path, collections=[{"name": "builtin", "proportion": 1, "tasks": ["nope"]}]), tmp_path)
    with pytest.raises(FlanctlError, match="held out for the builtin eval suite"):
        realize(make_spec(tmp_path, collections=[{"name": "builtin", "proportion": 1, "tasks": ["parity", "anagram_check"]}]), tmp_path)
    on_purpose = [{"name": "mine", "proportion": 1, "user_tasks": [{"name": "anagrams", "source": {"kind": "builtin", "path": "anagram_check"}}]}]
    (task,) = realize(make_spec(tmp_path, collections=on_purpose), tmp_path).tasks
    assert (task.name, task.size) == ("anagrams", 1000)  # a generated user task defaults to 1,000 examples
    assert {e.task for e in task.load()} == {"anagrams"}


def test_cache_is_reused_and_a_crash_mid_build_keeps_finished_shards(tmp_path, monkeypatch):
    import flanctl.data.tokenized as tokmod

    spec = make_spec(tmp_path)
    mixture = realize(spec, tmp_path)
    real = tokmod.render_task
    built = []

    def crashing(task, *a, **k):
        if len(built) == 2:
            raise KeyboardInterrupt("simulated crash while building the third task")
        built.append(task.name)
        return real(task, *a, **k)

    monkeypatch.setattr(tokmod, "render_task", crashing)
    with pytest.raises(KeyboardInterrupt):
        tokenize_tasks(mixture, TOK, spec.mixture, tmp_path)
    shards = sorted(p.name for p in (tmp_path / "cache" / "tokenized").iterdir())
    assert len(shards) == 2 and all(s.endswith(".npz") and not s.startswith(".") for s in shards)

    monkeypatch.setattr(tokmod, "render_task", real)
    again = tokenize_tasks(realize(spec, tmp_path), TOK, spec.mixture, tmp_path)
    assert [t.from_cache for t in again] == [True, True, False, False, False]
    third = tokenize_tasks(realize(spec, tmp_path), TOK, spec.mixture, tmp_path)
    assert all(t.from_cache for t in third)
    fresh = tokenize_tasks(realize(spec, tmp_path), TOK, spec.mixture, tmp_path, use_cache=False)
    for a, b in zip(third, fresh):
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.tg_off, b.tg_off)
    # a different length is a different key: nothing reused
    longer = make_spec(tmp_path, targets_length=64)
    assert not any(t.from_cache for t in tokenize_tasks(realize(longer, tmp_path), TOK, longer.mixture, tmp_path))


def test_truncation_is_counted(tmp_path):
    colls = [{"name": "mine", "proportion": 1, "user_tasks": [_local_task(tmp_path, "long", 10)]}]
    spec = make_spec(tmp_path, collections=colls, inputs_length=8, targets_length=2)
    (tt,) = tokenize_tasks(realize(spec, tmp_path), TOK, spec.mixture, tmp_path)
    assert tt.truncated_inputs == 10 and tt.truncated_targets == 10
    assert all(len(tt.example(i)[0]) == 7 and len(tt.example(i)[1]) == 1 for i in range(10))
    assert tt.tokens_cut > 0


def test_flan_collection_split_by_task_column_without_mmlu_tasks(tmp_path):
    rows = [{"inputs": f"q{i}", "targets": f"a{i}", "task_name": name}
            for name, n in (("task001_qa", 30), ("task002_mmlu_answer_generation_physics", 20), ("task003_summary", 8)) for i in range(n)]
    (tmp_path / "niv2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    colls = [{"name": "niv2", "proportion": 1, "cap": 10,
              "source": {"kind": "local", "path": "niv2.jsonl", "columns": {"task": "task_name"}}}]
    mixture = realize(make_spec(tmp_path, collections=colls), tmp_path)
    assert {t.name: (t.available, t.size) for t in mixture.tasks} == {"task001_qa": (30, 10), "task003_summary": (8, 8)}
    assert [len(t.load()) for t in mixture.tasks] == [10, 8]
    assert sum(t.rate for t in mixture.tasks) == pytest.approx(1.0)


def test_a_task_can_bring_its_own_templates_file(tmp_path):
    from flanctl.data.stats import preview_examples

    (tmp_path / "mine.yaml").write_text('templates:\n  zero_shot_noopts:\n    - {inputs: "TASK: {{ inputs }} =>", targets: " {{ targets }}"}\n')
    task = _local_task(tmp_path, "own", 5)
    task["templates"] = "mine.yaml"
    spec = make_spec(tmp_path, collections=[{"name": "mine", "proportion": 1, "user_tasks": [task],
                                              "templates": {"zero_shot_noopts": 1, "zero_shot_opts": 0, "few_shot_opts": 0, "few_shot_noopts": 0}}])
    shown = preview_examples(spec, tmp_path, n=5, tokenizer=TOK)
    assert all(p["inputs"].startswith("TASK: own question") and p["inputs"].endswith(" =>") for p in shown)
    assert sorted(p["index"] for p in shown) == [0, 1, 2, 3, 4] and all(p["targets"].startswith(" a") for p in shown)
    (tmp_path / "mine.yaml").write_text('templates:\n  zero_shot_noopts:\n    - {inputs: "{{ inputs.__class__ }}", targets: "x"}\n')
    with pytest.raises(FlanctlError, match="template refused"):
        preview_examples(spec, tmp_path, n=1, tokenizer=TOK)
