"""The toy scaling experiment: held-out score vs. number of finetuning tasks, per model size.

Every size starts from a base pretrained on the built-in corpus: l is the shipped base
(examples/base/), s and m are pretrained first with the same recipe (`pretrain/<size>.yaml`,
skipped when already done). Then `flanctl apply` runs the grid specs of
`examples/scaling/grid/` (3 sizes x 1, 4, 8, 16 world-knowledge training tasks; all 37
training tasks with --tasks 37), all evaluated on the built-in held-out tasks, which no run
trains on. Which tasks a run of 1, 4 or 8 trains on is drawn: each finetuning seed shuffles
the 16 tasks of tasks/t16.yaml into an order of its own and a run takes the first 1, 4 or 8
(nested, as the paper's mixtures grow by adding tasks); tasks/t01..t08.yaml hold seed 0's
draw. Averaged over seeds, a point then measures the number of tasks, not a hand-picked order. Apply scores each base before finetuning (the paper's "0 tasks" point: the
pretrained model alone) and after. `flanctl report` over all of them
draws the plot in the shape of Figure 4 of Chung et al. (2022). Runs whose evals already
exist are skipped, so an interrupted experiment picks up where it stopped. `make scaling`
calls this script.

    python examples/scaling/run.py                     # the whole grid (see README for its time)
    python examples/scaling/run.py --sizes s l --tasks 1 25 --steps 50   # a quick look
    python examples/scaling/run.py --report-only       # redraw from the finished runs
    python examples/scaling/run.py --seeds 0 1 2       # every point in 3 finetuning seeds (mean and range)
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

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
        sys.exit(f"error: no grid spec {missing[0].relative_to(REPO)}; sizes are s/m/l and task counts 1/4/8/16/37")
    return specs


TASKS = HERE / "tasks"


def task_pool() -> list[str]:
    """The 16 world-knowledge training tasks the grid's task counts draw from (tasks/t16.yaml)."""
    return list(yaml.safe_load((TASKS / "t16.yaml").read_text())["mixture"]["collections"][0]["tasks"])


def drawn_tasks(seed: int, count: int) -> list[str]:
    """The tasks of a run of `count` tasks in finetuning seed `seed`: the first `count` of the
    seed's own shuffle of the pool, listed in the pool's order. Nested: a seed's 4 contain
    its 1 and its 8 contain its 4."""
    pool = task_pool()
    order = pool[:]
    random.Random(f"flanctl-scaling-order/{seed}").shuffle(order)
    chosen = set(order[:count])
    return [t for t in pool if t in chosen]


def seed_overrides(spec: Path, seed: int) -> list[str]:
    """Overrides of a run in finetuning seed `seed`: seed 0 is the grid spec as written; any
    other seed draws its own tasks (`drawn_tasks`) and mixture and initialises training anew,
    in a run of its own name."""
    if seed == 0:
        return []  # tasks/tNN.yaml hold seed 0's draw (tested)
    sets = [f"train.seed={seed}", f"mixture.seed={seed}", f"name=scaling-{spec.stem}-seed{seed}"]
    count = int(spec.stem.split("-t")[1])
    if count < len(task_pool()):  # the whole pool (16) and all 37 tasks are the same set in every seed
        sets.append(f"mixture.collections.0.tasks=[{', '.join(drawn_tasks(seed, count))}]")
    return sets


def run_dir(spec: Path, overrides: list[str]) -> tuple[Path, bool]:
    """Where `flanctl apply` will put the run, as the plan says, and whether the run there is
    complete and up to date (the plan's diff has nothing to do: same spec, steps and built-in
    data)."""
    sets = [a for o in overrides for a in ("--set", o)]
    # --out keeps the user's last saved plan (.flanctl/plan.json) untouched.
    with tempfile.TemporaryDirectory() as tmp:
        proc = flanctl("plan", str(spec), "--json", "--out", str(Path(tmp) / "plan.json"), *sets, capture=True)
    if proc.returncode not in (0, 2) or not proc.stdout.strip().startswith("{"):
        sys.exit(f"error: `flanctl plan {spec.relative_to(REPO)}` failed: {proc.stderr.strip()}")
    plan = json.loads(proc.stdout)
    path = Path(plan["run"]["dir"])
    return (path if path.is_absolute() else WORKDIR[0] / path), plan["run"]["diff"].get("action") == "none"


def scored_today(result_file: Path) -> bool:
    """Whether an eval result exists and scores today's held-out tasks (the catalog's set)."""
    from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS

    try:
        return set(json.loads(result_file.read_text())["tasks"]) == set(BUILTIN_HELD_OUT_TASKS)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def is_done(rdir: Path, up_to_date: bool) -> bool:
    """An up-to-date run (`run_dir`) evaluated already, before and after, on today's held-out tasks?"""
    evals = rdir / "evals"
    return up_to_date and scored_today(evals / "builtin.json") and scored_today(evals / "builtin.before.json")


def apply_and_eval(spec: Path, overrides: list[str], rdir: Path, replace: bool) -> int:
    """`flanctl apply` the spec; then `flanctl eval` when apply left no builtin eval behind."""
    stale = rdir / "evals" / "builtin.json"
    if stale.exists():  # from an earlier spec of this run: must not be mistaken for this one's
        stale.unlink()
    if (rdir / "checkpoints").is_dir() and not scored_today(rdir / "evals" / "builtin.before.json"):
        # Its score before finetuning (apply's step-0 eval: the "0 tasks" point) is of other
        # held-out tasks, so the run starts afresh to score its base again. Nothing is deleted:
        # the old run moves aside, whole.
        n = 0
        while (aside := rdir.with_name(f"{rdir.name}.stale-eval-{n}")).exists():
            n += 1
        rdir.rename(aside)
        print(f"{rdir.name}: scored before finetuning on other held-out tasks; moved to {aside.name}, starting afresh")
    proc = flanctl("apply", str(spec), *[a for o in overrides for a in ("--set", o)], *(["--replace"] if replace else []))
    if proc.returncode != 0:
        return proc.returncode
    if (rdir / "evals" / "builtin.json").exists():
        return 0
    ev = Plan.load(rdir / "plan.json").spec.eval
    extra = (["--limit", str(ev.limit)] if ev.limit else []) + ["--method", ev.method]
    return flanctl("eval", "--run", str(rdir), "--suite", "builtin", *extra, capture=True).returncode


PRETRAIN = HERE / "pretrain"


def ensure_bases(sizes: list[str], overrides: list[str]) -> dict[str, str]:
    """`model.checkpoint` overrides per size: pretrain the bases of pretrain/<size>.yaml that
    are not done yet (a size without such a spec, l, uses its grid specs' own checkpoint)."""
    out: dict[str, str] = {}
    sets = [a for o in overrides for a in ("--set", o)]
    for size in sizes:
        spec = PRETRAIN / f"{size}.yaml"
        if not spec.exists():
            continue
        rdir, up_to_date = run_dir(spec, overrides)
        export = rdir / "export"
        done = up_to_date and (export / "model.weights.h5").exists()
        if not done:
            t0 = time.perf_counter()
            print(f"pretraining the {size} base: flanctl apply {spec.relative_to(REPO)}")
            proc = flanctl("apply", str(spec), *sets, "--replace")
            if proc.returncode != 0 or not (export / "model.weights.h5").exists():
                sys.exit(f"error: pretraining the {size} base failed (exit {proc.returncode})")
            print(f"pretrained the {size} base in {time.perf_counter() - t0:.0f}s")
        out[size] = f"model.checkpoint={export}"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["s", "m", "l"], help="model sizes from sizes/ (s, m, l)")
    ap.add_argument("--tasks", nargs="+", type=int, default=[1, 4, 8, 16],
                    help="task counts from tasks/ (1, 4, 8, 16 world-knowledge tasks; 37 = all training tasks)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0],
                    help="finetuning seeds (train.seed and mixture.seed) of every point; the plot draws their mean and range")
    ap.add_argument("--steps", type=int, default=None, help="override train.steps of every run")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field of every run, e.g. --set eval.limit=10 (repeatable)")
    ap.add_argument("--pretrain-set", dest="pretrain_sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field of the s and m pretraining runs, e.g. --pretrain-set train.steps=300")
    ap.add_argument("--workdir", default=str(REPO), help="folder that receives runs/ and reports/ (default: the repository)")
    ap.add_argument("--out", default="reports/scaling", help="report folder (relative to --workdir)")
    ap.add_argument("--docs-png", default=None, help="also copy the scaling plot here (e.g. docs/scaling.png)")
    ap.add_argument("--report-only", action="store_true", help="skip training; report on the finished runs")
    ap.add_argument("--force", action="store_true", help="evaluate again the runs that are up to date and evaluated")
    args = ap.parse_args()
    WORKDIR[0] = Path(args.workdir).resolve()
    WORKDIR[0].mkdir(parents=True, exist_ok=True)

    overrides = [f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}"] if args.steps else []
    overrides += args.sets
    if any(seed < 0 for seed in args.seeds):
        sys.exit("error: --seeds takes non-negative integers, e.g. --seeds 0 1 2")
    seeds = list(dict.fromkeys(args.seeds))
    specs = [(spec, seed) for seed in seeds for spec in grid_specs(args.sizes, args.tasks)]
    started = time.perf_counter()
    bases = {} if args.report_only else ensure_bases(args.sizes, args.pretrain_sets)
    run_dirs: list[Path] = []
    for i, (spec, seed) in enumerate(specs, start=1):
        base = bases.get(spec.stem.split("-")[0])
        spec_overrides = overrides + ([base] if base else []) + seed_overrides(spec, seed)
        rdir, up_to_date = run_dir(spec, spec_overrides)
        run_dirs.append(rdir)
        done = is_done(rdir, up_to_date)
        label = f"[{i}/{len(specs)}] {spec.relative_to(REPO)}" + (f" (seed {seed})" if seed else "")
        if args.report_only or (done and not args.force):
            print(f"{label}: {'skipped' if args.report_only else 'already evaluated'} ({rdir})")
            continue
        t0 = time.perf_counter()
        # a run that is not up to date starts afresh (its checkpoints are moved aside, not deleted)
        code = apply_and_eval(spec, spec_overrides, rdir, replace=True)
        if code != 0:
            print(f"{label}: flanctl apply/eval failed (exit {code}); stopping", file=sys.stderr)
            return code
        print(f"{label}: done in {time.perf_counter() - t0:.0f}s (total {time.perf_counter() - started:.0f}s)")

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
