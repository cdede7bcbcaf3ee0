"""Pre-rendered Flan rows -> token shards on disk, built by every core of every host, read by position.

The rows a mixture keeps from one Flan-format source (capped, selected by template type, see
`flanctl.data.flan_source`) are cut into shards of whole read units. A shard is a folder of
`.npy` arrays (flat input and target ids with offsets, per-example truncation flags), written
under a temporary name and renamed, keyed by the source, the exact rows it holds, the tokenizer
and the lengths. Shards are built in worker processes (batched encoding, each text encoded
once); with N processes (hosts) sharing the cache folder, process p builds the shards j with
j % N == p, then waits for the others' (an O_EXCL lock file marks a shard being built; a shard
nobody claimed within `FLANCTL_SHARD_WAIT` seconds, e.g. when the folder is not shared, is
built by whoever waits). Every process then reads examples from every shard with positioned
reads (`os.pread`; memory-mapping would count every touched page as resident), so the example
stream is the single-process stream, and each process keeps its share of it as before.

Truncation (what the paper's pipeline keeps): a few-shot row keeps its exemplars in order while
they fit, always with the final query (Flan's `prune_fewshot_examples_by_length` drops exemplars
to fit `max_input_length`; exemplars are joined with "\\n\\n\\n"); any prompt still too long keeps
its first quarter and its end (the question and answer cue sit at the end, an instruction often
at the start), never a prompt without its question. Targets keep their start, as seqio trims.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flanctl.data.flan_source import OTHER_TYPE, TEMPLATE_TYPES, FlanIndex, FlanSource, select_rows
from flanctl.errors import FlanctlError

TOKENS_VERSION = "1"
SHARD_ROWS = 16_384  # selected rows per shard (whole read units, so shards can be larger)
FEW_SHOT_SEPARATOR = "\n\n\n"  # Flan's example_separator between few-shot exemplars


@dataclass
class FlanTaskRef:
    """A task of a Flan-format source in the realized mixture: its code and rows per template type."""

    index: FlanIndex = field(repr=False)
    code: int
    alloc: np.ndarray  # rows to take per template type (5: the four types, then other)
    group: str  # tasks of one source and collection are tokenized together


# --------------------------------------------------------------------------- reading rows


def read_rows(source: FlanSource, rows: np.ndarray, fields: tuple[str, ...]):
    """The given global rows (sorted) as one pyarrow Table, reading only the units that hold them."""
    import pyarrow as pa

    starts = source.unit_starts
    units = source.unit_list()
    pieces = []
    which = np.searchsorted(starts, rows, side="right") - 1
    for u in np.unique(which):
        p, unit = units[int(u)]
        table = source.read_unit(p, unit, fields)
        local = rows[which == u] - starts[u]
        pieces.append(table.take(pa.array(local, type=pa.int64())))
    if not pieces:
        return pa.table({f: pa.array([], type=pa.string()) for f in fields if source.column(f)})
    return pa.concat_tables(pieces)


def task_examples(ref: FlanTaskRef, seed: int, limit: int | None = None):
    """A task's kept rows as Examples (for small reads: tokenizer training, tests)."""
    from flanctl.data.examples import Example

    alloc = ref.alloc if limit is None else _limit_alloc(ref.alloc, limit)
    rows = select_rows(ref.index, {ref.code: alloc}, seed)
    table = read_rows(ref.index.source, rows, ("inputs", "targets"))
    name = ref.index.names[ref.code]
    ins, tgs = table.column("inputs").to_pylist(), table.column("targets").to_pylist()
    return [Example(str(a or ""), str(b or ""), answer=str(b or ""), task=name) for a, b in zip(ins, tgs)]


def _limit_alloc(alloc: np.ndarray, limit: int) -> np.ndarray:
    total = int(alloc.sum())
    if total <= limit:
        return alloc
    return np.floor(alloc * (limit / total)).astype(np.int64)


# --------------------------------------------------------------------------- truncation


def _middle_cut(ids: np.ndarray, max_len: int) -> np.ndarray:
    head = max_len // 4
    return np.concatenate([ids[:head], ids[len(ids) - (max_len - head):]]) if max_len > 0 else ids[:0]


def fit_prompt(text: str, ids: np.ndarray, few_shot: bool, encode, max_len: int) -> np.ndarray:
    """`ids` (the encoding of `text`) cut to `max_len` tokens, keeping the question (module doc)."""
    if len(ids) <= max_len:
        return ids
    if few_shot:
        sep = FEW_SHOT_SEPARATOR if FEW_SHOT_SEPARATOR in text else "\n\n"
        blocks = text.split(sep)
        if len(blocks) > 1:
            exemplars, query = blocks[:-1], blocks[-1]
            lo, hi, best = 0, len(exemplars) - 1, None
            while lo <= hi:  # the most leading exemplars that fit with the query
                mid = (lo + hi) // 2
                cand = encode(sep.join(exemplars[:mid] + [query]))
                if len(cand) <= max_len:
                    best, lo = cand, mid + 1
                else:
                    hi = mid - 1
            if best is not None:
                return best
            ids = encode(query)
            if len(ids) <= max_len:
                return ids
    return _middle_cut(ids, max_len)


# --------------------------------------------------------------------------- one shard


@dataclass(frozen=True)
class ShardJob:
    index: int
    key: str
    path: str
    source: FlanSource
    units: tuple[int, ...]  # global unit numbers
    rows: np.ndarray  # global rows (sorted) kept in this shard
    ttypes: np.ndarray
    tokenizer: object
    max_in: int
    max_tg: int
    process: int


def _encode_arrow(tokenizer, arr):
    fast = getattr(tokenizer, "encode_arrow", None)
    if fast is not None:
        return fast(arr)
    parts = [np.asarray(tokenizer.encode_array(s or ""), dtype=np.int32) for s in arr.to_pylist()]
    off = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=off[1:])
    return (np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)), off


def _encode_one(tokenizer):
    fast = getattr(tokenizer, "encode_array", None)
    return (lambda s: np.asarray(fast(s), dtype=np.int32)) if fast else (lambda s: np.asarray(tokenizer.encode(s), dtype=np.int32))


def _truncate(flat, off, max_len, texts, ttypes, tokenizer, prompt: bool):
    """Cut the rows longer than `max_len`; returns (flat, off, truncated flags, tokens cut)."""
    lengths = np.diff(off)
    over = np.flatnonzero(lengths > max_len)
    flags = np.zeros(len(lengths), dtype=bool)
    cut = np.zeros(len(lengths), dtype=np.int64)
    if len(over) == 0:
        return flat, off, flags, cut
    encode = _encode_one(tokenizer)
    pieces = [flat[off[i]:off[i + 1]] for i in range(len(lengths))]
    for i in over:
        ids = pieces[i]
        if prompt:
            kept = fit_prompt(texts[int(i)].as_py() or "", ids, int(ttypes[i]) in (2, 3), encode, max_len)
        else:
            kept = ids[:max_len]
        flags[i] = True
        cut[i] = len(ids) - len(kept)
        pieces[i] = kept
    new_len = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    new_off = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(new_len, out=new_off[1:])
    return np.concatenate(pieces).astype(np.int32) if pieces else flat[:0], new_off, flags, cut


def build_shard(job: ShardJob) -> dict:
    """Read, tokenize and truncate one shard's rows; write its arrays atomically. Runs in a worker."""
    import pyarrow as pa

    t0 = time.perf_counter()
    src = job.source
    starts = src.unit_starts
    units = src.unit_list()
    ins, tgs = [], []
    for u in job.units:
        lo, hi = int(starts[u]), int(starts[u + 1])
        a, b = np.searchsorted(job.rows, [lo, hi])
        if a == b:
            continue
        p, unit = units[u]
        table = src.read_unit(p, unit, ("inputs", "targets"))
        if b - a < hi - lo:  # a capped task: only its kept rows (all of them: no copy)
            table = table.take(pa.array(job.rows[a:b] - lo, type=pa.int64()))
        ins.append(table.column("inputs").combine_chunks())
        tgs.append(table.column("targets").combine_chunks())
        del table
    inputs = pa.concat_arrays(ins) if ins else pa.array([], pa.string())
    targets = pa.concat_arrays(tgs) if tgs else pa.array([], pa.string())
    in_flat, in_off = _encode_arrow(job.tokenizer, inputs)
    tg_flat, tg_off = _encode_arrow(job.tokenizer, targets)
    in_flat, in_off, tin, cut_in = _truncate(in_flat, in_off, job.max_in, inputs, job.ttypes, job.tokenizer, prompt=True)
    tg_flat, tg_off, ttg, cut_tg = _truncate(tg_flat, tg_off, job.max_tg, targets, job.ttypes, job.tokenizer, prompt=False)
    out = Path(job.path)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays = {"inputs": in_flat.astype(np.int32), "in_off": in_off, "targets": tg_flat.astype(np.int32), "tg_off": tg_off,
              "flags": (tin.astype(np.int8) | (ttg.astype(np.int8) << 1)), "cut": (cut_in + cut_tg).astype(np.int32)}
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr)
    meta = {"rows": len(job.rows), "process": job.process, "host": socket.gethostname(), "pid": os.getpid(),
            "seconds": round(time.perf_counter() - t0, 3)}
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
        os.rename(tmp, out)
    except OSError:  # another process finished the same shard first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


# --------------------------------------------------------------------------- claims, workers


def _lock_path(shard: Path) -> Path:
    return shard.with_name(shard.name + ".lock")


def _claim(shard: Path) -> bool:
    lock = _lock_path(shard)
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        if not _stale(lock):
            return False
        lock.unlink(missing_ok=True)
        return _claim(shard)
    with os.fdopen(fd, "w") as f:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, f)
    if shard.exists():  # finished by another process between our look and our claim
        lock.unlink(missing_ok=True)
        return False
    return True


def _stale(lock: Path) -> bool:
    """A lock whose builder died (same host, no such process) or that is older than the limit."""
    try:
        info = json.loads(lock.read_text() or "{}")
        age = time.time() - lock.stat().st_mtime
    except (OSError, ValueError):
        return False
    if info.get("host") == socket.gethostname() and info.get("pid"):
        try:
            os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    return age > float(os.environ.get("FLANCTL_SHARD_STALE_S", "1800"))


def default_workers() -> int:
    """Tokenizing processes: FLANCTL_DATA_WORKERS, else every core this process may use."""
    env = os.environ.get("FLANCTL_DATA_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# A tokenizing worker is a fresh interpreter (`python -c`), not a multiprocessing child: those
# re-import the parent's __main__ (re-running any unguarded script) and a fork would copy
# framework threads. It gets the parent's sys.path, then its jobs, pickled on stdin.
_BOOT = (
    "import pickle, sys\n"
    "sys.path[:0] = pickle.load(sys.stdin.buffer)\n"
    "from flanctl.data.flan_tokens import _serve\n"
    "_serve()\n"
)


def _serve() -> None:
    import pickle

    jobs = pickle.load(sys.stdin.buffer)
    metas = [build_shard(j) for j in jobs]
    sys.stdout.buffer.write(pickle.dumps(metas))


def _run_jobs(jobs: list[ShardJob], workers: int) -> list[dict]:
    """Build the claimed shards, in `workers` worker processes when there is more than one to build."""
    import pickle
    import subprocess

    if not jobs:
        return []
    try:
        if workers <= 1 or len(jobs) == 1 or not _picklable(jobs[0].tokenizer):
            return [build_shard(j) for j in jobs]
        n = min(workers, len(jobs))
        paths = pickle.dumps([p for p in sys.path if p])
        procs = []
        for w in range(n):  # shards are about the same size: round-robin is balanced enough
            proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            proc.stdin.write(paths + pickle.dumps(jobs[w::n]))  # every worker gets its jobs before any is waited on
            proc.stdin.close()
            proc.stdin = None  # communicate() must not flush it again
            procs.append(proc)
        metas = []
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                lines = [x for x in err.decode(errors="replace").splitlines() if x.strip()]
                raise FlanctlError(f"tokenizing worker failed ({proc.returncode}): {lines[-1] if lines else 'no message'}")
            metas.extend(pickle.loads(out))
        return metas
    finally:
        for j in jobs:
            _lock_path(Path(j.path)).unlink(missing_ok=True)


def _picklable(obj) -> bool:
    import pickle

    try:
        pickle.dumps(obj)
        return True
    except Exception:  # a keras-hub tokenizer: build in this process
        return False


def _build_all(jobs: list[ShardJob], process_index: int, process_count: int, workers: int) -> None:
    todo = [j for j in jobs if not Path(j.path).exists()]
    own = [j for j in todo if j.index % process_count == process_index and _claim(Path(j.path))]
    _run_jobs(own, workers)
    rest = [j for j in todo if not Path(j.path).exists()]
    if not rest:
        return
    grace = float(os.environ.get("FLANCTL_SHARD_WAIT", "60")) if process_count > 1 else 0.0
    deadline = time.time() + grace
    told = False
    while rest:
        mine = []
        for j in rest:
            p = Path(j.path)
            if p.exists():
                continue
            locked = _lock_path(p).exists()
            if (not locked and time.time() >= deadline) or (locked and _stale(_lock_path(p))):
                if _claim(p):
                    mine.append(j)
        _run_jobs(mine, workers)
        rest = [j for j in rest if not Path(j.path).exists()]
        if rest:
            if not told:
                print(f"flanctl: process {process_index}/{process_count}: waiting for {len(rest)} tokenized shard(s) from "
                      f"other processes in {Path(rest[0].path).parent} (a folder all hosts share); shards nobody claims "
                      f"within {grace:.0f} s (FLANCTL_SHARD_WAIT) are built here", file=sys.stderr)
                told = True
            time.sleep(0.2)


# --------------------------------------------------------------------------- the tokenized tasks


class _Npy:
    """One .npy file read by position (`os.pread`), not memory-mapped: a mapped file's touched
    pages count as the process's resident memory and grow with every example sampled; a read
    costs a system call and leaves memory where it was. Open files are shared in a small LRU."""

    _fds: OrderedDict[str, int] = OrderedDict()
    MAX_OPEN = 256

    def __init__(self, path: Path):
        self.path = str(path)
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            self.start = f.tell()
        self.dtype = np.dtype(dtype)
        self.size = int(shape[0]) if shape else 0

    def _fd(self) -> int:
        fd = self._fds.get(self.path)
        if fd is not None:
            self._fds.move_to_end(self.path)
            return fd
        fd = os.open(self.path, os.O_RDONLY)
        self._fds[self.path] = fd
        while len(self._fds) > self.MAX_OPEN:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def read(self, lo: int, hi: int) -> np.ndarray:
        n = max(0, hi - lo)
        if n == 0:
            return np.zeros(0, self.dtype)
        data = os.pread(self._fd(), n * self.dtype.itemsize, self.start + lo * self.dtype.itemsize)
        return np.frombuffer(data, dtype=self.dtype).copy()

    def all(self) -> np.ndarray:
        return self.read(0, self.size)


class _Shard:
    def __init__(self, path: Path):
        self.path = path
        self.inputs, self.in_off = _Npy(path / "inputs.npy"), _Npy(path / "in_off.npy")
        self.targets, self.tg_off = _Npy(path / "targets.npy"), _Npy(path / "tg_off.npy")
        self.meta = json.loads((path / "meta.json").read_text())

    def __len__(self) -> int:
        return self.in_off.size - 1

    def column(self, name: str) -> np.ndarray:
        return np.load(self.path / f"{name}.npy")

    def example(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        a0, a1 = self.in_off.read(j, j + 2)
        b0, b1 = self.tg_off.read(j, j + 2)
        return self.inputs.read(int(a0), int(a1)).astype(np.int32), self.targets.read(int(b0), int(b1)).astype(np.int32)


class FlanTokenizedTask:
    """One task's kept rows, tokenized, read from the shards on disk by position (the TokenizedTask interface)."""

    from_cache = True

    def __init__(self, name, shards, shard_starts, positions, ttypes, tokens, truncated_inputs, truncated_targets, tokens_cut):
        self.name = name
        self._shards = shards
        self._starts = shard_starts
        self._pos = positions  # positions in the source's kept rows (sorted), int64
        self._ttypes = ttypes
        self._tokens = int(tokens)
        self.truncated_inputs = int(truncated_inputs)
        self.truncated_targets = int(truncated_targets)
        self.tokens_cut = int(tokens_cut)

    def __len__(self) -> int:
        return len(self._pos)

    def example(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        q = int(self._pos[i])
        s = int(np.searchsorted(self._starts, q, side="right")) - 1
        return self._shards[s].example(q - int(self._starts[s]))

    @property
    def tokens(self) -> int:
        return self._tokens

    def format_name(self, i: int) -> str:
        """The row's template type, as the dumps name it (zs_opt, zs_noopt, fs_opt, fs_noopt)."""
        t = int(self._ttypes[i])
        return TEMPLATE_TYPES[t] if t < OTHER_TYPE else "other"

    @property
    def built_by(self) -> dict[int, int]:
        """Rows built by each process (for checks that hosts shared the work)."""
        out: dict[int, int] = {}
        for sh in self._shards:
            out[sh.meta["process"]] = out.get(sh.meta["process"], 0) + sh.meta["rows"]
        return out


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"|")
    return h.hexdigest()[:20]


def tokenize_flan_group(refs: list[FlanTaskRef], names: list[str], tokenizer, mixture_spec, cache_dir: Path,
                        process_index: int = 0, process_count: int = 1, workers: int | None = None) -> list[FlanTokenizedTask]:
    """Tokenize the kept rows of the tasks of one source (shared shards), in the order of `refs`."""
    index = refs[0].index
    src = index.source
    rows = select_rows(index, {r.code: r.alloc for r in refs}, mixture_spec.seed)
    task_of = index.task[rows]
    ttype = index.ttype[rows]
    max_in = mixture_spec.inputs_length - 1  # one slot for bos (decoder) or eos (encoder)
    max_tg = mixture_spec.targets_length - 1  # one slot for eos
    if max_in < 1 or max_tg < 1:
        raise FlanctlError("mixture.inputs_length and targets_length must be at least 2")
    base = _digest(TOKENS_VERSION, src.fingerprint, tokenizer.fingerprint, max_in, max_tg)
    folder = Path(cache_dir) / "flan_tokens" / base
    starts = src.unit_starts
    per_unit = np.diff(np.searchsorted(rows, starts))
    jobs: list[ShardJob] = []
    cur: list[int] = []
    n = 0
    r0 = 0

    def close(r0: int, r1: int) -> None:
        sel = rows[r0:r1]
        key = _digest(base, tuple(cur), hashlib.sha256(sel.tobytes()).hexdigest())
        j = len(jobs)
        jobs.append(ShardJob(j, key, str(folder / f"shard-{j:05d}-{key}"), src, tuple(cur), sel, ttype[r0:r1],
                             tokenizer, max_in, max_tg, process_index))

    for u, k in enumerate(per_unit):
        if k == 0:
            continue
        cur.append(u)
        n += int(k)
        if n >= SHARD_ROWS:
            close(r0, r0 + n)
            r0, cur, n = r0 + n, [], 0
    if cur:
        close(r0, r0 + n)
    _build_all(jobs, process_index, process_count, workers or default_workers())

    shards = [_Shard(Path(j.path)) for j in jobs]
    shard_starts = np.concatenate([[0], np.cumsum([len(s) for s in shards])]).astype(np.int64)
    if shard_starts[-1] != len(rows):
        raise FlanctlError(f"tokenized shards in {folder} do not match the kept rows; delete the folder and run again")
    n_tasks = len(index.names)
    tokens = np.zeros(n_tasks, dtype=np.int64)
    trunc_in = np.zeros(n_tasks, dtype=np.int64)
    trunc_tg = np.zeros(n_tasks, dtype=np.int64)
    cut = np.zeros(n_tasks, dtype=np.int64)
    for s, sh in enumerate(shards):  # per-task sums shard by shard: bounded memory
        codes = task_of[shard_starts[s]:shard_starts[s + 1]]
        lengths = np.diff(sh.column("in_off")) + np.diff(sh.column("tg_off"))
        flags = sh.column("flags")
        tokens += np.bincount(codes, weights=lengths, minlength=n_tasks).astype(np.int64)
        trunc_in += np.bincount(codes, weights=(flags & 1), minlength=n_tasks).astype(np.int64)
        trunc_tg += np.bincount(codes, weights=(flags >> 1) & 1, minlength=n_tasks).astype(np.int64)
        cut += np.bincount(codes, weights=sh.column("cut"), minlength=n_tasks).astype(np.int64)
    order = np.argsort(task_of, kind="stable").astype(np.int32 if len(rows) < 2**31 else np.int64)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(task_of, minlength=n_tasks))])
    out = []
    for ref, name in zip(refs, names):
        pos = order[bounds[ref.code]:bounds[ref.code + 1]]
        out.append(FlanTokenizedTask(name, shards, shard_starts, pos, ttype[pos], tokens[ref.code],
                                     trunc_in[ref.code], trunc_tg[ref.code], cut[ref.code]))
    return out
