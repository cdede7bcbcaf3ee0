"""`flanctl data stats` and `flanctl plan` on the Flan 2022 submix format at growing sizes: rows,
seconds, CPU, peak RSS; against today's code (the commit before this change) in the same run.

Data: `bench/flan_synth.py` rows (exact submix columns, ~1,000 task names, the four template
types, few-shot rows with their exemplars, ~1.5 kB a row), one Parquet file per size, kept in
--work between runs. Spec: collection `muffin` (cap 30,000, so every row is kept and tokenized:
the full-scale work), SentencePiece tokenizer (8k vocabulary, trained once on the synthetic text
and shared by both sides), palm, inputs 2048 / targets 512, packing.

Each command runs as a child process, cold (fresh cache folders, fresh HF datasets cache),
started by a small launcher that samples its process tree every 50 ms (needs psutil): peak RSS
of the largest single process (the command or one of its tokenizing workers; ru_maxrss for
both) and of the whole tree (summed per sample); CPU is user+sys of the command and its workers
(its waited children, so the kernel adds them up). "Today" is the flanctl package of the commit
before `flanctl/data/flan_source.py` was added (`git archive`), run from a temporary folder on
the same spec file (it carries `columns: {task: task_name}`, so today's code also caps by task),
at --old-sizes only: at 100k rows it already takes minutes.

    .venv/bin/python bench/data_scale.py                                    # 100k, 400k, 1.6M; today at 100k
    .venv/bin/python bench/data_scale.py --sizes 20000 80000 --old-sizes 20000   # quick
    .venv/bin/python bench/data_scale.py --plan-only                         # plan only, all sizes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SPEC = """\
apiVersion: flanctl/v1
name: scale-{rows}
model: {{family: palm, size: tiny, tokenizer: {{kind: sentencepiece, path: {spm}}}}}
mixture:
  collections:
    - name: muffin
      proportion: 1
      source: {{kind: local, path: {data}, columns: {{task: task_name}}}}
  inputs_length: 2048
  targets_length: 512
  cache_dir: {cache}
train: {{batch_size: 32, steps: 100}}
"""


# A small launcher runs the command: a process forked from this (large) bench process would
# inherit its RSS high-water mark in ru_maxrss. The launcher also samples the command's whole
# process tree every 50 ms: tokenizing workers are children of multiprocessing's forkserver,
# whose resource usage never reaches the command's wait4. Per process it keeps the last CPU
# time and the largest RSS seen; the tree's RSS is summed per sample.
RUNNER = """
import json, os, subprocess, sys, time
import psutil
p = subprocess.Popen(sys.argv[1:])
root = psutil.Process(p.pid)
cpu, rss, tree = {}, {}, 0
while p.poll() is None:
    total = 0
    try:
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        procs = []
    for q in procs:
        try:
            with q.oneshot():
                t, m = q.cpu_times(), q.memory_info().rss
        except psutil.Error:
            continue
        cpu[q.pid] = t.user + t.system
        rss[q.pid] = max(rss.get(q.pid, 0), m)
        total += m
    tree = max(tree, total)
    time.sleep(0.05)
ru = p.returncode
own = os.times()
# the command waits for its workers, so its own children's times are in here: exact
child_cpu = own.children_user + own.children_system
import resource
maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
busy = sorted((round(v, 1) for v in cpu.values() if v >= 1.0), reverse=True)
sys.stderr.write("\\nRUSAGE " + json.dumps([ru, max(child_cpu, sum(cpu.values())), max([maxrss] + list(rss.values())), tree, busy]) + "\\n")
"""


def measure(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Run `cmd` through the launcher: wall, CPU of the command and its workers, the largest
    process's peak RSS, and the peak RSS summed over the process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", RUNNER] + cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    err = err.decode()
    line = [x for x in err.splitlines() if x.startswith("RUSAGE ")]
    code, cpu, maxrss, tree, busy = json.loads(line[-1][7:]) if line else (proc.returncode, 0.0, 0, 0, [])
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{err[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "maxrss_mb": maxrss / 2**20, "tree_peak_mb": tree / 2**20, "busy": busy,
            "stdout": out.decode()}


def train_spm(path: Path) -> None:
    import flan_synth

    from flanctl.data.tokenizers import train_sentencepiece

    pool = flan_synth.text_pool()
    texts = [pool[i:i + 2000] for i in range(0, 4_000_000, 2000)]
    train_sentencepiece(texts, path, 8000)


def today_rev() -> str:
    """The commit before the Flan-format source was added (its parent), else HEAD."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--", "flanctl/data/flan_source.py"],
                           capture_output=True, text=True).stdout.split()
    return f"{added[-1]}^" if added else "HEAD"


def old_tree(work: Path) -> Path:
    """Today's flanctl package (the commit before this change), unpacked once."""
    dest = work / "today"
    if not (dest / "flanctl").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", today_rev(), "flanctl"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_size(rows: int, work: Path, spm: Path, old: bool, results: list, plan_only: bool = False) -> None:
    import flan_synth

    data = work / f"submix-{rows}.parquet"
    if not data.exists():
        t = time.perf_counter()
        flan_synth.write_submix(data, rows)
        print(f"# generated {rows:,} rows in {time.perf_counter() - t:.0f} s: {data.stat().st_size / 2**20:.0f} MiB Parquet", flush=True)
    sides = [("new", ROOT)] + ([("today", old_tree(work))] if old else [])
    for side, code in sides:
        run = Path(tempfile.mkdtemp(prefix=f"{side}-{rows}-", dir=work))
        spec = run / "spec.yaml"
        spec.write_text(SPEC.format(rows=rows, spm=spm, data=data, cache=run / "cache"))
        env = {**os.environ, "PYTHONPATH": str(code), "HF_DATASETS_CACHE": str(run / "hf"), "HF_DATASETS_OFFLINE": "1",
               "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "FLANCTL_DATA_WORKERS": os.environ.get("FLANCTL_DATA_WORKERS", "")}
        if not env["FLANCTL_DATA_WORKERS"]:
            env.pop("FLANCTL_DATA_WORKERS")
        py = [sys.executable, "-c", "import sys; from flanctl.cli import app; sys.argv[0] = 'flanctl'; app()"]
        check = subprocess.run([sys.executable, "-c", "import flanctl; print(flanctl.__file__)"], env=env, cwd=run,
                               capture_output=True, text=True, check=True).stdout.strip()
        assert check.startswith(str(code)), f"{side} imported {check}, not {code}"
        steps = [("plan (cold)", ["plan", str(spec), "--json", "--out", str(run / "plan.json")]),
                 ("plan (warm)", ["plan", str(spec), "--json", "--out", str(run / "plan.json")]),
                 ("data stats (cold)", ["data", "stats", str(spec), "--json"])][:2 if plan_only else 3]
        for what, args in steps:
            m = measure(py + args, env, run)
            kept = None
            if what.startswith("data stats"):
                kept = json.loads(m["stdout"])["examples"]
            elif what.startswith("plan"):
                realized = json.loads(m["stdout"])["mixture"]["realized"] or {}
                kept = sum(t["count"] for t in realized.get("tasks", []))
            row = {"rows": rows, "side": side, "what": what, "kept": kept, **{k: v for k, v in m.items() if k != "stdout"}}
            results.append(row)
            print(f"{rows:>9,} {side:>5} {what:<18} kept {kept or 0:>9,}  wall {m['wall_s']:8.1f} s  cpu {m['cpu_s']:8.1f} s "
                  f"(x{m['cpu_s'] / m['wall_s']:.2f})  maxrss {m['maxrss_mb']:7.0f} MB  tree peak {m['tree_peak_mb']:7.0f} MB  "
                  f"CPU-s per busy process {m['busy']}", flush=True)
        shutil.rmtree(run / "hf", ignore_errors=True)
        shutil.rmtree(run / "cache", ignore_errors=True)


def summary(results: list) -> None:
    stats = {(r["rows"], r["side"]): r for r in results if r["what"] == "data stats (cold)"}
    print("\n| rows | code | data stats wall s | CPU s | cores used | rows/CPU-s | peak RSS (largest process) | peak RSS (tree) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (rows, side), r in sorted(stats.items()):
        print(f"| {rows:,} | {side} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['cpu_s'] / r['wall_s']:.2f} | "
              f"{r['kept'] / r['cpu_s']:,.0f} | {r['maxrss_mb']:,.0f} MB | {r['tree_peak_mb']:,.0f} MB |")
    for rows in sorted({k[0] for k in stats}):
        if (rows, "today") in stats:
            a, b = stats[(rows, "new")], stats[(rows, "today")]
            print(f"ratio at {rows:,} rows (today / new): wall {b['wall_s'] / a['wall_s']:.1f}x, per-core speed "
                  f"(rows per CPU-second) {(a['kept'] / a['cpu_s']) / (b['kept'] / b['cpu_s']):.1f}x, peak RSS {b['maxrss_mb'] / a['maxrss_mb']:.1f}x")
    plans = [r for r in results if r["what"].startswith("plan")]
    print("\n| rows | code | plan | wall s | peak RSS |")
    print("| --- | --- | --- | --- | --- |")
    for r in plans:
        print(f"| {r['rows']:,} | {r['side']} | {r['what']} | {r['wall_s']:.2f} | {r['maxrss_mb']:,.0f} MB |")
    new = sorted((r for r in stats.values() if r["side"] == "new"), key=lambda r: r["rows"])
    if len(new) >= 2:
        a, b = new[-2], new[-1]
        per_row_s = (b["wall_s"] - a["wall_s"]) / (b["rows"] - a["rows"])
        per_row_mb = (b["maxrss_mb"] - a["maxrss_mb"]) / (b["rows"] - a["rows"])
        n = 17_300_000
        print(f"\nextrapolation to {n:,} rows (linear through the two largest sizes, same cores): data stats "
              f"~{b['wall_s'] + per_row_s * (n - b['rows']):,.0f} s, peak RSS ~{b['maxrss_mb'] + per_row_mb * (n - b['rows']):,.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 400_000, 1_600_000])
    ap.add_argument("--old-sizes", type=int, nargs="*", default=[100_000], help="sizes at which today's code also runs")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "flanctl-bench-scale"))
    ap.add_argument("--json", help="also write the measurements here")
    ap.add_argument("--plan-only", action="store_true", help="measure `plan` only (seconds)")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    spm = work / "spm8k.model"
    if not spm.exists():
        train_spm(spm)
    print(f"# cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}", flush=True)
    results: list = []
    for rows in a.sizes:
        run_size(rows, work, spm, rows in a.old_sizes, results, a.plan_only)
    summary(results)
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
