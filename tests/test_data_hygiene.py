"""Source hygiene: rows with null, empty or non-text inputs/targets are dropped and counted,
never trained on as the text "None"; `plan` and `data stats` say how many."""

from __future__ import annotations

import json

from flanctl.data import data_stats, realize_mixture
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.plan import make_plan
from flanctl.spec import load_spec

ROWS = [
    {"inputs": "1+1=", "targets": "2"},
    {"inputs": None, "targets": "3"},
    {"inputs": "2+2=", "targets": None},
    {"inputs": "3+3=", "targets": ""},
    {"inputs": "   ", "targets": "4"},
    {"inputs": "4+4=", "targets": ["8"]},
    {"inputs": "5+5=", "targets": 10},  # a number is text: "10"
]

SPEC = """\
apiVersion: flanctl/v1
model: {family: palm, size: tiny}
mixture:
  collections:
    - {name: mine, proportion: 1.0, user_tasks: [{name: add, source: {kind: local, path: rows.jsonl}}]}
  inputs_length: 32
  targets_length: 8
train: {batch_size: 2, steps: 2}
"""


def test_null_empty_and_non_text_rows_are_dropped_and_counted(tmp_path):
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "s.yaml").write_text(SPEC)
    loaded = load_spec(tmp_path / "s.yaml")
    from flanctl.data.mixture import realize

    mixture = realize(loaded.spec, tmp_path)
    [task] = mixture.tasks
    examples = task.load()
    assert sorted((e.inputs, e.targets) for e in examples) == [("1+1=", "2"), ("5+5=", "10")]
    assert all("None" not in e.inputs + e.targets for e in examples)
    note = "collection mine: 5 row(s) of rows.jsonl dropped: inputs or targets null, empty or not text"
    assert note in mixture.notes
    assert note in data_stats(loaded.spec, tmp_path, tokenizer=ByteTokenizer())["notes"]
    plan = make_plan(loaded, runs_root=tmp_path / "runs", realize=realize_mixture)
    assert note in plan.notes


def test_unreadable_source_files_get_one_line_naming_file_line_and_fix(tmp_path):
    import pytest

    from flanctl.errors import FlanctlError
    from flanctl.data.mixture import realize

    cases = {
        "bad.jsonl": (b'{"inputs": "a\xff", "targets": "b"}\n', r"bad.jsonl:1:14: not UTF-8 text \(byte 0xff at offset 13\); save the file as UTF-8"),
        "empty.jsonl": (b"", r"empty.jsonl: the file is empty; add rows or remove it"),
        "rows.csv": (b'inputs,targets\n"a,b\n', r"rows.csv:2:1: not valid CSV .*check the quotes on this line"),
        "cut.jsonl": (b'{"inputs": "ok", "targets": "b"}\n{"inputs": 1,\n', r"cut.jsonl:2:1: not JSON .*each line must be one JSON object"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        (tmp_path / "s.yaml").write_text(SPEC.replace("rows.jsonl", name))
        before = (tmp_path / name).read_bytes()
        with pytest.raises(FlanctlError, match=message) as exc:
            realize(load_spec(tmp_path / "s.yaml").spec, tmp_path)
        assert "\n" not in str(exc.value) and (tmp_path / name).read_bytes() == before


def test_a_truncated_or_empty_cache_shard_is_rebuilt(tmp_path):
    import numpy as np

    from flanctl.data.tokenized import load_shard

    shard = tmp_path / "task.npz"
    np.savez(shard, inputs=np.arange(10))
    whole = shard.read_bytes()
    for damaged in (whole[: len(whole) // 2], b""):
        shard.write_bytes(damaged)
        assert load_shard("task", shard) is None  # the caller tokenizes the task again
