"""The toy scaling experiment: held-out score vs. number of finetuning tasks, per model size.

Runs `flanctl apply` on every spec in `examples/scaling/grid/` (3 model sizes x 1, 4, 8, 16
built-in training tasks; all evaluated on the built-in held-out tasks, which no run trains
on), then `flanctl report` over all of them, which draws the plot in the shape of Figure 4 of
Chung et al. (2022). Runs whose evals already exist are skipped, so an interrupted experiment
picks up where it stopped. `make scaling` calls this script.

    python examples/scaling/run.py                     # the whole grid (36 min on 2 idle CPU cores)
    python examples/scaling/run.py --sizes s m --tasks 1 16 --steps 50   # a quick look
    python examples/scaling/run.py --report-only       # redraw from the finished runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flanctl.errors import FlanctlError
from flanctl.plan import Plan

HERE = Path(__file__).resolve().parent
GRID = HERE / "grid"
REPO = HERE.parents[1]
WORKDIR = [REPO]  # where runs/ and reports/ go (--workdir); a list so that main() can set it


def flanctl(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI of this very interpreter's flanctl (no reliance on PATH)."""
    cmd = [sys.executable, "-m", "flanctl.cli", *args]
    return subprocess.run(cmd, cwd=WORKDIR[0], text=True, capture_output=capture, check=False)


def grid_specs(sizes: list[str], tasks: list[int]) -> list[Path]:
    specs = [GRID / f"{s}-t{k:02d}.yaml" for s in sizes for k in tasks]
    missing = [p for p in specs if not p.exists()]
    if missing:
        sys.exit(f"error: no grid spec {missing[0].relative_to(REPO)}; sizes are s/m/l and task counts 1/4/8/16")
    return specs


def run_dir(spec: Path, overrides: list[str]) -> tuple[Path, str]:
    """Where `flanctl apply` will put the run, as the plan says, and the plan's spec hash."""
    sets = [a for o in overrides for a in ("--set", o)]
    # --out keeps the user's last saved plan (.flanctl/plan.json) untouched.
    with tempfile.TemporaryDirectory() as tmp:
        proc = flanctl("plan", str(spec), "--json", "--out", str(Path(tmp) / "plan.json"), *sets, capture=True)
    if proc.returncode not in (0, 2) or not proc.stdout.strip().startswith("{"):
        sys.exit(f"error: `flanctl plan {spec.relative_to(REPO)}` failed: {proc.stderr.strip()}")
    plan = json.loads(proc.stdout)
    path = Path(plan["run"]["dir"])
    return (path if path.is_absolute() else WORKDIR[0] / path), plan["spec_hash"]


def is_done(rdir: Path, spec_hash: str) -> bool:
    """Evaluated already, and with this very spec (same steps, sizes, overrides)?"""
    try:
        return (rdir / "evals" / "builtin.json").exists() and Plan.load(rdir / "plan.json").spec_hash == spec_hash
    except FlanctlError:
        return False


def apply_and_eval(spec: Path, overrides: list[str], rdir: Path, replace: bool) -> int:
    """`flanctl apply` the spec; then `flanctl eval` when apply left no builtin eval behind."""
    stale = rdir / "evals" / "builtin.json"
    if stale.exists():  # from an earlier spec of this run: must not be mistaken for this one's
        stale.unlink()
    proc = flanctl("apply", str(spec), *[a for o in overrides for a in ("--set", o)], *(["--replace"] if replace else []))
    if proc.returncode != 0:
        return proc.returncode
    if (rdir / "evals" / "builtin.json").exists():
        return 0
    limit = Plan.load(rdir / "plan.json").spec.eval.limit
    extra = ["--limit", str(limit)] if limit else []
    return flanctl("eval", "--run", str(rdir), "--suite", "builtin", *extra, capture=True).returncode


# The untrained model of each size: one optimizer step at a learning rate too small to move
# any weight, so that `apply` + its evals give the score before finetuning (the paper's
# "0 tasks" point). Its result is copied into every run of that size as
# `evals/builtin.before.json`, which `flanctl report` draws at x = 0.
INIT_OVERRIDES = ["train.steps=1", "train.learning_rate=1e-12", "train.warmup_steps=0", "train.checkpoint_every=1"]


def ensure_tokenizer(overrides: list[str]) -> None:
    """Train the grid's shared SentencePiece model on the largest (16-task) mixture before any
    run: otherwise the first run would train it on its own, smaller mixture and every later run
    would reuse that. `flanctl data stats` trains a missing tokenizer and changes nothing else."""
    spec = GRID / "s-t16.yaml"
    proc = flanctl("data", "stats", str(spec), *[a for o in overrides for a in ("--set", o)], capture=True)
    if proc.returncode != 0:
        sys.exit(f"error: could not prepare the tokenizer with `flanctl data stats {spec.relative_to(REPO)}`: {proc.stderr.strip()}")


def measure_before(size: str, spec: Path, targets: list[Path], force: bool, extra: list[str]) -> None:
    """Evaluate the untrained model of `size` once and record it in each of `targets`."""
    name = f"scaling-{size}-init"
    overrides = [*extra, *INIT_OVERRIDES, f"name={name}"]
    init_dir, spec_hash = run_dir(spec, overrides)
    result = init_dir / "evals" / "builtin.json"
    if force or not is_done(init_dir, spec_hash):
        if apply_and_eval(spec, overrides, init_dir, replace=True) != 0 or not result.exists():
            print(f"warning: could not score the untrained {size} model; the plot has no 0-task point for it", file=sys.stderr)
            return
    for target in targets:
        (target / "evals").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result, target / "evals" / "builtin.before.json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["s", "m", "l"], help="model sizes from sizes/ (s, m, l)")
    ap.add_argument("--tasks", nargs="+", type=int, default=[1, 4, 8, 16], help="task counts from tasks/")
    ap.add_argument("--steps", type=int, default=None, help="override train.steps of every run")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field of every run, e.g. --set eval.limit=10 (repeatable)")
    ap.add_argument("--workdir", default=str(REPO), help="folder that receives runs/ and reports/ (default: the repository)")
    ap.add_argument("--out", default="reports/scaling", help="report folder (relative to --workdir)")
    ap.add_argument("--docs-png", default=None, help="also copy the scaling plot here (e.g. docs/scaling.png)")
    ap.add_argument("--report-only", action="store_true", help="skip training; report on the finished runs")
    ap.add_argument("--force", action="store_true", help="re-run runs that already have evals")
    ap.add_argument("--no-before", action="store_true", help="do not score the untrained models (no 0-task point)")
    args = ap.parse_args()
    WORKDIR[0] = Path(args.workdir).resolve()
    WORKDIR[0].mkdir(parents=True, exist_ok=True)

    overrides = [f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}"] if args.steps else []
    overrides += args.sets
    specs = grid_specs(args.sizes, args.tasks)
    if not args.report_only:
        ensure_tokenizer(args.sets)
    run_dirs: list[Path] = []
    started = time.perf_counter()
    for i, spec in enumerate(specs, start=1):
        rdir, spec_hash = run_dir(spec, overrides)
        run_dirs.append(rdir)
        done = is_done(rdir, spec_hash)
        label = f"[{i}/{len(specs)}] {spec.relative_to(REPO)}"
        if args.report_only or (done and not args.force):
            print(f"{label}: {'skipped' if args.report_only else 'already evaluated'} ({rdir})")
            continue
        t0 = time.perf_counter()
        code = apply_and_eval(spec, overrides, rdir, replace=args.force)
        if code != 0:
            print(f"{label}: flanctl apply/eval failed (exit {code}); stopping", file=sys.stderr)
            return code
        print(f"{label}: done in {time.perf_counter() - t0:.0f}s (total {time.perf_counter() - started:.0f}s)")

    if not args.report_only and not args.no_before:
        for size in args.sizes:
            size_specs = [(sp, d) for sp, d in zip(specs, run_dirs) if sp.stem.startswith(f"{size}-") and d.is_dir()]
            if size_specs:
                measure_before(size, size_specs[0][0], [d for _, d in size_specs], args.force, args.sets)

    finished = [d for d in run_dirs if d.is_dir()]
    if not finished:
        print("error: no finished runs to report on", file=sys.stderr)
        return 1
    out = WORKDIR[0] / args.out
    proc = flanctl("report", *map(str, finished), "--out", str(out), "--title", "flanctl toy scaling experiment")
    if proc.returncode != 0:
        return proc.returncode
    if args.docs_png and (out / "scaling.png").exists():
        dest = REPO / args.docs_png
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "scaling.png", dest)
        print(f"copied the scaling plot to {dest.relative_to(REPO)}")
    print(f"scaling experiment: {len(finished)} run(s), {time.perf_counter() - started:.0f}s; report in {out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
