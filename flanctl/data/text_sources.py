"""Raw-text sources for the pretraining objectives (`train.objective` causal_lm, span_corruption, ul2).

A collection's `source` (one task named after the collection) and each of its `user_tasks` is a
text source: the built-in corpus (`{kind: builtin, path: corpus}`, generated from the mixture
seed), or a local JSONL/JSON/CSV/Parquet file or folder, a `save_to_disk` folder, or a hub
dataset, read from its `text` column (map another with `columns: {text: COLUMN}`). A hub source
with `streaming: true` is read as it downloads, up to the cap of documents. Documents are cut
into pieces and packed by the stream (`flanctl.data.objectives`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flanctl.catalog.objectives import (
    BUILTIN_CORPUS,
    CORPUS_DEFAULT_DOCUMENTS,
    TEXT_COLUMN,
)
from flanctl.data.examples import Example
from flanctl.errors import FlanctlError


def _doc(text: str, task: str) -> Example:
    return Example(inputs=text, targets="", options=None, rationale=None, answer="", task=task)


def load_texts(source, base_dir: Path, limit: int | None, where: str) -> tuple[list[str], str]:
    """The documents of a local or hub text source (at most `limit`), and a fingerprint."""
    from flanctl.data.sources import _load_hub, _load_local

    column = source.columns.get("text", TEXT_COLUMN)
    if source.kind == "hf" and source.streaming:
        import datasets

        try:
            ds = datasets.load_dataset(source.path, source.config, split=source.split, revision=source.revision, streaming=True)
            texts = []
            for row in ds:
                if column not in row:
                    raise FlanctlError(f"{where}: no column '{column}' for text (columns: {', '.join(sorted(row))}); "
                                       "map it with columns: {text: COLUMN}")
                texts.append(str(row[column] or ""))
                if limit is not None and len(texts) >= limit:
                    break
        except FlanctlError:
            raise
        except Exception as exc:
            raise FlanctlError(f"{where}: could not stream Hugging Face dataset '{source.path}': "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        fp = f"hf-stream:{source.path}:{source.config}:{source.split}:{source.revision}:{limit}"
        return texts, fp
    ds, fp = _load_local(source, base_dir) if source.kind == "local" else _load_hub(source)
    if column not in ds.column_names:
        raise FlanctlError(f"{where}: no column '{column}' for text (columns: {', '.join(sorted(ds.column_names))}); "
                           "map it with columns: {text: COLUMN}")
    if limit is not None and len(ds) > limit:
        ds = ds.select(range(limit))
    texts = [str(t) if t is not None else "" for t in ds.select_columns([column]).to_dict()[column]]
    return texts, f"{fp}:{column}:{limit}"


def _text_task(task_plan, name: str, collection: str, source, cap: int | None, base_dir: Path, allow_network: bool, seed: int):
    where = f"mixture.collections[{collection}]" + ("" if name == collection else f".user_tasks[{name}]")
    if source.kind == "builtin":
        if source.path != BUILTIN_CORPUS:
            raise FlanctlError(f"{where}.source: built-in task '{source.path}' is (inputs, targets) pairs; the pretraining "
                               f"objectives read raw text: use {{kind: builtin, path: {BUILTIN_CORPUS}}} or a text source")
        from flanctl.data.corpus import CORPUS_VERSION, generate_corpus

        size = cap or CORPUS_DEFAULT_DOCUMENTS
        return task_plan(name, collection, "builtin", None, size, cap, 0.0, {}, None, f"corpus:v{CORPUS_VERSION}:{seed}:{size}",
                        load=lambda: [_doc(t, name) for t in generate_corpus(size, seed)], text=True)
    if source.kind == "hf" and not allow_network:
        raise LookupError(source.path)
    texts, fp = load_texts(source, base_dir, cap, where)
    if not texts:
        raise FlanctlError(f"{where}: the text source has no documents")
    digest = hashlib.sha256(fp.encode()).hexdigest()[:16]
    return task_plan(name, collection, source.kind, len(texts), len(texts), cap, 0.0, {}, None, f"text:{digest}",
                    load=lambda: [_doc(t, name) for t in texts], text=True)


def text_tasks(coll, cap: int | None, base_dir, allow_network: bool, seed: int, task_plan) -> list:
    """The raw-text tasks of one collection (its source, then its user tasks), as `task_plan`
    (the mixture's TaskPlan class, passed in so that this module does not import the mixture)."""
    base_dir = Path(base_dir)
    out = []
    if coll.source is not None:
        out.append(_text_task(task_plan, coll.name, coll.name, coll.source, cap, base_dir, allow_network, seed))
    for t in coll.user_tasks:
        out.append(_text_task(task_plan, t.name, coll.name, t.source, t.cap or cap, base_dir, allow_network, seed))
    if not out:
        raise FlanctlError(f"mixture.collections[{coll.name}]: the pretraining objectives read raw text; give the collection "
                           f"a text source ({{kind: builtin, path: {BUILTIN_CORPUS}}}, a local file or a hub dataset with a "
                           "text column)")
    return out
