"""Pre-rendered Flan 2022 rows as Arrow: where they are, and a per-row index of task and template type.

The public Flan 2022 submix dumps hold rows that are already final prompts: columns
`inputs, targets, task_source, task_name, template_type` (`zs_opt`, `zs_noopt`, `fs_opt`,
`fs_noopt`; few-shot rows carry their exemplars). The same rows can come from the hub (the
`datasets` cache: Arrow stream files), a `save_to_disk` folder (Arrow stream files), Parquet
files, or JSONL/CSV files (converted once, in bounded memory, to an Arrow file in the cache).

Everything here is columnar: a `FlanSource` is a list of Arrow parts cut into *units* (a
Parquet row group, a group of Arrow record batches) that can be read on their own, with only
the columns asked for. `flan_index` reads just the task and template-type columns and keeps
one int32 task code and one int8 type code per row (5 bytes a row, cached on disk), so counting,
capping and sampling never build a Python object per row.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flanctl.errors import FlanctlError

#: Template types of the Flan 2022 dumps, in code order; code 4 = anything else.
TEMPLATE_TYPES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
OTHER_TYPE = 4
#: template type -> the spec's template-mix key it is selected by.
TYPE_FORMAT = {"zs_opt": "zero_shot_opts", "zs_noopt": "zero_shot_noopts", "fs_opt": "few_shot_opts", "fs_noopt": "few_shot_noopts"}
#: Our field -> the dumps' column, the default mapping of a Flan-format source.
FLAN_COLUMNS = {"inputs": "inputs", "targets": "targets", "task": "task_name", "template_type": "template_type"}
INDEX_VERSION = "1"
UNIT_ROWS = 65_536  # Arrow record batches grouped into read units of about this many rows
_CONVERT_BLOCK = 64 << 20  # bytes of JSONL/CSV parsed at a time when converting


@dataclass(frozen=True)
class Part:
    """One Arrow-readable file and the row counts of its read units."""

    path: str
    kind: str  # parquet | ipc_stream | ipc_file
    units: tuple[tuple[int, ...], ...]  # per unit: the record batches (ipc) or row group (parquet) it covers
    unit_rows: tuple[int, ...]


@dataclass(frozen=True)
class FlanSource:
    """A Flan-format source: its parts, the column mapping, and a fingerprint of the data."""

    parts: tuple[Part, ...]
    columns: dict = field(hash=False)
    fingerprint: str
    description: str

    @property
    def unit_starts(self) -> np.ndarray:
        """Global row where each unit starts (length units + 1)."""
        rows = [n for p in self.parts for n in p.unit_rows]
        return np.concatenate([[0], np.cumsum(rows, dtype=np.int64)]).astype(np.int64)

    @property
    def num_rows(self) -> int:
        return int(sum(sum(p.unit_rows) for p in self.parts))

    def unit_list(self) -> list[tuple[int, int]]:
        return [(i, u) for i, p in enumerate(self.parts) for u in range(len(p.unit_rows))]

    def column(self, fld: str) -> str | None:
        return self.columns.get(fld)

    def read_unit(self, part: int, unit: int, fields: tuple[str, ...]):
        """The unit's rows as a pyarrow Table with our field names (absent columns are left out)."""
        return read_unit(self.parts[part], unit, {f: self.columns[f] for f in fields if self.columns.get(f)})


def read_unit(part: Part, unit: int, mapping: dict[str, str]):
    """Rows of one unit, only the mapped columns, renamed to our fields; the file is closed after."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = list(dict.fromkeys(mapping.values()))
    if part.kind == "parquet":
        pf = pq.ParquetFile(part.path)
        try:
            table = pf.read_row_groups(list(part.units[unit]), columns=cols)
        finally:
            pf.close()
    else:
        wanted = set(part.units[unit])
        batches = []
        with pa.memory_map(part.path, "r") as mm:
            if part.kind == "ipc_file":
                reader = pa.ipc.open_file(mm)
                batches = [reader.get_batch(b).select(cols) for b in sorted(wanted)]
            else:  # a stream has no footer: walk the batch headers (zero-copy from the map)
                reader = pa.ipc.open_stream(mm)
                last = max(wanted)
                for b, batch in enumerate(reader):
                    if b in wanted:
                        batches.append(batch.select(cols))
                    if b >= last:
                        break
            # copy out of the map so nothing refers to it once it is closed
            table = pa.Table.from_batches(batches).combine_chunks() if batches else None
            table = _copy_table(table) if table is not None else None
    if table is None:
        raise FlanctlError(f"{part.path}: unit {unit} has no rows")
    return pa.table({f: table.column(c) for f, c in mapping.items()})


def _copy_table(table):
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return pa.ipc.open_stream(sink.getvalue()).read_all()


# --------------------------------------------------------------------------- discovery


def _group_batches(rows: list[int]) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    units, unit_rows, cur, n = [], [], [], 0
    for b, r in enumerate(rows):
        cur.append(b)
        n += r
        if n >= UNIT_ROWS:
            units.append(tuple(cur))
            unit_rows.append(n)
            cur, n = [], 0
    if cur:
        units.append(tuple(cur))
        unit_rows.append(n)
    return tuple(units), tuple(unit_rows)


def _arrow_part(path: Path) -> Part:
    import pyarrow as pa

    with pa.memory_map(str(path), "r") as mm:
        try:
            reader = pa.ipc.open_file(mm)
            rows = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
            kind = "ipc_file"
        except pa.ArrowInvalid:
            mm.seek(0)
            rows = [b.num_rows for b in pa.ipc.open_stream(mm)]
            kind = "ipc_stream"
    units, unit_rows = _group_batches(rows)
    return Part(str(path), kind, units, unit_rows)


def _parquet_part(path: Path) -> Part:
    import pyarrow.parquet as pq

    md = pq.ParquetFile(str(path)).metadata
    rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    units, unit_rows = [], []
    cur, n = [], 0
    for g, r in enumerate(rows):  # small row groups are read together
        cur.append(g)
        n += r
        if n >= UNIT_ROWS // 4:
            units.append(tuple(cur))
            unit_rows.append(n)
            cur, n = [], 0
    if cur:
        units.append(tuple(cur))
        unit_rows.append(n)
    return Part(str(path), "parquet", tuple(units), tuple(unit_rows))


def schema_names(path: Path) -> list[str]:
    """Column names of one file, reading only its header (JSONL: the first line)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return list(pq.read_schema(str(path)).names)
    if suffix == ".arrow":
        with pa.memory_map(str(path), "r") as mm:
            try:
                return list(pa.ipc.open_file(mm).schema.names)
            except pa.ArrowInvalid:
                mm.seek(0)
                return list(pa.ipc.open_stream(mm).schema.names)
    if suffix in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        return []
                    return list(row) if isinstance(row, dict) else []
        return []
    if suffix == ".csv":
        with open(path, encoding="utf-8") as f:
            import csv

            return next(csv.reader(f), [])
    return []


def saved_dataset_files(root: Path, split: str) -> list[Path] | None:
    """The Arrow files of a `save_to_disk` folder (a Dataset, or one split of a DatasetDict)."""
    if (root / "dataset_dict.json").exists():
        splits = json.loads((root / "dataset_dict.json").read_text()).get("splits", [])
        if split not in splits:
            raise FlanctlError(f"{root}: split '{split}' not in the saved dataset (splits: {', '.join(splits)})")
        root = root / split
    state = root / "state.json"
    if not state.exists():
        return None
    files = json.loads(state.read_text()).get("_data_files", [])
    return [root / f["filename"] for f in files]


def local_files(root: Path, split: str) -> list[Path]:
    """The data files of a local source path (a file, a folder of files, or a save_to_disk folder)."""
    if root.is_dir():
        saved = saved_dataset_files(root, split)
        if saved is not None:
            return saved
        files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in (".jsonl", ".json", ".csv", ".parquet", ".arrow"))
        return files
    return [root] if root.exists() else []


def file_fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in sorted(paths):
        st = f.stat()
        digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def convert_to_arrow(path: Path, cache_dir: Path, keep: list[str]) -> Path:
    """A JSONL/CSV file's `keep` columns as an Arrow file in the cache, parsed block by block (bounded memory)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson

    tag = hashlib.sha256(json.dumps(sorted(keep)).encode()).hexdigest()[:8]
    out = Path(cache_dir) / "converted" / f"{path.stem}-{file_fingerprint([path])}-{tag}.arrow"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    if path.suffix.lower() == ".csv":
        reader = pcsv.open_csv(str(path), read_options=pcsv.ReadOptions(block_size=_CONVERT_BLOCK),
                               convert_options=pcsv.ConvertOptions(include_columns=keep, column_types={k: pa.string() for k in keep}))
    else:
        # the mapped columns as strings (inference per block could disagree); the others are dropped
        schema = pa.schema([(n, pa.string()) for n in keep])
        reader = _json_blocks(path, schema, pjson)
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
            for batch in reader:
                for start in range(0, batch.num_rows, 8192):  # small batches: read units stay small
                    writer.write_batch(batch.slice(start, 8192))
    except pa.ArrowInvalid as exc:
        tmp.unlink(missing_ok=True)
        raise FlanctlError(f"{path}: could not read it as {path.suffix.lstrip('.').upper()}: {str(exc).splitlines()[0]}") from exc
    os.replace(tmp, out)
    return out


class _json_blocks:
    """JSON Lines parsed a block of whole lines at a time (works on every pyarrow >= 15)."""

    def __init__(self, path: Path, schema, pjson):
        self.path, self.schema, self._pjson = path, schema, pjson

    def __iter__(self):
        import io

        opts = self._pjson.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore")
        rest = b""
        with open(self.path, "rb") as f:
            while True:
                block = f.read(_CONVERT_BLOCK)
                data = rest + block
                if not block:
                    cut = len(data)
                else:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        rest = data
                        continue
                chunk, rest = data[:cut], data[cut:]
                if chunk.strip():
                    yield from self._pjson.read_json(io.BytesIO(chunk), parse_options=opts).to_batches()
                if not block:
                    return


def open_flan_source(files: list[Path], columns: dict[str, str], cache_dir: Path, description: str, fingerprint: str | None = None) -> FlanSource:
    parts = []
    for f in files:
        suffix = f.suffix.lower()
        if suffix == ".parquet":
            parts.append(_parquet_part(f))
        elif suffix == ".arrow":
            parts.append(_arrow_part(f))
        elif suffix in (".jsonl", ".json", ".csv"):
            parts.append(_arrow_part(convert_to_arrow(f, cache_dir, sorted(set(columns.values())))))
        else:
            raise FlanctlError(f"{description}: {f.name}: not a JSONL, CSV, Parquet or Arrow file")
    parts = [p for p in parts if p.unit_rows]
    fp = fingerprint or file_fingerprint(files)
    return FlanSource(tuple(parts), dict(columns), f"{fp}:{json.dumps(columns, sort_keys=True)}", description)


# --------------------------------------------------------------------------- index


@dataclass
class FlanIndex:
    """Per row: task code and template-type code; the task names; the source it indexes."""

    source: FlanSource
    names: list[str]
    task: np.ndarray  # int32 per row
    ttype: np.ndarray  # int8 per row
    has_task_column: bool

    def counts(self) -> np.ndarray:
        """[tasks, 5] rows per task and template type (the four types, then any other)."""
        key = self.task.astype(np.int64) * 5 + self.ttype
        return np.bincount(key, minlength=len(self.names) * 5).reshape(len(self.names), 5)


def _codes(col, names: dict[str, int]) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    uniq = pc.unique(col)
    local = np.asarray([names.setdefault(s, len(names)) for s in uniq.to_pylist()], dtype=np.int32)
    idx = pc.index_in(col, value_set=uniq)
    return local[np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)]


def pc_fill(col, value: str):
    """The column as strings with nulls replaced by `value`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = col.cast(pa.string())
    return pc.fill_null(col, value) if col.null_count else col


def _column_batches(source: FlanSource, fields: tuple[str, ...]):
    """(first global row, table of `fields`) over the whole source, in order: a Parquet file is
    opened once and read in batches of its columns, Arrow files unit by unit."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not fields:
        return
    row = 0
    for p, part in enumerate(source.parts):
        if part.kind == "parquet":
            mapping = {f: source.columns[f] for f in fields}
            with pq.ParquetFile(part.path) as pf:
                for batch in pf.iter_batches(batch_size=UNIT_ROWS, columns=list(dict.fromkeys(mapping.values()))):
                    yield row, pa.table({f: batch.column(c) for f, c in mapping.items()})
                    row += batch.num_rows
        else:
            for u in range(len(part.unit_rows)):
                table = source.read_unit(p, u, fields)
                yield row, table
                row += table.num_rows


def flan_index(source: FlanSource, cache_dir: Path, default_task: str) -> FlanIndex:
    """The source's task/type index: from the cache, or read from the two columns and cached."""
    key = hashlib.sha256(f"{INDEX_VERSION}:{source.fingerprint}:{default_task}".encode()).hexdigest()[:20]
    path = Path(cache_dir) / "flan_index" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                names = json.loads(bytes(z["names"]).decode())
                return FlanIndex(source, names, z["task"], z["ttype"], bool(z["has_task"]))
        except (OSError, KeyError, ValueError):
            pass
    n = source.num_rows
    task = np.zeros(n, dtype=np.int32)
    ttype = np.full(n, OTHER_TYPE, dtype=np.int8)
    names: dict[str, int] = {}
    types: dict[str, int] = {t: i for i, t in enumerate(TEMPLATE_TYPES)}
    has_task = bool(source.column("task"))
    fields = tuple(f for f in ("task", "template_type") if source.column(f))
    for lo, table in _column_batches(source, fields):
        hi = lo + table.num_rows
        if has_task:
            task[lo:hi] = _codes(pc_fill(table.column("task"), default_task), names)
        if source.column("template_type"):
            codes = _codes(pc_fill(table.column("template_type"), ""), types)
            codes[codes >= OTHER_TYPE] = OTHER_TYPE  # a value outside the four known types is "other"
            ttype[lo:hi] = codes.astype(np.int8)
    if not has_task:
        names = {default_task: 0}
    ordered = sorted(names, key=names.get)
    index = FlanIndex(source, ordered, task, ttype, has_task)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, task=task, ttype=ttype, names=np.frombuffer(json.dumps(ordered).encode(), dtype=np.uint8),
                 has_task=np.asarray(has_task))
    os.replace(tmp, path)
    return index


def water_fill(available: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """How many rows of each type to take: `size` in all, shares as close to `weights` as the
    rows allow (a type short of its share gives the rest to the others, in proportion)."""
    alloc = np.zeros(len(available), dtype=np.int64)
    avail = available.astype(np.int64).copy()
    w = np.where(avail > 0, weights, 0.0).astype(np.float64)
    left = int(min(size, avail.sum()))
    while left > 0 and w.sum() > 0:
        share = w / w.sum() * left
        take = np.minimum(np.floor(share).astype(np.int64), avail)
        if take.sum() == 0:  # hand out the remainder one by one, largest share first
            for k in np.argsort(-share, kind="stable"):
                if left == 0:
                    break
                if avail[k] > 0 and w[k] > 0:
                    alloc[k] += 1
                    avail[k] -= 1
                    left -= 1
        else:
            alloc += take
            avail -= take
            left -= int(take.sum())
        w = np.where(avail > 0, w, 0.0)
    return alloc


def _row_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """A seeded pseudo-random 63-bit key per row id (splitmix64), the same whatever else is selected."""
    z = rows.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((z ^ (z >> np.uint64(31))) >> np.uint64(1)).astype(np.int64)


def select_rows(index: FlanIndex, alloc: dict[int, np.ndarray], seed: int) -> np.ndarray:
    """Sorted global row ids: for task code t and type k, `alloc[t][k]` rows, drawn by a seeded
    hash of the row id when the group has more rows than that (all of them otherwise).
    Vectorised; memory ~5 bytes a row plus ~40 bytes a row of the capped groups only."""
    n_groups = len(index.names) * 5
    quota = np.zeros(n_groups, dtype=np.int64)
    for t, a in alloc.items():
        quota[t * 5: t * 5 + 5] = a
    group = index.task.astype(np.int32) * 5 + index.ttype.astype(np.int32)
    counts = np.bincount(group, minlength=n_groups)
    keep = (quota >= counts) & (quota > 0)  # groups kept whole
    mask = keep[group]
    partial = (quota > 0) & ~keep
    if partial.any():
        cand = np.flatnonzero(partial[group])
        g = group[cand].astype(np.int64)
        order = np.lexsort((_row_hash(cand, seed), g))
        g_sorted = g[order]
        starts = np.flatnonzero(np.concatenate([[True], g_sorted[1:] != g_sorted[:-1]]))
        sizes = np.diff(np.concatenate([starts, [len(g_sorted)]]))
        rank = np.arange(len(g_sorted)) - np.repeat(starts, sizes)
        mask[cand[order[rank < quota[g_sorted]]]] = True
    return np.flatnonzero(mask).astype(np.int64)
