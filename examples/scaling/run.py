"""The toy scaling experiment: held-out score vs. number of finetuning tasks, per model size.

Runs `flanctl apply` on every spec in `examples/scaling/grid/` (3 model sizes x 1, 4, 8, 16
built-in training tasks; all evaluated on the built-in held-out tasks, which no run trains
on), then `flanctl report` over all of them, which draws the plot in the shape of Figure 4 of
Chung et al. (2022). Runs whose evals already exist are skipped, so an interrupted experiment
picks up where it stopped. `make scaling` calls this script.

    python examples/scaling/run.py                     # the whole grid (~35 min on 2 CPU cores)
    python examples/scaling/run.py --sizes s m --tasks 1 16 --steps 50   # a quick look
    python examples/scaling/run.py --report-only       # redraw from the finished runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GRID = HERE / "grid"
REPO = HERE.parents[1]


def flanctl(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI of this very interpreter's flanctl (no reliance on PATH)."""
    cmd = [sys.executable, "-m", "flanctl.cli", *args]
    return subprocess.run(cmd, cwd=REPO, text=True, capture_output=capture, check=False)


def grid_specs(sizes: list[str], tasks: list[int]) -> list[Path]:
    specs = [GRID / f"{s}-t{k:02d}.yaml" for s in sizes for k in tasks]
    missing = [p for p in specs if not p.exists()]
    if missing:
        sys.exit(f"error: no grid spec {missing[0].relative_to(REPO)}; sizes are s/m/l and task counts 1/4/8/16")
    return specs


def run_dir(spec: Path, overrides: list[str]) -> Path:
    """Where `flanctl apply` will put the run, as the plan says."""
    sets = [a for o in overrides for a in ("--set", o)]
    proc = flanctl("plan", str(spec), "--json", *sets, capture=True)
    if proc.returncode not in (0, 2) or not proc.stdout.strip().startswith("{"):
        sys.exit(f"error: `flanctl plan {spec.relative_to(REPO)}` failed: {proc.stderr.strip()}")
    plan = json.loads(proc.stdout)
    path = Path(plan["run"]["dir"])
    return path if path.is_absolute() else REPO / path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["s", "m", "l"], help="model sizes from sizes/ (s, m, l)")
    ap.add_argument("--tasks", nargs="+", type=int, default=[1, 4, 8, 16], help="task counts from tasks/")
    ap.add_argument("--steps", type=int, default=None, help="override train.steps of every run")
    ap.add_argument("--out", default="reports/scaling", help="report folder (relative to the repository)")
    ap.add_argument("--docs-png", default=None, help="also copy the scaling plot here (e.g. docs/scaling.png)")
    ap.add_argument("--report-only", action="store_true", help="skip training; report on the finished runs")
    ap.add_argument("--force", action="store_true", help="re-run runs that already have evals")
    args = ap.parse_args()

    overrides = [f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}"] if args.steps else []
    specs = grid_specs(args.sizes, args.tasks)
    run_dirs: list[Path] = []
    started = time.perf_counter()
    for i, spec in enumerate(specs, start=1):
        rdir = run_dir(spec, overrides)
        run_dirs.append(rdir)
        done = (rdir / "evals" / "builtin.json").exists()
        label = f"[{i}/{len(specs)}] {spec.relative_to(REPO)}"
        if args.report_only or (done and not args.force):
            print(f"{label}: {'skipped' if args.report_only else 'already evaluated'} ({rdir.relative_to(REPO)})")
            continue
        t0 = time.perf_counter()
        sets = [a for o in overrides for a in ("--set", o)]
        proc = flanctl("apply", str(spec), *sets)
        if proc.returncode != 0:
            print(f"{label}: flanctl apply failed (exit {proc.returncode}); stopping", file=sys.stderr)
            return proc.returncode
        print(f"{label}: done in {time.perf_counter() - t0:.0f}s (total {time.perf_counter() - started:.0f}s)")

    finished = [d for d in run_dirs if d.is_dir()]
    if not finished:
        print("error: no finished runs to report on", file=sys.stderr)
        return 1
    out = REPO / args.out
    proc = flanctl("report", *map(str, finished), "--out", str(out), "--title", "flanctl toy scaling experiment")
    if proc.returncode != 0:
        return proc.returncode
    if args.docs_png and (out / "scaling.png").exists():
        dest = REPO / args.docs_png
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "scaling.png", dest)
        print(f"copied the scaling plot to {dest.relative_to(REPO)}")
    print(f"scaling experiment: {len(finished)} run(s), {time.perf_counter() - started:.0f}s; report in {out.relative_to(REPO)}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
