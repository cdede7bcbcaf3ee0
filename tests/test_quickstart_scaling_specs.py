"""The example specs of the scaling experiment: valid, composed by `extends:`, and honest.

Honest means: every run trains only on built-in training tasks, never on a held-out task of
the `builtin` eval suite, and the runs of one size differ only in their task count.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS, BUILTIN_TRAIN_TASKS
from flanctl.plan import Plan, make_plan
from flanctl.report.rundata import RunRecord
from flanctl.report.scaling import num_finetuning_tasks
from flanctl.spec.loader import load_spec

SCALING = Path(__file__).resolve().parents[1] / "examples" / "scaling"
GRID = sorted((SCALING / "grid").glob("*.yaml"))
COUNTS = (1, 4, 8, 16, len(BUILTIN_TRAIN_TASKS))
BASE = SCALING.parent / "base"


def test_grid_is_three_sizes_by_five_task_counts():
    assert [p.stem for p in GRID] == [f"{s}-t{k:02d}" for s in "lms" for k in COUNTS]


def _plan_overrides(path: Path) -> list[str]:
    """s and m start from bases run.py pretrains first; planning them here uses the shipped
    base's folder in their place (the architecture is the base's, the mixture is theirs)."""
    return [] if path.stem.startswith("l-") else [f"model.checkpoint={BASE}"]


@pytest.mark.parametrize("path", GRID, ids=lambda p: p.stem)
def test_grid_spec_plans_and_trains_only_on_training_tasks(path):
    loaded = load_spec(path, _plan_overrides(path))
    spec = loaded.spec
    size, count = path.stem.split("-t")
    assert spec.name == f"scaling-{size}-t{count}"
    (coll,) = spec.mixture.collections
    assert coll.name == "builtin" and len(coll.tasks) == int(count)
    assert set(coll.tasks) <= set(BUILTIN_TRAIN_TASKS)
    assert not set(coll.tasks) & set(BUILTIN_HELD_OUT_TASKS)
    assert spec.eval.suites == ["builtin"] and not spec.eval.builtin_tasks  # the catalog's held-out set
    plan = make_plan(loaded)
    # The plan and the report count the same number of finetuning tasks.
    record = RunRecord(name=spec.name, root=path, plan=json.loads(json.dumps(plan.document())), spec=loaded.data,
                       metrics=[], evals={}, evals_before={})
    assert num_finetuning_tasks(record) == int(count)
    assert plan.memory["fits"] is True


def test_grid_bases_are_the_pretrained_ones():
    for size in "sm":
        spec = load_spec(SCALING / "grid" / f"{size}-t01.yaml").spec
        assert spec.model.checkpoint == f"../../../runs/scaling-pretrain-{size}/export"
        pre = load_spec(SCALING / "pretrain" / f"{size}.yaml").spec
        assert pre.name == f"scaling-pretrain-{size}" and pre.train.objective == "causal_lm"
        assert pre.model.tokenizer.path == "../../base/assets/tokenizer/spm.model"
    assert load_spec(SCALING / "grid" / "l-t01.yaml").spec.model.checkpoint == "../../base"


def test_runs_of_one_size_differ_only_in_tasks_and_name():
    def comparable(path: Path) -> dict:
        data = load_spec(path).spec.model_dump()
        data["mixture"]["collections"][0].pop("tasks")
        data.pop("name")
        return data

    for size in "lms":
        specs = [comparable(p) for p in GRID if p.stem.startswith(f"{size}-")]
        assert len(specs) == len(COUNTS) and all(s == specs[0] for s in specs)
    # Larger task sets contain the smaller ones, as in the paper's task-scaling mixtures.
    sets = [load_spec(SCALING / "grid" / f"m-t{k:02d}.yaml").spec.mixture.collections[0].tasks for k in COUNTS]
    assert all(set(a) < set(b) for a, b in zip(sets, sets[1:]))


def test_model_sizes_grow():
    params = [make_plan(load_spec(SCALING / "pretrain" / f"{s}.yaml")).model.params for s in "sm"]
    params.append(make_plan(load_spec(SCALING / "grid" / "l-t01.yaml")).model.params)
    assert params == sorted(params) and params[0] * 4 < params[-1]


@pytest.mark.slow
def test_run_py_end_to_end_pretrains_then_finetunes(tmp_path):
    """`examples/scaling/run.py` at 2 steps: the s base pretrained first, two runs scored before
    (the pretrained base) and after, and a report whose scaling plot exists; a second call
    skips finished runs and the finished base."""
    import subprocess
    import sys

    cmd = [sys.executable, str(SCALING / "run.py"), "--sizes", "s", "--tasks", "1", "4", "--steps", "2",
           "--set", "eval.limit=1", "--pretrain-set", "train.steps=2", "--pretrain-set", "train.checkpoint_every=2",
           "--pretrain-set", "mixture.collections.0.cap=100", "--workdir", str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    base = tmp_path / "runs" / "scaling-pretrain-s" / "export"
    assert (base / "model.weights.h5").exists() and "pretrained the s base" in first.stdout
    for k in (1, 4):
        run = tmp_path / "runs" / f"scaling-s-t{k:02d}"
        assert json.loads((run / "evals" / "builtin.json").read_text())["n"] == len(BUILTIN_HELD_OUT_TASKS)
        assert (run / "evals" / "builtin.before.json").exists()  # the pretrained base's score
        assert Plan.load(run / "plan.json").model.checkpoint == str(base)
    report = tmp_path / "reports" / "scaling"
    assert (report / "scaling.png").read_bytes().startswith(b"\x89PNG")
    assert "scaling-s-t04" in (report / "report.md").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and again.stdout.count("already evaluated") == 2, again.stdout
    assert "pretraining the s base" not in again.stdout


def test_run_py_seeds_are_runs_of_their_own():
    """`run.py --seeds`: seed 0 is the grid spec as written; another seed plans a run of its own
    name with that seed for the mixture and for training."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scaling_run", SCALING / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    grid = SCALING / "grid" / "l-t04.yaml"
    assert mod.seed_overrides(grid, 0) == []
    sets = mod.seed_overrides(grid, 2)
    plan = make_plan(load_spec(grid, sets))
    assert plan.run.name == "scaling-l-t04-seed2"
    assert plan.spec.train.seed == 2 and plan.spec.mixture.seed == 2
    assert make_plan(load_spec(grid)).run.name == "scaling-l-t04"


def test_run_py_starts_afresh_a_run_whose_base_was_scored_on_other_held_out_tasks(tmp_path, monkeypatch):
    """A finished run is done only if both of its scores (before and after finetuning) are on
    today's held-out tasks; one whose base was scored on another set moves aside, whole, and
    is applied afresh (apply scores the base again only on a fresh run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scaling_run", SCALING / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    today = {t: 50.0 for t in BUILTIN_HELD_OUT_TASKS}
    older = {t: 50.0 for t in list(BUILTIN_HELD_OUT_TASKS)[:-2]}
    rdir = tmp_path / "runs" / "scaling-l-t01"
    (rdir / "evals").mkdir(parents=True)
    (rdir / "checkpoints" / "step_300").mkdir(parents=True)
    (rdir / "evals" / "builtin.json").write_text(json.dumps({"tasks": today}))
    (rdir / "evals" / "builtin.before.json").write_text(json.dumps({"tasks": older}))
    assert not mod.is_done(rdir, up_to_date=True)
    (rdir / "evals" / "builtin.before.json").write_text(json.dumps({"tasks": today}))
    assert mod.is_done(rdir, up_to_date=True) and not mod.is_done(rdir, up_to_date=False)

    (rdir / "evals" / "builtin.before.json").write_text(json.dumps({"tasks": older}))
    calls = []
    monkeypatch.setattr(mod, "flanctl", lambda *args, **kw: calls.append(args) or type("P", (), {"returncode": 7})())
    assert mod.apply_and_eval(SCALING / "grid" / "l-t01.yaml", [], rdir, replace=True) == 7
    assert calls and calls[0][0] == "apply"
    aside = tmp_path / "runs" / "scaling-l-t01.stale-eval-0"
    assert not rdir.exists() and (aside / "checkpoints" / "step_300").is_dir()
    assert json.loads((aside / "evals" / "builtin.before.json").read_text())["tasks"] == older


def _run_py():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scaling_run", SCALING / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_run_py_draws_nested_task_sets_per_seed_and_the_files_hold_seed_0s():
    """Each seed's runs of 1, 4 and 8 tasks are the first 1, 4, 8 of the seed's own shuffle of
    the 16 tasks of tasks/t16.yaml: nested, deterministic, different across seeds; seed 0's
    draw is what tasks/t01..t08.yaml list (so a seed-0 run needs no override)."""
    mod = _run_py()
    pool = mod.task_pool()
    assert len(pool) == 16 == len(set(pool))
    for seed in (0, 1, 2):
        sets = [mod.drawn_tasks(seed, k) for k in (1, 4, 8, 16)]
        assert [len(s) for s in sets] == [1, 4, 8, 16] and sets[-1] == pool
        assert all(set(a) < set(b) for a, b in zip(sets, sets[1:]))
        assert all(s == [t for t in pool if t in s] for s in sets)  # listed in the pool's order
        assert mod.drawn_tasks(seed, 8) == mod.drawn_tasks(seed, 8)
    assert len({tuple(mod.drawn_tasks(seed, 8)) for seed in range(5)}) > 1
    for k in (1, 4, 8):
        listed = load_spec(SCALING / "grid" / f"m-t{k:02d}.yaml").spec.mixture.collections[0].tasks
        assert listed == mod.drawn_tasks(0, k)


def test_run_py_seed_overrides_carry_the_seeds_draw_into_the_plan():
    mod = _run_py()
    grid = SCALING / "grid" / "l-t04.yaml"
    plan = make_plan(load_spec(grid, mod.seed_overrides(grid, 2)))
    assert plan.spec.mixture.collections[0].tasks == mod.drawn_tasks(2, 4)
    assert plan.spec.mixture.collections[0].tasks != mod.drawn_tasks(0, 4)
    for stem in ("l-t16", "l-t37"):  # the same set of tasks in every seed: only the seeds change
        sets = mod.seed_overrides(SCALING / "grid" / f"{stem}.yaml", 1)
        assert not any(s.startswith("mixture.collections") for s in sets)
