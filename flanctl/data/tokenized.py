"""Templated, tokenized tasks and their on-disk cache.

Each task is rendered once (format, template variant, shots and delimiters drawn from a
per-example seed, as the Flan collection materialised its examples) and tokenized into two
flat int32 arrays with offsets. One task is one cache shard: `<cache>/<task>-<key>.npz`,
keyed by a hash of (source fingerprint, templates, tokenizer, lengths, seed, format mix,
few-shot settings). A shard is written to a temporary name and renamed, so a crash while
building loses nothing already written and the next run reuses every finished shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flanctl.data.templates import FORMATS, load_templates, render_example

CACHE_VERSION = "1"


@dataclass
class TokenizedTask:
    """A task's examples as token arrays: example i is `inputs[in_off[i]:in_off[i+1]]`."""

    name: str
    inputs: np.ndarray
    in_off: np.ndarray
    targets: np.ndarray
    tg_off: np.ndarray
    formats: np.ndarray  # index into FORMATS actually used
    truncated_inputs: int
    truncated_targets: int
    tokens_cut: int
    from_cache: bool = False
    ends: np.ndarray | None = None  # raw-text pieces: 1 where a piece ends its document (None: instruction examples)

    def __len__(self) -> int:
        return len(self.in_off) - 1

    def example(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.inputs[self.in_off[i]:self.in_off[i + 1]], self.targets[self.tg_off[i]:self.tg_off[i + 1]]

    @property
    def tokens(self) -> int:
        return int(len(self.inputs) + len(self.targets))

    def format_name(self, i: int) -> str:
        return FORMATS[int(self.formats[i])]


def cache_key(task, templates_fp: str, tokenizer_fp: str, mixture_spec) -> str:
    fs = mixture_spec.few_shot
    payload = {
        "v": CACHE_VERSION,
        "task": task.name,
        "source": task.source_fingerprint,
        "size": task.size,
        "templates": templates_fp,
        "tokenizer": tokenizer_fp,
        "lengths": [mixture_spec.inputs_length, mixture_spec.targets_length],
        "seed": mixture_spec.seed,
        "formats": task.formats,
        "few_shot": [fs.min_shots, fs.max_shots, [list(d) for d in fs.delimiters], fs.token_budget],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


def render_task(task, examples, templates, tokenizer, mixture_spec) -> TokenizedTask:
    """Template and tokenize one task's examples (exemplars come from the same examples)."""
    fs = mixture_spec.few_shot
    budget = fs.token_budget or mixture_spec.inputs_length
    max_in = mixture_spec.inputs_length - 1  # one slot for bos (decoder) or eos (encoder)
    max_tg = mixture_spec.targets_length - 1  # one slot for eos
    fmt_names = list(task.formats)
    fmt_weights = [task.formats[f] for f in fmt_names]
    delimiters = [tuple(d) for d in fs.delimiters]
    count = getattr(tokenizer, "count", None) or (lambda s: len(tokenizer.encode(s)))
    encode = getattr(tokenizer, "encode_array", None) or (lambda s: np.asarray(tokenizer.encode(s), dtype=np.int32))
    ins, tgs, fmts = [], [], []
    trunc_in = trunc_tg = cut = 0
    for i, ex in enumerate(examples):
        rng = random.Random(f"{mixture_spec.seed}/{task.name}/{i}")
        fmt = rng.choices(fmt_names, fmt_weights)[0]
        shots = rng.randint(fs.min_shots, max(fs.min_shots, fs.max_shots)) if fmt.startswith("few_shot") else 0
        r = render_example(ex, fmt, templates, rng, exemplars=examples if shots else (), delimiters=delimiters,
                           shots=shots, count_tokens=count, token_budget=budget)
        a, b = encode(r.inputs), encode(r.targets)
        if len(a) > max_in:
            trunc_in += 1
            cut += len(a) - max_in
            a = a[:max_in]
        if len(b) > max_tg:
            trunc_tg += 1
            cut += len(b) - max_tg
            b = b[:max_tg]
        ins.append(a)
        tgs.append(b)
        fmts.append(FORMATS.index(r.format))
    def flat(parts):
        off = np.zeros(len(parts) + 1, dtype=np.int64)
        off[1:] = np.cumsum([len(p) for p in parts]) if parts else []
        return (np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)), off
    inputs, in_off = flat(ins)
    targets, tg_off = flat(tgs)
    return TokenizedTask(task.name, inputs, in_off, targets, tg_off, np.asarray(fmts, np.int8), trunc_in, trunc_tg, cut)


def save_shard(tt: TokenizedTask, path: Path) -> None:
    """Write atomically: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, inputs=tt.inputs, in_off=tt.in_off, targets=tt.targets, tg_off=tt.tg_off, formats=tt.formats,
                 counts=np.asarray([tt.truncated_inputs, tt.truncated_targets, tt.tokens_cut], np.int64),
                 **({} if tt.ends is None else {"ends": tt.ends}))
    os.replace(tmp, path)


def load_shard(name: str, path: Path) -> TokenizedTask | None:
    try:
        with np.load(path) as z:
            c = z["counts"]
            return TokenizedTask(name, z["inputs"], z["in_off"], z["targets"], z["tg_off"], z["formats"],
                                 int(c[0]), int(c[1]), int(c[2]), from_cache=True,
                                 ends=z["ends"] if "ends" in z.files else None)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # truncated, empty or damaged: rebuild it
        return None


def tokenize_text_task(task, docs, tokenizer, text_length: int) -> TokenizedTask:
    """Raw-text documents (in `Example.inputs`) as pieces of at most `text_length` tokens, each an example
    with empty targets; `ends` marks the last piece of each document (no template, nothing truncated)."""
    encode = getattr(tokenizer, "encode_array", None) or (lambda s: np.asarray(tokenizer.encode(s), dtype=np.int32))
    pieces, ends = [], []
    for ex in docs:
        ids = encode(ex.inputs)
        for start in range(0, len(ids), text_length):
            pieces.append(ids[start:start + text_length])
            ends.append(start + text_length >= len(ids))
    off = np.zeros(len(pieces) + 1, dtype=np.int64)
    if pieces:
        off[1:] = np.cumsum([len(p) for p in pieces])
    flat = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)
    return TokenizedTask(task.name, flat, off, np.zeros(0, np.int32), np.zeros(len(pieces) + 1, np.int64),
                         np.zeros(len(pieces), np.int8), 0, 0, 0, ends=np.asarray(ends, np.int8))


def tokenize_tasks(mixture, tokenizer, mixture_spec, base_dir: Path, use_cache: bool = True,
                   process_index: int = 0, process_count: int = 1, workers: int | None = None,
                   text_length: int | None = None) -> list:
    """Every task of the realized mixture, tokenized: from the cache when there, else built and cached.

    Pre-rendered Flan tasks are tokenized per source into shared shards on disk (by every
    core, and with `process_count` > 1 by every process, see `flanctl.data.flan_tokens`); raw
    tasks are templated and tokenized one task per shard, as before."""
    from flanctl.data.flan_tokens import tokenize_flan_group
    from flanctl.data.mixture import cache_root

    cache_dir = cache_root(mixture_spec, base_dir)
    out: list = [None] * len(mixture.tasks)
    groups: dict[str, list[int]] = {}
    for i, task in enumerate(mixture.tasks):
        if task.flan is not None:
            groups.setdefault(task.flan.group, []).append(i)
    for members in groups.values():
        built = tokenize_flan_group([mixture.tasks[i].flan for i in members], [mixture.tasks[i].name for i in members],
                                    tokenizer, mixture_spec, cache_dir, process_index, process_count, workers)
        for i, tt in zip(members, built):
            out[i] = tt
    for pos, task in enumerate(mixture.tasks):
        if task.flan is not None:
            continue
        if task.text:
            if not text_length:
                raise ValueError(f"task {task.name} is raw text: tokenize it with the objective's text_length")
            key = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "text": task.source_fingerprint, "size": task.size,
                                             "tokenizer": tokenizer.fingerprint, "piece": text_length}).encode()).hexdigest()[:20]
            path = cache_dir / "text" / f"{_slug(task.name)}-{key}.npz"
            tt = load_shard(task.name, path) if use_cache and path.exists() else None
            if tt is None or tt.ends is None:
                tt = tokenize_text_task(task, task.load(), tokenizer, text_length)
                if use_cache:
                    save_shard(tt, path)
            out[pos] = tt
            continue
        templates = load_templates(_resolve(task.templates, base_dir))
        key = cache_key(task, templates.fingerprint, tokenizer.fingerprint, mixture_spec)
        path = cache_dir / "tokenized" / f"{_slug(task.name)}-{key}.npz"
        tt = load_shard(task.name, path) if use_cache and path.exists() else None
        if tt is None:
            tt = render_task(task, task.load(), templates, tokenizer, mixture_spec)
            if use_cache:
                save_shard(tt, path)
        out[pos] = tt
    return out


def _resolve(p: str | None, base_dir: Path) -> Path | None:
    if not p:
        return None
    q = Path(p)
    return q if q.is_absolute() else Path(base_dir) / q
