"""Pre-rendered Flan 2022 rows (the submix dumps' format) as a first-class source.

Every file here is written by the test in the exact format of the public dumps: columns
`inputs, targets, task_source, task_name, template_type` with `zs_opt`, `zs_noopt`, `fs_opt`,
`fs_noopt`; few-shot rows carry their exemplars (joined with "\\n\\n\\n", as Flan's few-shot
templates join them). Parquet, JSONL and a datasets `save_to_disk` folder (what the hub gives).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flanctl.catalog.collections import COLLECTIONS, MMLU_DERIVED_EXAMPLES, is_mmlu_derived
from flanctl.data import build_train_stream
from flanctl.data.mixture import realize
from flanctl.data.stats import data_stats, preview_examples, realize_mixture
from flanctl.data.stream import build_example_dataset
from flanctl.data.tokenized import tokenize_tasks
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.spec.models import Spec

TOK = ByteTokenizer()
TYPES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
ROOT = Path(__file__).resolve().parents[1]


def flan_rows(tasks: dict[str, int], seed: int = 0, long_every: int = 0) -> list[dict]:
    """Rows in the dumps' format: per task name, that many rows, template types in turn."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, n in tasks.items():
        for i in range(n):
            tt = TYPES[i % 4]
            q = f"[{name}#{i}] What is {i} plus {len(name)}?"
            if tt.endswith("_opt"):
                q += "\nOPTIONS:\n- yes\n- no"
            if long_every and i % long_every == 0:
                q = "Read this. " + "lorem ipsum " * 40 + q
            if tt.startswith("fs"):
                shots = [f"[{name}#x{k}] What is {k} plus 1?\n\n{k + 1}" for k in range(int(rng.integers(2, 5)))]
                inputs = "\n\n\n".join(shots + [q])
            else:
                inputs = q
            rows.append({"inputs": inputs, "targets": str(i + len(name)), "task_source": "Flan2021",
                         "task_name": name, "template_type": tt})
    return rows


def write(rows: list[dict], path: Path, kind: str) -> Path:
    if kind == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path.with_suffix(".parquet"), row_group_size=37)
        return path.with_suffix(".parquet")
    if kind == "jsonl":
        path.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path.with_suffix(".jsonl")
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path), max_shard_size="20KB")
    return path


def make_spec(tmp_path, collections, family="palm", batch=4, **mix) -> Spec:
    mixture = {"collections": collections, "inputs_length": 160, "targets_length": 16,
               "cache_dir": str(tmp_path / "cache"), **mix}
    return Spec.model_validate({"model": {"family": family}, "mixture": mixture, "train": {"batch_size": batch, "steps": 10}})


TASKS = {"task001_qa": 40, "task002_summary": 12, "task664_mmmlu_answer_generation_abstract_algebra": 20, "task003_nli": 64}


@pytest.fixture(params=["parquet", "jsonl", "saved"])
def source_file(request, tmp_path):
    return write(flan_rows(TASKS), tmp_path / "niv2", request.param)


def test_rows_are_used_as_they_are_no_second_template(tmp_path, source_file):
    spec = make_spec(tmp_path, [{"name": "niv2", "proportion": 1, "source": {"kind": "local", "path": source_file.name}}],
                     inputs_length=1024)
    mixture = realize(spec, tmp_path)
    assert all(t.flan is not None for t in mixture.tasks)
    by_input = {r["inputs"]: r for r in flan_rows(TASKS)}
    shown = preview_examples(spec, tmp_path, n=40, tokenizer=TOK)
    for p in shown:
        row = by_input[p["inputs"]]  # exactly the row's prompt: no "Answer the question." wrapper, no new shots
        assert p["targets"] == row["targets"] and p["task"] == row["task_name"]
        assert p["format"] == f"{row['template_type']} (pre-rendered)"
    assert {p["format"].split()[0] for p in shown} == set(TYPES)


def test_tasks_and_caps_by_task_name_same_for_every_file_kind(tmp_path, source_file):
    # no columns given: the niv2 collection's catalog mapping (task: task_name) applies to the local copy
    spec = make_spec(tmp_path, [{"name": "niv2", "proportion": 1, "cap": 30, "source": {"kind": "local", "path": source_file.name}}])
    mixture = realize(spec, tmp_path)
    sizes = {t.name: (t.available, t.size) for t in mixture.tasks}
    assert sizes == {"task001_qa": (40, 30), "task002_summary": (12, 12), "task003_nli": (64, 30)}  # MMLU-derived task left out
    assert sum(t.rate for t in mixture.tasks) == pytest.approx(1.0)
    assert [len(t.load()) for t in mixture.tasks] == [30, 12, 30]
    assert {e.task for e in mixture.tasks[0].load()} == {"task001_qa"}


def test_hub_shaped_source_reads_the_same_rows(tmp_path, monkeypatch):
    import datasets

    import flanctl.data.sources as sources

    saved = write(flan_rows(TASKS), tmp_path / "hub", "saved")
    monkeypatch.setattr(sources, "_load_hub", lambda source: (datasets.load_from_disk(str(saved)), "fp-hub"))
    hub = make_spec(tmp_path, [{"name": "niv2", "proportion": 1, "cap": 30}])  # the catalog's default hub source
    local = make_spec(tmp_path, [{"name": "niv2", "proportion": 1, "cap": 30, "source": {"kind": "local", "path": "hub"}}])
    a, b = realize(hub, tmp_path), realize(local, tmp_path)
    assert [(t.name, t.size, t.source_kind) for t in a.tasks] == [(t.name, t.size, "hf") for t in b.tasks]
    ta, tb = tokenize_tasks(a, TOK, hub.mixture, tmp_path), tokenize_tasks(b, TOK, local.mixture, tmp_path)
    for x, y in zip(ta, tb):
        assert len(x) == len(y) and all(np.array_equal(x.example(i)[0], y.example(i)[0]) for i in range(len(x)))
    assert realize_mixture(hub, tmp_path) is None  # plan never touches the network


def test_template_types_select_rows_to_reach_the_mix(tmp_path):
    rows = flan_rows({"task001_qa": 400})
    write(rows, tmp_path / "muffin", "parquet")
    src = {"kind": "local", "path": "muffin.parquet"}
    zs = {"zero_shot_opts": 0, "zero_shot_noopts": 1, "few_shot_opts": 0, "few_shot_noopts": 0}
    spec = make_spec(tmp_path, [{"name": "muffin", "proportion": 1, "source": src, "templates": zs}])
    (task,) = realize(spec, tmp_path).tasks
    assert (task.available, task.size) == (100, 100)
    (tt,) = tokenize_tasks(realize(spec, tmp_path), TOK, spec.mixture, tmp_path)
    assert {tt.format_name(i) for i in range(len(tt))} == {"zs_noopt"}
    # a mix of 70 % zero-shot / 30 % few-shot under a cap: rows taken by type to reach it
    mix = {"zero_shot_opts": 0.35, "zero_shot_noopts": 0.35, "few_shot_opts": 0.15, "few_shot_noopts": 0.15}
    spec = make_spec(tmp_path, [{"name": "muffin", "proportion": 1, "cap": 200, "source": src, "templates": mix}])
    (tt,) = tokenize_tasks(realize(spec, tmp_path), TOK, spec.mixture, tmp_path)
    assert Counter(tt.format_name(i) for i in range(len(tt))) == {"zs_opt": 70, "zs_noopt": 70, "fs_opt": 30, "fs_noopt": 30}
    # a type short of its share gives the rest to the others
    mix = {"zero_shot_opts": 0.9, "zero_shot_noopts": 0.1, "few_shot_opts": 0, "few_shot_noopts": 0}
    spec = make_spec(tmp_path, [{"name": "muffin", "proportion": 1, "cap": 150, "source": src, "templates": mix}])
    (tt,) = tokenize_tasks(realize(spec, tmp_path), TOK, spec.mixture, tmp_path)
    assert Counter(tt.format_name(i) for i in range(len(tt))) == {"zs_opt": 100, "zs_noopt": 50}


def test_truncation_keeps_the_question(tmp_path):
    rows = flan_rows({"task001_qa": 24}, long_every=3)
    write(rows, tmp_path / "t0", "jsonl")
    spec = make_spec(tmp_path, [{"name": "t0_sf", "proportion": 1, "source": {"kind": "local", "path": "t0.jsonl"}}],
                     inputs_length=100)
    (tt,) = tokenize_tasks(realize(spec, tmp_path), TOK, spec.mixture, tmp_path)
    assert tt.truncated_inputs > 0 and tt.tokens_cut > 0
    by_target = {}
    for r in rows:
        by_target.setdefault(r["targets"], r)
    for i in range(len(tt)):
        inp, tgt = (TOK.decode(x.tolist()) for x in tt.example(i))
        row = by_target[tgt]
        question = row["inputs"].split("\n\n\n")[-1]
        assert len(tt.example(i)[0]) <= 99
        tail = question[-30:]
        assert inp.endswith(tail), (inp, row["inputs"])  # the question (and its options) always survive
        if row["template_type"].startswith("fs") and len(row["inputs"].encode()) > 99:
            # whole exemplars dropped, never a partial one: what is left is exemplars + the query
            blocks = inp.split("\n\n\n")
            assert all(b in row["inputs"].split("\n\n\n") for b in blocks[:-1])


def test_notes_and_catalog_facts(tmp_path):
    assert COLLECTIONS["dialog"].cap == 200_000
    assert all(is_mmlu_derived(n) for n in MMLU_DERIVED_EXAMPLES)
    assert not is_mmlu_derived("task1286_openbookqa_question_answering")
    rows = [{k: v for k, v in r.items() if k != "task_name"} for r in flan_rows({"task001_qa": 1200})]
    write(rows, tmp_path / "mine", "parquet")
    spec = make_spec(tmp_path, [{"name": "muffin", "proportion": 1, "source": {"kind": "local", "path": "mine.parquet"}}])
    m = realize(spec, tmp_path)
    assert [t.name for t in m.tasks] == ["muffin"] and any("no task column" in n for n in m.notes)
    realized = realize_mixture(spec, tmp_path)
    assert any("no task column" in n for n in realized["notes"])


def test_raw_sources_are_still_templated(tmp_path):
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps({"inputs": f"q{i}", "targets": f"a{i}"}) + "\n" for i in range(8)))
    zs = {"zero_shot_opts": 0, "zero_shot_noopts": 1, "few_shot_opts": 0, "few_shot_noopts": 0}
    spec = make_spec(tmp_path, [{"name": "mine", "proportion": 1, "templates": zs,
                                 "user_tasks": [{"name": "raw", "source": {"kind": "local", "path": "raw.jsonl"}}]}])
    (task,) = realize(spec, tmp_path).tasks
    assert task.flan is None
    shown = preview_examples(spec, tmp_path, n=4, tokenizer=TOK)
    assert all(p["format"] == "zero_shot_noopts" and p["inputs"] != f"q{p['index']}" for p in shown)
    # `format: raw` forces the template path even on a submix-shaped file
    write(flan_rows({"task001_qa": 8}), tmp_path / "sub", "jsonl")
    spec = make_spec(tmp_path, [{"name": "muffin", "proportion": 1, "source": {"kind": "local", "path": "sub.jsonl", "format": "raw"}}])
    assert all(t.flan is None for t in realize(spec, tmp_path).tasks)


def _collection(tmp_path):
    write(flan_rows({f"task{i:03d}_x": 30 + 7 * i for i in range(12)}), tmp_path / "niv2", "parquet")
    return [{"name": "niv2", "proportion": 1, "cap": 60, "source": {"kind": "local", "path": "niv2.parquet"}}]


def test_resumed_stream_continues_exactly(tmp_path):
    spec = make_spec(tmp_path, _collection(tmp_path))
    s = build_train_stream(spec, tmp_path, TOK)
    [next(s) for _ in range(3)]
    state = json.loads(json.dumps(s.get_state()))
    expected = [next(s) for _ in range(4)]
    resumed = build_train_stream(spec, tmp_path, TOK)
    resumed.set_state(state)
    for a, b in zip(expected, [next(resumed) for _ in range(4)]):
        assert all(np.array_equal(a[k], b[k]) for k in a)


_WORKER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    import flanctl.data.flan_source as fs, flanctl.data.flan_tokens as ft
    fs.UNIT_ROWS, ft.SHARD_ROWS = 64, 40  # many small shards, so that the two processes can share them
    from flanctl.data.mixture import realize
    from flanctl.data.tokenized import tokenize_tasks
    from flanctl.data.tokenizers import ByteTokenizer
    from flanctl.spec.models import Spec
    spec = Spec.model_validate(json.loads({spec!r}))
    p, n = int(sys.argv[1]), int(sys.argv[2])
    tts = tokenize_tasks(realize(spec, {base!r}), ByteTokenizer(), spec.mixture, {base!r}, process_index=p, process_count=n, workers=1)
    print(json.dumps(tts[0].built_by))
""")


def test_two_processes_tokenize_disjoint_halves_whose_union_is_the_one_process_stream(tmp_path):
    spec = make_spec(tmp_path, _collection(tmp_path))
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(root=str(ROOT), spec=spec.model_dump_json(), base=str(tmp_path)))
    env = {**os.environ, "FLANCTL_SHARD_WAIT": "120"}
    procs = [subprocess.Popen([sys.executable, str(script), str(p), "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for p in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    built = json.loads(outs[0][0].strip().splitlines()[-1])
    assert json.loads(outs[1][0].strip().splitlines()[-1]) == built  # both read the same shards
    assert set(built) == {"0", "1"} and min(built.values()) > 0  # each process built its own share

    # the union of the two processes' streams is exactly the one-process stream
    import flanctl.data.flan_source as fs
    import flanctl.data.flan_tokens as ft

    old = fs.UNIT_ROWS, ft.SHARD_ROWS
    fs.UNIT_ROWS, ft.SHARD_ROWS = 64, 40
    try:
        mixture = realize(spec, tmp_path)
        tokenized = tokenize_tasks(mixture, TOK, spec.mixture, tmp_path)  # every shard already there: nothing rebuilt
    finally:
        fs.UNIT_ROWS, ft.SHARD_ROWS = old
    rates = [t.rate for t in mixture.tasks]
    whole = build_example_dataset(tokenized, rates, 0, 0, 1)
    halves = [build_example_dataset(tokenized, rates, 0, p, 2) for p in (0, 1)]
    for i in range(400):
        for p in (0, 1):
            a, b = whole[2 * i + p], halves[p][i]
            assert (a["task"], a["index"]) == (b["task"], b["index"]) and np.array_equal(a["inputs"], b["inputs"])
    one = tokenize_tasks(mixture, TOK, spec.mixture.model_copy(update={"cache_dir": str(tmp_path / "alone")}), tmp_path)
    for x, y in zip(one, tokenized):
        assert len(x) == len(y) and all(np.array_equal(x.example(i)[1], y.example(i)[1]) for i in range(len(x)))


def test_parallel_workers_give_the_same_tokens_as_one(tmp_path, monkeypatch):
    import flanctl.data.flan_source as fs
    import flanctl.data.flan_tokens as ft

    monkeypatch.setattr(fs, "UNIT_ROWS", 64)
    monkeypatch.setattr(ft, "SHARD_ROWS", 40)
    spec = make_spec(tmp_path, _collection(tmp_path))
    mixture = realize(spec, tmp_path)
    serial = tokenize_tasks(mixture, TOK, spec.mixture.model_copy(update={"cache_dir": str(tmp_path / "one")}), tmp_path, workers=1)
    parallel = tokenize_tasks(mixture, TOK, spec.mixture.model_copy(update={"cache_dir": str(tmp_path / "two")}), tmp_path, workers=2)
    for x, y in zip(serial, parallel):
        assert len(x) == len(y) and x.tokens == y.tokens
        assert all(np.array_equal(x.example(i)[0], y.example(i)[0]) for i in range(len(x)))


def test_data_stats_and_plan_counts_agree(tmp_path):
    spec = make_spec(tmp_path, _collection(tmp_path))
    stats = data_stats(spec, tmp_path, tokenizer=TOK)
    realized = realize_mixture(spec, tmp_path)
    assert [(t["task"], t["count"]) for t in stats["tasks"]] == [(t["name"], t["count"]) for t in realized["tasks"]]
    assert stats["examples"] == sum(min(60, 30 + 7 * i) for i in range(12))


def test_streamed_hub_source_keeps_only_what_the_caps_need(tmp_path, monkeypatch):
    import datasets

    rows = flan_rows({"task001_qa": 200, "task002_summary": 200, "task003_nli": 200})
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    read = []

    def gen():
        for r in rows:
            read.append(1)
            yield r

    calls = []

    def fake_load(path, config=None, split=None, revision=None, streaming=False):
        calls.append((path, streaming))
        assert streaming, "a streamed source must never download the dataset whole"
        return datasets.IterableDataset.from_generator(gen)

    import flanctl.data.flan_stream as fst

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(fst, "BATCH", 16)
    src = {"kind": "hf", "path": "someone/flan_submix", "streaming": True}
    spec = make_spec(tmp_path, [{"name": "niv2", "proportion": 1, "cap": 10, "source": src, "tasks": ["task001_qa", "task003_nli"]}])
    m = realize(spec, tmp_path)
    assert {t.name: t.size for t in m.tasks} == {"task001_qa": 10, "task003_nli": 10}
    assert 0 < len(read) < len(rows)  # stopped once both listed tasks had 10 rows of every type
    tts = tokenize_tasks(m, TOK, spec.mixture, tmp_path)
    assert [len(t) for t in tts] == [10, 10] and set(tts[0].format_name(i) for i in range(10)) == set(TYPES)
    n_calls = len(calls)
    assert [t.size for t in realize(spec, tmp_path).tasks] == [10, 10] and len(calls) == n_calls  # from the cache after
    assert realize_mixture(spec, tmp_path)["tasks"][0]["count"] == 10  # and plan shows it without the network
    # no task list: the whole split is read once, only the capped rows are kept
    read.clear()
    spec = make_spec(tmp_path, [{"name": "niv2", "proportion": 1, "cap": 5, "source": src}])
    assert {t.name: t.available for t in realize(spec, tmp_path).tasks} == {"task001_qa": 20, "task002_summary": 20, "task003_nli": 20}
    assert len(read) == len(rows)


def test_sentencepiece_is_trained_once_on_a_sample_and_shared_by_workers(tmp_path, monkeypatch):
    import threading

    import flanctl.data.flan_source as fs
    import flanctl.data.flan_tokens as ft
    from flanctl.data.stats import _wait_or_claim, tokenizer_for_spec

    monkeypatch.setattr(fs, "UNIT_ROWS", 64)
    monkeypatch.setattr(ft, "SHARD_ROWS", 40)
    coll = _collection(tmp_path)
    spec = Spec.model_validate({"model": {"family": "palm", "tokenizer": {"kind": "sentencepiece", "path": "spm.model", "vocab_size": 300}},
                                "mixture": {"collections": coll, "inputs_length": 160, "targets_length": 16, "cache_dir": str(tmp_path / "cache")},
                                "train": {"batch_size": 4, "steps": 10}})
    tok = tokenizer_for_spec(spec, tmp_path)
    assert (tmp_path / "spm.model").exists() and not (tmp_path / "spm.model.lock").exists()
    mixture = realize(spec, tmp_path)
    one = tokenize_tasks(mixture, tok, spec.mixture.model_copy(update={"cache_dir": str(tmp_path / "c1")}), tmp_path, workers=1)
    two = tokenize_tasks(mixture, tok, spec.mixture.model_copy(update={"cache_dir": str(tmp_path / "c2")}), tmp_path, workers=2)
    for x, y in zip(one, two):  # the SentencePiece model travels to worker processes by its path
        assert x.tokens == y.tokens and all(np.array_equal(x.example(i)[0], y.example(i)[0]) for i in range(len(x)))
    # another process holds the lock: this one waits for its model instead of training its own
    other = tmp_path / "other.model"
    (tmp_path / "other.model.lock").write_text("")
    threading.Timer(0.5, lambda: other.write_bytes((tmp_path / "spm.model").read_bytes())).start()
    assert _wait_or_claim(other) is False and other.exists()


def test_source_options_are_checked(tmp_path):
    from flanctl.spec import load_spec

    p = tmp_path / "s.yaml"
    p.write_text("mixture:\n  collections:\n    - name: mine\n      proportion: 1\n      source: {kind: local, path: x.parquet, streaming: true}\n")
    with pytest.raises(Exception, match="streaming"):
        load_spec(p)
    p.write_text("mixture:\n  collections:\n    - name: builtin\n      proportion: 1\n      source: {kind: builtin, path: builtin, format: flan}\n")
    with pytest.raises(Exception, match="format flan"):
        load_spec(p)
