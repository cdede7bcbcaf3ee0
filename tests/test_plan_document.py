"""Plan document: hashing, save/load, staleness, diff against the run, memory, mixture, evals, CLI exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flanctl.errors import FlanctlError
from flanctl.plan import check_fresh, load_plan, make_plan, save_plan
from flanctl.runs import RunDir
from flanctl.spec import load_spec

TINY = """\
apiVersion: flanctl/v1
name: tiny
model: {family: palm, size: tiny}
mixture:
  collections:
    - {name: builtin, proportion: 1.0, cap: 50}
  inputs_length: 64
  targets_length: 32
train: {batch_size: 4, steps: 20, precision: float32}
eval: {suites: [builtin, bbh], limit: 5}
"""


def write(tmp_path: Path, text: str = TINY, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def plan_for(tmp_path, text=TINY, overrides=()):
    return make_plan(load_spec(write(tmp_path, text), list(overrides)), runs_root=tmp_path / "runs", overrides=list(overrides))


def test_hash_roundtrip_and_tamper(tmp_path):
    plan = plan_for(tmp_path)
    out = save_plan(plan, tmp_path / "p.json")
    assert load_plan(out) == plan
    data = json.loads(out.read_text())
    data["spec"]["train"]["steps"] = 999
    out.write_text(json.dumps(data))
    with pytest.raises(FlanctlError, match="modified after it was made"):
        load_plan(out)


def test_load_plan_errors_are_one_line(tmp_path):
    with pytest.raises(FlanctlError, match="no such plan"):
        load_plan(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FlanctlError, match=r"bad.json:1:2: plan is not valid JSON") as exc:
        load_plan(bad)
    assert "\n" not in str(exc.value)


def test_plan_is_deterministic(tmp_path):
    assert plan_for(tmp_path).plan_hash == plan_for(tmp_path).plan_hash
    assert plan_for(tmp_path, overrides=["train.steps=30"]).plan_hash != plan_for(tmp_path).plan_hash


def test_stale_when_spec_or_base_changes(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("apiVersion: flanctl/v1\ntrain: {dropout: 0.1}\n")
    spec = write(tmp_path, "extends: base.yaml\n" + TINY)
    plan = make_plan(load_spec(spec), runs_root=tmp_path / "runs")
    check_fresh(plan)  # fresh right after planning
    base.write_text("apiVersion: flanctl/v1\ntrain: {dropout: 0.2}\n")
    with pytest.raises(FlanctlError, match=r"stale plan: .*tiny.yaml or a file it extends changed"):
        check_fresh(plan)


def test_stale_when_overrides_reapplied_differently_or_spec_breaks(tmp_path):
    plan = plan_for(tmp_path, overrides=["train.steps=30"])
    check_fresh(plan)  # the stored overrides reproduce the hash
    write(tmp_path, TINY.replace("batch_size: 4", "batch_size: -4"))
    with pytest.raises(FlanctlError, match="no longer loads"):
        check_fresh(plan)


def test_stale_when_local_input_changes(tmp_path):
    data = tmp_path / "tasks.jsonl"
    data.write_text('{"inputs": "1+1", "targets": "2"}\n')
    text = TINY.replace(
        "    - {name: builtin, proportion: 1.0, cap: 50}",
        "    - {name: mine, proportion: 1.0, user_tasks: [{name: add, source: {kind: local, path: tasks.jsonl}}]}",
    )
    plan = plan_for(tmp_path, text)
    assert plan.inputs["tasks.jsonl"].startswith("sha256:")
    check_fresh(plan)
    data.write_text('{"inputs": "1+1", "targets": "3"}\n')
    with pytest.raises(FlanctlError, match="input tasks.jsonl changed"):
        check_fresh(plan)


def test_sentencepiece_model_trained_by_apply_does_not_stale_the_plan(tmp_path):
    """A missing SentencePiece model is made by apply from the spec: not an input until it exists."""
    text = TINY.replace("model: {family: palm, size: tiny}", "model: {family: palm, size: tiny, tokenizer: {kind: sentencepiece, path: tok/spm.model}}")
    plan = plan_for(tmp_path, text)
    assert "tok/spm.model" not in plan.inputs
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "spm.model").write_bytes(b"trained by apply")
    check_fresh(plan)  # what apply made from this very spec is not a change
    replanned = plan_for(tmp_path, text)
    assert replanned.inputs["tok/spm.model"].startswith("sha256:")
    (tmp_path / "tok" / "spm.model").write_bytes(b"swapped by hand")
    with pytest.raises(FlanctlError, match="input tok/spm.model changed"):
        check_fresh(replanned)


def test_tiny_plan_sections(tmp_path):
    plan = plan_for(tmp_path)
    assert plan.model.architecture["vocab_size"] == 259
    assert plan.compute["tokens_per_step"] == 4 * 96
    assert plan.compute["finetune_tokens"] == 20 * 4 * 96
    assert plan.compute["finetune_flops"] == 6 * plan.model.params * 20 * 4 * 96
    assert plan.compute["pretrain_flops"] is None and plan.compute["finetune_fraction"] is None
    mem = plan.memory
    assert mem["fits"] is True and mem["per_device_bytes"] == pytest.approx(sum(mem["terms"].values()))
    assert mem["activations_remat"] < mem["activations_no_remat"]
    mix = plan.mixture
    assert mix["collections"][0]["tasks"] >= 16 and mix["collections"][0]["max_examples"] == 50 * mix["collections"][0]["tasks"]
    assert mix["realized"] is None
    suites = {s["name"]: s for s in plan.eval["suites"]}
    assert suites["bbh"]["examples"] == 5 * 27 and suites["bbh"]["full_examples"] == 6511
    from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS

    assert suites["builtin"]["subtasks"] == len(BUILTIN_HELD_OUT_TASKS) == 15
    assert plan.run.diff["action"] == "create"


def test_memory_optimizers_and_remat(tmp_path):
    ada = plan_for(tmp_path).memory
    adam = plan_for(tmp_path, overrides=["train.optimizer=adamw"]).memory
    params = plan_for(tmp_path).model.params
    assert adam["terms"]["optimizer"] == 2 * params * 4
    # FactoredAdafactor: rows + cols per matrix only, far less than Adam's two moments
    # (a few percent of the parameters for a tiny model, <0.1% at 540B).
    assert ada["terms"]["optimizer"] < 0.1 * ada["terms"]["params"]
    assert ada["terms"]["optimizer"] < adam["terms"]["optimizer"]
    sharded = plan_for(tmp_path, overrides=["distribution.mesh.model=2", "distribution.processes.devices_per_process=2"]).memory
    assert sharded["terms"]["params"] == pytest.approx(ada["terms"]["params"] / 2)


def test_memory_not_fitting_names_largest_term(tmp_path):
    plan = plan_for(tmp_path, overrides=["model.size=540b", "distribution.device=tpu-v5e"])
    mem = plan.memory
    assert mem["fits"] is False
    assert mem["largest"] == max(mem["terms"], key=mem["terms"].get)
    assert any(n.startswith("memory: does not fit") for n in plan.notes)


def test_t5_flops_count_encoder_and_decoder_separately(tmp_path):
    plan = plan_for(tmp_path, TINY.replace("family: palm", "family: t5"))
    c = plan.compute
    assert "N_enc" in c["flops_method"]
    assert c["finetune_flops"] < 6 * plan.model.params * c["finetune_tokens"]


def test_full_flan_mixture_subset_counts(tmp_path):
    text = TINY.replace(
        "    - {name: builtin, proportion: 1.0, cap: 50}",
        "    - {name: muffin, proportion: 52}\n    - {name: t0_sf, proportion: 15}\n    - {name: cot, proportion: 3}\n"
        "    - {name: niv2, proportion: 30, exclude_tasks: [task001]}",
    )
    mix = plan_for(tmp_path, text).mixture
    assert mix["proportions_named"] == "A"
    assert mix["expected"]["tasks"] == 1835
    assert mix["expected"]["datasets"] is None  # a partial NIV2 has unknown dataset counts


def test_diff_resume_replace_and_none(tmp_path):
    plan = plan_for(tmp_path)
    run = RunDir(plan.run.dir)
    run.root.mkdir(parents=True)
    (run.plan_path).write_text(json.dumps(plan.document()))
    run.write_state({"status": "running", "step": 10})
    (run.checkpoints_dir / "step_10").mkdir(parents=True)
    more = plan_for(tmp_path, overrides=["train.steps=40"]).run.diff
    assert more["action"] == "resume" and more["step"] == 10
    assert [c["path"] for c in more["changes"]] == ["train.steps"] and not more["changes"][0]["invalidates"]
    bigger = plan_for(tmp_path, overrides=["model.size=mini"]).run.diff
    assert bigger["action"] == "replace" and any(c["invalidates"] for c in bigger["changes"])
    run.write_state({"status": "completed", "step": 20})
    same = plan_for(tmp_path).run.diff
    assert same["action"] == "none" and same["has_changes"] is False


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "flanctl.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_detailed_exitcode_and_stale_apply(tmp_path):
    spec = write(tmp_path)
    res = _cli(["plan", str(spec), "--detailed-exitcode"], tmp_path)
    assert res.returncode == 2, res.stderr  # a new run is a change
    assert "Mixture" in res.stdout and (tmp_path / ".flanctl" / "plan.json").is_file()
    plan = load_plan(tmp_path / ".flanctl" / "plan.json")
    run = RunDir(plan.run.dir)
    run.root.mkdir(parents=True)
    run.plan_path.write_text(json.dumps(plan.document()))
    run.write_state({"status": "completed", "step": 20})
    assert _cli(["plan", str(spec), "--detailed-exitcode"], tmp_path).returncode == 0
    spec.write_text(TINY.replace("steps: 20", "steps: 25"))
    res = _cli(["apply"], tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error: stale plan:") and len(res.stderr.strip().splitlines()) == 1
    res = _cli(["plan", str(tmp_path / "missing.yaml")], tmp_path)
    assert res.returncode in (1, 2) and "missing.yaml" in res.stderr


def test_plan_of_an_earlier_version_asks_to_replan(tmp_path):
    """A plan.json written by flanctl before the typed plan (schema 1, an untyped dict) is
    refused with one line that says what to do; the run diff still reads its spec."""
    from flanctl.plan.document import saved_spec

    plan = plan_for(tmp_path)
    old = plan.document()
    old["schema_version"] = 1
    old.pop("model")
    old["train"] = old["spec"]["train"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    with pytest.raises(FlanctlError, match=r"old.json: plan schema version 1 is from another flanctl version .*run `flanctl plan SPEC` again") as exc:
        load_plan(path)
    assert "\n" not in str(exc.value)
    assert saved_spec(path) == plan.spec.model_dump(mode="json")


def test_resolved_model_is_decided_once_with_absolute_paths(tmp_path):
    (tmp_path / "tok").mkdir()
    text = TINY.replace("model: {family: palm, size: tiny}",
                        "model: {family: t5, size: tiny, tokenizer: {kind: sentencepiece, path: tok/spm.model}}")
    text = text.replace("eval: {suites: [builtin, bbh], limit: 5}", "eval: {suites: [builtin], data_dir: data}")
    plan = plan_for(tmp_path, text)
    m = plan.model
    assert (m.family, m.encoder_decoder, m.packed) == ("t5", True, True)
    assert m.tokenizer.path == str((tmp_path / "tok" / "spm.model").resolve())
    assert plan.eval_data_dir == str((tmp_path / "data").resolve())
    assert plan.spec.train.precision == "float32" and plan.backend == "jax"
    assert load_plan(save_plan(plan, tmp_path / "p.json")).model == m


def test_a_field_added_later_is_no_change_when_it_holds_its_default(tmp_path):
    """A run recorded before `source.format` existed is not invalidated by the new default."""
    (tmp_path / "tasks.jsonl").write_text('{"inputs": "1+1", "targets": "2"}\n')
    text = TINY.replace(
        "    - {name: builtin, proportion: 1.0, cap: 50}",
        "    - {name: mine, proportion: 1.0, user_tasks: [{name: add, source: {kind: local, path: tasks.jsonl}}]}",
    )
    plan = plan_for(tmp_path, text)
    old = plan.document()
    source = old["spec"]["mixture"]["collections"][0]["user_tasks"][0]["source"]
    for added in ("format", "streaming"):
        assert added in source
        source.pop(added)
    run = RunDir(plan.run.dir)
    run.root.mkdir(parents=True)
    run.plan_path.write_text(json.dumps(old))
    run.write_state({"status": "completed", "step": 20})
    (run.checkpoints_dir / "step_20").mkdir(parents=True)
    diff = plan_for(tmp_path, text).run.diff
    assert diff["action"] == "none" and diff["changes"] == []


def test_lora_plan_counts_gradients_optimizer_and_flops_for_the_adapters_only(tmp_path):
    full = plan_for(tmp_path)
    lora = plan_for(tmp_path, overrides=["train.lora={rank: 4, targets: [query, value]}"])
    n, t = lora.model.params, lora.model.trainable_params
    assert full.model.trainable_params == full.model.params == n and 0 < t < n / 10
    p_bytes = 4  # model.precision float32
    assert lora.memory["terms"]["gradients"] == pytest.approx(t * p_bytes)
    assert lora.memory["terms"]["params"] == full.memory["terms"]["params"]
    assert lora.memory["terms"]["optimizer"] < full.memory["terms"]["optimizer"]
    assert lora.compute["finetune_flops"] == pytest.approx(full.compute["finetune_flops"] * (4 + 2 * t / n) / 6)
    assert "LoRA" in lora.compute["flops_method"]


def test_diff_replaces_a_run_whose_generated_data_changed(tmp_path, monkeypatch):
    """A flanctl whose built-in generator changed (GENERATOR_VERSION) makes other training data
    from the same spec: plan and apply must not call the finished run up to date, nor offer to
    resume it (the data stream would refuse its saved position)."""
    from flanctl.data import builtin_tasks, realize_mixture

    def plan_now():
        return make_plan(load_spec(write(tmp_path), []), runs_root=tmp_path / "runs", overrides=[], realize=realize_mixture)

    plan = plan_now()
    assert all(t["fingerprint"] for t in plan.mixture["realized"]["tasks"])
    run = RunDir(plan.run.dir)
    run.root.mkdir(parents=True)
    run.plan_path.write_text(json.dumps(plan.document()))
    run.write_state({"status": "completed", "step": 20})
    (run.checkpoints_dir / "step_20").mkdir(parents=True)
    assert plan_now().run.diff["action"] == "none"

    monkeypatch.setattr(builtin_tasks, "GENERATOR_VERSION", builtin_tasks.GENERATOR_VERSION + "-next")
    diff = plan_now().run.diff
    assert diff["action"] == "replace" and "apply --replace" in diff["summary"], diff
    changed = {c["path"] for c in diff["changes"]}
    assert "mixture.data.builtin/multistep_arithmetic" in changed and all(c["invalidates"] for c in diff["changes"])

    # a run planned before plans recorded fingerprints: nothing to compare, as before
    old = plan.document()
    for t in old["mixture"]["realized"]["tasks"]:
        del t["fingerprint"]
    run.plan_path.write_text(json.dumps(old))
    assert plan_now().run.diff["action"] == "none"


def test_missing_checkpoint_folder_is_named_not_the_architecture(tmp_path):
    """A palm spec that takes its architecture from a checkpoint that is not there yet (say,
    an export a previous run makes) is told so, not that num_layers is missing."""
    text = TINY.replace("model: {family: palm, size: tiny}", "model: {family: u-palm, checkpoint: ../runs/upalm/export}")
    (tmp_path / "specs").mkdir()
    with pytest.raises(FlanctlError, match=r"model.checkpoint: no such folder .*runs/upalm/export; make it first"):
        plan_for(tmp_path / "specs", text)
