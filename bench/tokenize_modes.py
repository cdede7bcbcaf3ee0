"""How to use every core for SentencePiece: worker processes or the tokenizer's own threads?

Encodes the `inputs` of N submix rows (bench/flan_synth.py) with the bench's 8k SentencePiece
model four ways, in the same run: today's loop (one `encode` per text, twice for the few-shot
budget's count), one batched call per 1,024 rows on one thread, batched with
`num_threads=cores`, and batched in `cores` worker processes (what flanctl does: one shard per
worker). Prints rows/s and the ratio to the first.

    .venv/bin/python bench/tokenize_modes.py [--rows 40000] [--work /tmp/flanctl-bench-scale]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _encode_part(args):
    model, texts, threads = args
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model)
    n = 0
    for s in range(0, len(texts), 1024):
        n += sum(map(len, sp.encode(texts[s:s + 1024], num_threads=threads)))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "flanctl-bench-scale"))
    a = ap.parse_args()
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import pyarrow.parquet as pq
    import sentencepiece as spm

    import flan_synth
    from data_scale import train_spm

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "spm8k.model"
    if not model.exists():
        train_spm(model)
    data = work / f"modes-{a.rows}.parquet"
    if not data.exists():
        flan_synth.write_submix(data, a.rows)
    texts = pq.read_table(data, columns=["inputs"]).column("inputs").to_pylist()
    cores = len(os.sched_getaffinity(0))
    sp = spm.SentencePieceProcessor(model_file=str(model))
    results = {}

    t = time.perf_counter()
    for s in texts:  # today: encode, and count (= encode again) for few-shot budgets
        sp.encode(s)
        len(sp.encode(s))
    results["today's loop (encode + count per text)"] = time.perf_counter() - t
    t = time.perf_counter()
    _encode_part((str(model), texts, 1))
    results["batched, 1 thread"] = time.perf_counter() - t
    t = time.perf_counter()
    _encode_part((str(model), texts, cores))
    results[f"batched, num_threads={cores}"] = time.perf_counter() - t
    t = time.perf_counter()
    parts = [texts[i::cores] for i in range(cores)]
    with ProcessPoolExecutor(cores, mp_context=mp.get_context("forkserver")) as pool:
        list(pool.map(_encode_part, [(str(model), p, 1) for p in parts]))
    results[f"batched, {cores} processes (incl. start)"] = time.perf_counter() - t
    base = results["today's loop (encode + count per text)"]
    print(f"# {len(texts):,} rows, {cores} cores, load average {os.getloadavg()[0]:.1f}")
    print("| mode | seconds | rows/s | speed-up |")
    print("| --- | --- | --- | --- |")
    for k, v in results.items():
        print(f"| {k} | {v:.1f} | {len(texts) / v:,.0f} | {base / v:.2f}x |")


if __name__ == "__main__":
    main()
