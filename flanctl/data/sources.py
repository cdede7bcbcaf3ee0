"""Sources: read a spec `Source` into `Example`s, through Hugging Face `datasets`.

Local files (JSONL/JSON, CSV, Parquet, a directory of them, or a `save_to_disk` folder) and
hub ids both go through `datasets` (Arrow-backed, cached), with a column mapping from our
fields (inputs, targets, options, rationale, answer, task) to the source's columns. A hub id
that cannot be reached gives one line naming the dataset and how to use a local copy.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from flanctl.data.examples import Example
from flanctl.errors import FlanctlError

FIELDS = ("inputs", "targets", "options", "rationale", "answer", "task", "template_type")
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class LoadedSource:
    """Examples read from one source, and a fingerprint that changes when the data does."""

    examples: list[Example]
    fingerprint: str
    description: str
    #: Rows left out because their inputs or targets were null, empty or not text.
    dropped: int = 0


def resolve_local(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p


def _file_fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in sorted(paths):
        st = f.stat()
        digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _load_local(source, base_dir: Path):
    import datasets

    root = resolve_local(source.path, base_dir)
    if not root.exists():
        raise FlanctlError(f"source {source.path}: {root} does not exist; give a JSONL, CSV or Parquet file, a folder of them, or a save_to_disk folder")
    if root.is_dir() and ((root / "dataset_info.json").exists() or (root / "dataset_dict.json").exists() or (root / "state.json").exists()):
        files = [f for f in root.rglob("*") if f.is_file()]
        ds = datasets.load_from_disk(str(root))
        if isinstance(ds, datasets.DatasetDict):
            if source.split not in ds:
                raise FlanctlError(f"source {source.path}: split '{source.split}' not in the saved dataset (splits: {', '.join(ds)})")
            ds = ds[source.split]
        return ds, _file_fingerprint(files)
    files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.suffix.lower() in _BUILDERS)
    if not files:
        raise FlanctlError(f"source {source.path}: no .jsonl, .json, .csv or .parquet files in {root}")
    kinds = {_BUILDERS.get(f.suffix.lower()) for f in files}
    if None in kinds or len(kinds) != 1:
        raise FlanctlError(f"source {source.path}: files must all be one of JSONL/JSON, CSV or Parquet (found {', '.join(sorted({f.suffix for f in files}))})")
    builder = kinds.pop()
    if builder != "parquet":
        # datasets reads bytes that are not UTF-8 without complaint and fails later, far away.
        for f in files:
            problem = utf8_problem(f)
            if problem:
                raise FlanctlError(f"source {source.path}: {problem}")
    datasets.disable_progress_bars()  # "Generating train split" bars bury flanctl's own lines
    try:
        ds = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    except Exception as exc:
        # Find what is wrong in the files themselves: datasets' own messages do not say where.
        for f in files:
            problem = text_file_problem(f, builder)
            if problem:
                raise FlanctlError(f"source {source.path}: {problem}") from None
        raise FlanctlError(f"source {source.path}: could not read {builder} data: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return ds, _file_fingerprint(files)


def text_file_problem(path: Path, builder: str) -> str | None:
    """The first thing that keeps a JSONL/JSON/CSV file from loading, as `file:line:col: what;
    fix`, or None. Only called once loading failed."""
    import csv

    if builder == "parquet":
        return None
    if path.stat().st_size == 0:
        return f"{path}: the file is empty; add rows or remove it"
    problem = utf8_problem(path)
    if problem:
        return problem
    with open(path, encoding="utf-8", newline="") as fh:
        if builder == "json" and path.suffix.lower() == ".jsonl":
            for n, row in enumerate(fh, start=1):
                if not row.strip():
                    continue
                try:
                    value = json.loads(row)
                except json.JSONDecodeError as exc:
                    return f"{path}:{n}:{exc.colno}: not JSON ({exc.msg}); each line must be one JSON object"
                if not isinstance(value, dict):
                    return f"{path}:{n}:1: expected a JSON object per line, got {type(value).__name__}"
            return None
        if builder == "csv":
            reader = csv.reader(fh, strict=True)
            try:
                header = next(reader, None)
                if not header:
                    return f"{path}:1:1: no header row; the first line must name the columns (e.g. inputs,targets)"
                for row in reader:
                    if row and len(row) != len(header):
                        return f"{path}:{reader.line_num}:1: {len(row)} fields where the header has {len(header)}; quote fields that hold commas"
            except csv.Error as exc:
                return f"{path}:{reader.line_num}:1: not valid CSV ({exc}); check the quotes on this line"
    return None


def utf8_problem(path: Path) -> str | None:
    """`file:line:col: not UTF-8 text ...` for the first byte that is not UTF-8, else None
    (read a block at a time)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, col, offset = 1, 1, 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                head = block[: exc.start]
                line += head.count(b"\n")
                col = exc.start - head.rfind(b"\n") if b"\n" in head else col + exc.start
                return (f"{path}:{line}:{col}: not UTF-8 text (byte 0x{block[exc.start]:02x} at offset {offset + exc.start}); "
                        "save the file as UTF-8")
            line += text.count("\n")
            col = len(text) - text.rfind("\n") if "\n" in text else col + len(text)
            offset += len(block)
    return None


def _load_hub(source):
    import datasets

    name = source.path + (f" (config {source.config})" if source.config else "")
    try:
        ds = datasets.load_dataset(source.path, source.config, split=source.split, revision=source.revision)
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "You are offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE). " if offline else ""
        raise FlanctlError(
            f"could not load Hugging Face dataset '{name}', split '{source.split}': {why}. "
            f"{hint}Download it where you have network (datasets.load_dataset(...).save_to_disk(DIR)) and point the spec at it "
            "with source: {kind: local, path: DIR}"
        ) from exc
    fp = getattr(ds, "_fingerprint", None) or f"{source.path}:{source.config}:{source.split}:{source.revision}"
    return ds, str(fp)


def _options(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [str(v) for v in value] or None
    text = str(value).strip()
    if not text:
        return None
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text)] or None
        except json.JSONDecodeError:
            pass
    return [o.strip() for o in text.split("||") if o.strip()] or None


def _text(value) -> str | None:
    """A field as text: strings and numbers (a CSV target "4" arrives as 4); None for null,
    empty and any other type (lists, dicts), so that a row never trains on "None"."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def dataset_to_examples(ds, columns: dict[str, str], default_task: str, where: str) -> tuple[list[Example], int]:
    """Map a `datasets.Dataset` to Examples with the column mapping (our field -> column).
    Returns the examples and how many rows were left out: a row whose inputs or targets are
    null, empty or not text is dropped (and counted), never trained on as the text "None"."""
    unknown = set(columns) - set(FIELDS) - {"text"}  # text: read by the pretraining objectives (data/text_sources.py)
    if unknown:
        raise FlanctlError(f"{where}: columns: unknown field(s) {', '.join(sorted(unknown))}; map any of {', '.join(FIELDS)}")
    mapping = {f: columns.get(f, f) for f in FIELDS}
    present = set(ds.column_names)
    for required in ("inputs", "targets"):
        if mapping[required] not in present:
            raise FlanctlError(
                f"{where}: no column '{mapping[required]}' for {required} (columns: {', '.join(sorted(present))}); "
                f"map it with columns: {{{required}: COLUMN}}"
            )
    # One columnar conversion (Arrow -> lists); indexing a datasets Column per row is ~1000x slower.
    data = ds.select_columns(sorted({mapping[f] for f in FIELDS if mapping[f] in present})).to_dict()
    cols = {f: data[mapping[f]] if mapping[f] in present else None for f in FIELDS}
    n = len(ds)
    out = []
    dropped = 0
    for i in range(n):
        inputs, target = _text(cols["inputs"][i]), _text(cols["targets"][i])
        if inputs is None or target is None:
            dropped += 1
            continue
        answer = cols["answer"][i] if cols["answer"] is not None else None
        rationale = cols["rationale"][i] if cols["rationale"] is not None else None
        task = _text(cols["task"][i]) if cols["task"] is not None else None
        out.append(
            Example(
                inputs=inputs,
                targets=target,
                options=_options(cols["options"][i]) if cols["options"] is not None else None,
                rationale=_text(rationale),
                answer=_text(answer) or target,
                task=task or default_task,
            )
        )
    return out, dropped


def load_source(source, base_dir: Path, default_task: str) -> LoadedSource:
    """Read a local or hub `Source` into Examples (built-in sources are handled by the mixture)."""
    if source.kind == "local":
        ds, fp = _load_local(source, Path(base_dir))
        desc = f"local:{source.path}"
    elif source.kind == "hf":
        ds, fp = _load_hub(source)
        desc = f"hf:{source.path}"
    else:
        raise FlanctlError(f"source kind '{source.kind}' is not read by load_source (built-in tasks are generated)")
    examples, dropped = dataset_to_examples(ds, dict(source.columns), default_task, f"source {source.path}")
    return LoadedSource(examples, f"{desc}:{fp}:{json.dumps(dict(source.columns), sort_keys=True)}", desc, dropped)


def open_flan(source, base_dir: Path, cache_dir: Path, allow_network: bool = True, cap: int | None = None,
              tasks: list[str] | None = None, exclude: tuple[str, ...] = ()):
    """The source as pre-rendered Flan rows (`flanctl.data.flan_source.FlanSource`), or None when
    it is not in that format (`format: raw`, or `auto` without a template-type column).

    Detection reads only a file header (local) or the loaded dataset's column names (hub). A
    streamed hub source (`streaming: true`) keeps at most `cap` rows per task and template type
    (of `tasks` when given, minus `exclude`) in one Arrow file of the cache, once."""
    from flanctl.data.flan_source import FLAN_COLUMNS, local_files, open_flan_source, schema_names

    if source.kind not in ("local", "hf") or source.format == "raw":
        return None
    mapping = {**FLAN_COLUMNS, **{k: v for k, v in source.columns.items() if k in FLAN_COLUMNS}}
    if source.kind == "hf" and source.streaming:
        from flanctl.data.flan_stream import streamed_source

        return streamed_source(source, mapping, Path(cache_dir), allow_network, cap, tasks, exclude)
    if source.kind == "local":
        root = resolve_local(source.path, base_dir)
        files = local_files(root, source.split) if root.exists() else []
        if not files:
            return None  # the raw reader says what is wrong with the path
        names = schema_names(files[0])
        fp, desc = None, f"local:{source.path}"
    else:
        if not allow_network:
            raise LookupError(source.path)
        ds, fp = _load_hub(source)
        names = list(ds.column_names)
        files = [Path(f["filename"]) for f in ds.cache_files]
        desc = f"hf:{source.path}"
        if not files:
            return None  # an in-memory dataset: read as raw rows
    if source.format != "flan" and mapping["template_type"] not in names:
        return None
    for required in ("inputs", "targets"):
        if mapping[required] not in names:
            raise FlanctlError(f"source {source.path}: no column '{mapping[required]}' for {required} (columns: "
                               f"{', '.join(sorted(names))}); map it with columns: {{{required}: COLUMN}}")
    columns = {k: v for k, v in mapping.items() if v in names}
    return open_flan_source(files, columns, Path(cache_dir), desc, fingerprint=fp)
