"""Run directories and apply: state, checkpoints, the exclusive lock (with a real second process), last run."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from flanctl.errors import FlanctlError
from flanctl.plan import Plan, make_plan
from flanctl.apply import Stages, apply_plan
from flanctl.runs import RunDir, last_run, record_last_run
from flanctl.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
TINY = """\
apiVersion: flanctl/v1
name: tiny
model: {family: palm, size: tiny}
mixture:
  collections: [{name: builtin, proportion: 1.0, cap: 50}]
  inputs_length: 64
  targets_length: 32
train: {batch_size: 4, steps: 20, precision: float32}
"""


def make(tmp_path, overrides=()):
    spec = tmp_path / "tiny.yaml"
    if not spec.exists():
        spec.write_text(TINY)
    return make_plan(load_spec(spec, list(overrides)), runs_root=tmp_path / "runs", overrides=list(overrides))


def test_state_roundtrip_and_bad_state(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.read_state() == {} and not run.exists()
    run.write_state({"status": "planned", "step": 0})
    assert run.update_state(step=5) == {"status": "planned", "step": 5}
    assert not list(run.root.glob(".state.json.*"))  # no temporary files left behind
    run.state_path.write_text("[1, 2]")
    with pytest.raises(FlanctlError, match="must hold a JSON object"):
        run.read_state()


def test_latest_checkpoint_ignores_temporary_names(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.latest_checkpoint() is None
    for name in ("step_5", "step_20", "step_100.tmp", "step_x"):
        (run.checkpoints_dir / name).mkdir(parents=True)
    assert run.latest_checkpoint() == (20, run.checkpoint_path(20))
    assert [s for s, _ in run.checkpoints()] == [5, 20]


def test_last_run_record(tmp_path):
    assert last_run(tmp_path) is None
    (tmp_path / "runs" / "a").mkdir(parents=True)
    record_last_run(tmp_path, tmp_path / "runs" / "a")
    assert last_run(tmp_path) == (tmp_path / "runs" / "a").resolve()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from flanctl.runs import RunDir
    with RunDir(sys.argv[1]).lock():
        print("locked", flush=True)
        time.sleep(30)
    """
)


def _hold_lock(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_excludes_a_second_process(tmp_path):
    run = RunDir(tmp_path / "r")
    proc = _hold_lock(run.root)
    try:
        with pytest.raises(FlanctlError, match=rf"locked by another apply \(pid {proc.pid}\)"):
            with run.lock():
                pass
    finally:
        proc.kill()
        proc.wait()
    with run.lock():  # released by the kernel when the holder died
        pass


def test_apply_plumbing_creates_run_files(tmp_path):
    plan = make(tmp_path)
    state = apply_plan(plan, stages=Stages(), cwd=tmp_path)
    run = RunDir(plan.run.dir)
    assert state["status"] == "planned" and state["plan_hash"] == plan.plan_hash
    assert yaml.safe_load(run.spec_path.read_text()) == plan.spec.model_dump(mode="json")
    assert Plan.load(run.plan_path) == plan and json.loads(run.plan_path.read_text()) == plan.document()
    assert run.read_state()["history"][-1]["action"] == "create"
    assert last_run(tmp_path) == run.root


def test_apply_refused_while_another_apply_holds_the_run(tmp_path):
    plan = make(tmp_path)
    proc = _hold_lock(plan.run.dir)
    try:
        with pytest.raises(FlanctlError, match="locked by another apply"):
            apply_plan(plan, stages=Stages(), cwd=tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert not RunDir(plan.run.dir).state_path.exists()


def test_apply_calls_trainer_and_records_completion(tmp_path):
    plan = make(tmp_path)
    seen = {}

    def trainer(p, run):
        seen["hash"] = p.plan_hash
        assert run.read_state()["status"] == "running"
        run.update_state(step=p.spec.train.steps)
        return {"loss": 1.5}

    state = apply_plan(plan, stages=Stages(train=trainer), cwd=tmp_path)
    assert seen["hash"] == plan.plan_hash
    assert (state["status"], state["step"], state["metrics"]) == ("completed", 20, {"loss": 1.5})
    # Planning again now finds nothing to do.
    assert make(tmp_path).run.diff["action"] == "none"


def test_failed_training_is_recorded(tmp_path):
    plan = make(tmp_path)

    def trainer(p, run):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        apply_plan(plan, stages=Stages(train=trainer), cwd=tmp_path)
    state = RunDir(plan.run.dir).read_state()
    assert state["status"] == "failed" and "out of memory" in state["error"]


def test_invalidating_change_needs_replace(tmp_path):
    plan = make(tmp_path)
    apply_plan(plan, stages=Stages(), cwd=tmp_path)
    run = RunDir(plan.run.dir)
    (run.checkpoints_dir / "step_10").mkdir(parents=True)
    run.update_state(step=10)
    changed = make(tmp_path, ["model.size=mini"])
    with pytest.raises(FlanctlError, match=r"checkpoint at step 10 is invalidated by model\.size"):
        apply_plan(changed, stages=Stages(), cwd=tmp_path)
    state = apply_plan(changed, stages=Stages(), cwd=tmp_path, replace=True)
    assert state["step"] == 0 and run.latest_checkpoint() is None
    assert (run.root / "checkpoints.replaced-10-0" / "step_10").is_dir()


def test_apply_refuses_stale_plan(tmp_path):
    plan = make(tmp_path)
    time.sleep(0.01)
    (tmp_path / "tiny.yaml").write_text(TINY.replace("steps: 20", "steps: 21"))
    with pytest.raises(FlanctlError, match="stale plan"):
        apply_plan(plan, stages=Stages(), cwd=tmp_path)
    assert not Path(plan.run.dir).exists()
