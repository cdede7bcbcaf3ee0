"""Sources: real local files in every format through `datasets`, column mapping, offline hub ids."""

from __future__ import annotations

import json

import pytest

from flanctl.data.sources import load_source
from flanctl.errors import FlanctlError
from flanctl.spec.models import Source

ROWS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i), "choices": json.dumps([str(2 * i), str(2 * i + 1)]), "name": f"add{i % 2}"} for i in range(12)]
MAPPING = {"inputs": "question", "targets": "answer", "options": "choices", "task": "name"}


def _check(loaded):
    exs = loaded.examples
    assert len(exs) == 12
    assert exs[3].inputs == "What is 3 + 3?" and exs[3].targets == "6" and exs[3].answer == "6"
    assert exs[3].options == ["6", "7"] and exs[3].task == "add1"


def test_jsonl(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    _check(load_source(Source(kind="local", path="d.jsonl", columns=MAPPING), tmp_path, "t"))


def test_csv(tmp_path):
    import csv

    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        w.writeheader()
        w.writerows(ROWS)
    _check(load_source(Source(kind="local", path="d.csv", columns=MAPPING), tmp_path, "t"))


def test_parquet_and_a_directory_of_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "pq").mkdir()
    table = pa.Table.from_pylist(ROWS)
    pq.write_table(table, tmp_path / "d.parquet")
    _check(load_source(Source(kind="local", path="d.parquet", columns=MAPPING), tmp_path, "t"))
    pq.write_table(table.slice(0, 6), tmp_path / "pq" / "a.parquet")
    pq.write_table(table.slice(6), tmp_path / "pq" / "b.parquet")
    _check(load_source(Source(kind="local", path="pq", columns=MAPPING), tmp_path, "t"))


def test_save_to_disk_folder_with_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[:2])})
    dd.save_to_disk(str(tmp_path / "saved"))
    _check(load_source(Source(kind="local", path="saved", columns=MAPPING), tmp_path, "t"))
    assert len(load_source(Source(kind="local", path="saved", split="test", columns=MAPPING), tmp_path, "t").examples) == 2
    with pytest.raises(FlanctlError, match="split 'dev' not in the saved dataset"):
        load_source(Source(kind="local", path="saved", split="dev", columns=MAPPING), tmp_path, "t")


def test_default_columns_and_default_task(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"inputs": "q", "targets": "a"}) + "\n")
    ex = load_source(Source(kind="local", path="d.jsonl"), tmp_path, "mytask").examples[0]
    assert (ex.inputs, ex.targets, ex.options, ex.rationale, ex.task) == ("q", "a", None, None, "mytask")


def test_fingerprint_changes_with_the_file(tmp_path):
    import os

    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"inputs": "q", "targets": "a"}) + "\n")
    fp1 = load_source(Source(kind="local", path="d.jsonl"), tmp_path, "t").fingerprint
    p.write_text(json.dumps({"inputs": "q2", "targets": "a2"}) + "\n" * 2)
    os.utime(p, ns=(1, 10**18))
    assert load_source(Source(kind="local", path="d.jsonl"), tmp_path, "t").fingerprint != fp1


def test_bad_local_sources_are_one_line_errors(tmp_path):
    with pytest.raises(FlanctlError, match="does not exist"):
        load_source(Source(kind="local", path="nope.jsonl"), tmp_path, "t")
    (tmp_path / "d.jsonl").write_text(json.dumps({"q": "x", "a": "y"}) + "\n")
    with pytest.raises(FlanctlError, match=r"no column 'inputs' for inputs .*columns: \{inputs: COLUMN\}"):
        load_source(Source(kind="local", path="d.jsonl"), tmp_path, "t")
    with pytest.raises(FlanctlError, match="unknown field"):
        load_source(Source(kind="local", path="d.jsonl", columns={"question": "q"}), tmp_path, "t")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlanctlError, match="no .jsonl"):
        load_source(Source(kind="local", path="empty"), tmp_path, "t")


def test_offline_hub_id_names_the_dataset_and_the_local_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets", raising=False)
    with pytest.raises(FlanctlError) as err:
        load_source(Source(kind="hf", path="someone/flan-like-data", config="x"), tmp_path, "t")
    msg = str(err.value)
    assert "someone/flan-like-data" in msg and "kind: local" in msg and "You are offline" in msg and "\n" not in msg
