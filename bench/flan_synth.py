"""Synthetic rows in the exact format of the public Flan 2022 submix dumps, at any size.

Columns `inputs, targets, task_source, task_name, template_type`; template types `zs_opt`,
`zs_noopt`, `fs_opt`, `fs_noopt` in equal shares; few-shot rows hold 2-5 exemplars joined with
"\\n\\n\\n" (Flan's example separator) before the final query; `*_opt` rows end with an OPTIONS
block. Lengths are lognormal, so that a row averages ~1.5 kB of Arrow, as the real dumps do
(26.9 GB / 17.3M rows); zero-shot prompts ~600 characters, few-shot ~2,500, a few over 2,048
tokens. Text is slices of a Zipf-distributed pseudo-word pool, so that SentencePiece sees
word-like text. Written as Parquet in row groups of 20,000 rows, block by block (bounded memory).

    .venv/bin/python bench/flan_synth.py OUT.parquet --rows 100000 [--tasks 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TYPES = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
SOURCES = ("Flan2021", "T0", "NIv2", "CoT")
POOL_CHARS = 8_000_000


def text_pool(seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    freq = 1.0 / np.arange(1, 27) ** 0.9
    words = ["".join(rng.choice(letters, size=int(rng.integers(2, 10)), p=freq / freq.sum())) for _ in range(6000)]
    zipf = 1.0 / np.arange(1, len(words) + 1)
    picks = rng.choice(len(words), size=POOL_CHARS // 5, p=zipf / zipf.sum())
    seps = rng.choice([" ", " ", " ", " ", " ", " ", ", ", ". ", "? ", "\n"], size=len(picks))
    return "".join(w + s for w, s in zip((words[i] for i in picks), seps))[:POOL_CHARS]


def task_names(n: int) -> list[str]:
    kinds = ("question_answering", "classification", "summarization", "translation", "text_generation", "nli")
    return [f"task{i:04d}_{'ab'[i % 2]}{i % 97}_{kinds[i % len(kinds)]}" for i in range(n)]


def _chunk(rng, pool: str, names: list[str], n: int) -> dict[str, list[str]]:
    L = len(pool)
    types = rng.integers(0, 4, size=n)
    tasks = rng.integers(0, len(names), size=n)
    q_len = np.clip(rng.lognormal(6.0, 0.6, size=n), 20, 20_000).astype(np.int64)  # ~480 chars
    t_len = np.clip(rng.lognormal(3.6, 1.0, size=n), 1, 4_000).astype(np.int64)  # ~60 chars
    shots = rng.integers(2, 6, size=n)
    q_off = rng.integers(0, L - 25_000, size=n)
    t_off = rng.integers(0, L - 5_000, size=n)
    inputs, targets = [], []
    for i in range(n):
        t = int(types[i])
        q = pool[q_off[i]:q_off[i] + q_len[i]]
        if t in (0, 2):
            q += "\nOPTIONS:\n- " + pool[t_off[i]:t_off[i] + 12] + "\n- " + pool[t_off[i] + 12:t_off[i] + 25]
        if t >= 2:
            k = int(shots[i])
            offs = rng.integers(0, L - 5_000, size=k)
            lens = np.clip(rng.lognormal(6.0, 0.5, size=k), 20, 4_000).astype(np.int64)
            ex = [pool[o:o + ln] + "\n\n" + pool[o + ln:o + ln + 40] for o, ln in zip(offs, lens)]
            q = "\n\n\n".join(ex + [q])
        inputs.append(q)
        targets.append(pool[t_off[i]:t_off[i] + t_len[i]])
    return {"inputs": inputs, "targets": targets,
            "task_source": [SOURCES[int(x) % 4] for x in tasks],
            "task_name": [names[int(x)] for x in tasks],
            "template_type": [TYPES[int(x)] for x in types]}


def write_submix(out: Path, rows: int, tasks: int = 1000, seed: int = 0, pool: str | None = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pool = pool or text_pool(seed)
    names = task_names(tasks)
    rng = np.random.default_rng([seed, rows])
    tmp = out.with_name(f".{out.name}.tmp")
    schema = pa.schema([(c, pa.string()) for c in ("inputs", "targets", "task_source", "task_name", "template_type")])
    with pq.ParquetWriter(str(tmp), schema) as w:
        for start in range(0, rows, 20_000):
            w.write_table(pa.table(_chunk(rng, pool, names, min(20_000, rows - start)), schema=schema), row_group_size=20_000)
    tmp.rename(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(write_submix(Path(a.out), a.rows, a.tasks, a.seed))


if __name__ == "__main__":
    main()
