"""A Flan-format hub dataset read as a stream (`source.streaming: true`): only what the caps need is kept.

`datasets.load_dataset(..., streaming=True)` yields the split's rows in file order without
downloading it first. A row is kept while its task has fewer than `cap` kept rows of its
template type (so any template mix can still be reached under the cap); kept rows go to one
Arrow file in the cache, written once and then read like any local copy. When the spec lists
its tasks (`tasks:`), reading stops as soon as each of them has `cap` rows of all four types:
on the hub's Parquet layout nothing further is downloaded. Without a list, every row is read
once (a task's rows may come last) but only the kept ones are written.

The rows kept are the first ones of each task and type in the dataset's order, not a random
sample of all of them (a stream cannot sample what it has not read); the per-task sample that
the mixture takes from them is seeded as for any other source.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from flanctl.data.flan_source import TEMPLATE_TYPES, open_flan_source
from flanctl.errors import FlanctlError

STREAM_VERSION = "1"
BATCH = 4096


def _key(source, mapping, cap, tasks, exclude) -> str:
    payload = [STREAM_VERSION, source.path, source.config, source.split, source.revision, mapping, cap, tasks, list(exclude)]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def streamed_source(source, mapping: dict[str, str], cache_dir: Path, allow_network: bool, cap: int | None,
                    tasks: list[str] | None, exclude: tuple[str, ...]):
    """The kept rows of a streamed hub source as a FlanSource (streamed once, then from the cache)."""
    key = _key(source, mapping, cap, tasks, exclude)
    out = Path(cache_dir) / "streamed" / f"{key}.arrow"
    meta = out.with_suffix(".json")
    if not out.exists():
        if not allow_network:
            raise LookupError(source.path)
        stream_to_arrow(source, mapping, out, cap, tasks, exclude)
    columns = json.loads(meta.read_text())["columns"] if meta.exists() else mapping
    return open_flan_source([out], columns, Path(cache_dir), f"hf-stream:{source.path}", fingerprint=f"stream:{key}")


def _open_stream(source):
    import datasets

    try:
        return datasets.load_dataset(source.path, source.config, split=source.split, revision=source.revision, streaming=True)
    except Exception as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FlanctlError(f"could not stream Hugging Face dataset '{source.path}', split '{source.split}': {why}") from exc


def stream_to_arrow(source, mapping: dict[str, str], out: Path, cap: int | None, tasks: list[str] | None,
                    exclude: tuple[str, ...]) -> dict:
    """Read the stream batch by batch, keep rows under the caps, write them; returns counts."""
    import pyarrow as pa

    ds = _open_stream(source)
    names = list(getattr(ds, "column_names", None) or [])
    columns = {k: v for k, v in mapping.items() if not names or v in names}
    for required in ("inputs", "targets"):
        if required not in columns:
            raise FlanctlError(f"source {source.path}: no column '{mapping[required]}' for {required} (columns: {', '.join(names)})")
    wanted = set(tasks) if tasks is not None else None
    skip = set(exclude)
    kept: dict[tuple[str, str], int] = {}
    full: set[str] = set()
    read = written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    cols = list(dict.fromkeys(columns.values()))
    schema = pa.schema([(c, pa.string()) for c in cols])
    task_col, type_col = columns.get("task"), columns.get("template_type")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in ds.iter(batch_size=BATCH):
            n = len(batch[columns["inputs"]])
            read += n
            task_vals = batch[task_col] if task_col else [""] * n
            type_vals = batch[type_col] if type_col else [""] * n
            keep = []
            for i in range(n):  # one batch of Python values at a time: the stream gives no columns
                t, ty = task_vals[i] or "", type_vals[i] or ""
                if (wanted is not None and t not in wanted) or t in skip:
                    continue
                k = kept.get((t, ty), 0)
                if cap is not None and k >= cap:
                    continue
                kept[(t, ty)] = k + 1
                keep.append(i)
                if cap is not None and wanted is not None and all(kept.get((t, x), 0) >= cap for x in TEMPLATE_TYPES):
                    full.add(t)
            if keep:
                table = pa.table({c: pa.array([batch[c][i] for i in keep], type=pa.string()) for c in cols})
                writer.write_table(table)
                written += len(keep)
            if wanted is not None and cap is not None and full >= wanted:
                break  # every listed task has its cap of every type: nothing more to read
    info = {"read": read, "written": written, "columns": columns, "stopped_early": bool(wanted is not None and full >= (wanted or set()))}
    out.with_suffix(".json").write_text(json.dumps(info))  # before the data file appears: readers trust both
    os.replace(tmp, out)
    return info
