"""Shipped specs: they load, pass the JSON Schema (independent validator), and reproduce Table 2."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from flanctl.catalog.models import PAPER_TABLE2
from flanctl.plan import make_plan
from flanctl.spec import load_spec
from flanctl.spec.models import Spec

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "specs").glob("*.yaml"))
NAMES = {p.stem for p in SPECS}


def test_every_paper_spec_is_shipped():
    want = {"flan_palm", "flan_palm_8b", "flan_palm_62b", "flan_cont_palm_62b", "flan_u_palm_540b"}
    want |= {f"flan_t5_{s}" for s in ("small", "base", "large", "xl", "xxl")}
    assert want <= NAMES


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_passes_json_schema(path):
    loaded = load_spec(path)
    jsonschema.validate(loaded.data, Spec.model_json_schema())
    assert loaded.spec.apiVersion == "flanctl/v1"


@pytest.mark.parametrize("path", sorted((REPO / "specs" / "base").glob("*.yaml")), ids=lambda p: p.name)
def test_base_fragments_pass_json_schema(path):
    # Bases are partial (no model size), so they are checked as fragments: schema only.
    data = yaml.safe_load(path.read_text())
    data.pop("extends", None)
    jsonschema.validate(data, Spec.model_json_schema())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_paper_hyperparameters(path, tmp_path):
    spec = load_spec(path).spec
    assert spec.train.optimizer == "adafactor" and spec.train.schedule == "constant"
    assert (spec.mixture.inputs_length, spec.mixture.targets_length, spec.mixture.packing) == (2048, 512, True)
    assert spec.eval.suites == ["mmlu", "mmlu-cot", "bbh", "bbh-cot", "tydiqa", "mgsm"]
    plan = make_plan(load_spec(path), runs_root=tmp_path)
    assert plan.mixture["proportions_named"] == "B"
    assert plan.mixture["expected"] == {"tasks": 1836, "datasets": 473, "categories": 146}


TABLE22 = {  # spec -> (steps, batch, lr, dropout)
    "flan_palm": (21000, 32, 1e-3, 0.1), "flan_palm_8b": (40000, 32, 3e-3, 0.05),
    "flan_palm_62b": (40000, 32, 3e-3, 0.05), "flan_cont_palm_62b": (60000, 32, 3e-3, 0.05),
    "flan_u_palm_540b": (30000, 32, 1e-3, 0.1), "flan_t5_small": (98000, 64, 5e-4, 0.05),
    "flan_t5_base": (84000, 64, 5e-4, 0.05), "flan_t5_large": (64000, 64, 5e-4, 0.05),
    "flan_t5_xl": (38000, 64, 5e-4, 0.05), "flan_t5_xxl": (14000, 64, 5e-4, 0.05),
}


@pytest.mark.parametrize("name,row", TABLE22.items())
def test_table22_hyperparameters(name, row):
    t = load_spec(REPO / "specs" / f"{name}.yaml").spec.train
    assert (t.steps, t.batch_size, t.learning_rate, t.dropout) == row


@pytest.mark.parametrize("name,key", [
    ("flan_palm_8b", ("palm", "8b")), ("flan_palm_62b", ("palm", "62b")),
    ("flan_palm", ("palm", "540b")), ("flan_cont_palm_62b", ("cont-palm", "62b")),
])
def test_table2_flan_palm_rows_within_10_percent(name, key, tmp_path):
    c = make_plan(load_spec(REPO / "specs" / f"{name}.yaml"), runs_root=tmp_path).compute
    pre, ft, pct = PAPER_TABLE2[key]
    assert c["pretrain_flops"] == pytest.approx(pre, rel=0.1)
    assert c["finetune_flops"] == pytest.approx(ft, rel=0.1)
    assert c["finetune_flops_nominal"] == pytest.approx(ft, rel=0.05)
    # The printed percentage follows from nominal sizes (8B, not 8.63B).
    assert 100 * c["finetune_flops_nominal"] / c["pretrain_flops"] == pytest.approx(pct, abs=0.05)
    assert 100 * c["finetune_fraction"] == pytest.approx(pct, rel=0.15)


def test_u_palm_row_is_flagged_not_copied(tmp_path):
    plan = make_plan(load_spec(REPO / "specs" / "flan_u_palm_540b.yaml"), runs_root=tmp_path)
    c = plan.compute
    assert c["paper_table2"]["consistent"] is False
    assert c["finetune_flops"] == pytest.approx(8.0e21, rel=0.02)  # 30k steps, not the printed 5.6e21
    assert any("Flan-U-PaLM row is inconsistent" in n for n in plan.notes)


def test_540b_time_matches_paper_order(tmp_path):
    plan = make_plan(load_spec(REPO / "specs" / "flan_palm.yaml"), runs_root=tmp_path)
    # The paper: Flan-PaLM 540B finetuned on 512 TPU v4 chips for 37 hours.
    assert plan.compute["time"]["devices"] == 512
    assert 20 < plan.compute["time"]["hours"] < 60
    # With weights, gradients and factored Adafactor state over data x model (2D layout) and
    # remat, the paper's 540B run fits the 32 GiB of a TPU v4 chip.
    mem = plan.memory
    assert mem["fits"] is True and mem["per_device_bytes"] < mem["device_bytes"] == 32 * 2**30
    assert mem["terms"]["params"] == pytest.approx(plan.model.params * 2 / 512)


def test_plan_cli_json_is_fast_and_framework_free(tmp_path):
    code = (
        "import sys, json\n"
        "from flanctl.spec import load_spec\nfrom flanctl.plan import make_plan\nfrom flanctl.data import realize_mixture\n"
        f"make_plan(load_spec({str(REPO / 'specs' / 'flan_palm.yaml')!r}), runs_root={str(tmp_path)!r}, realize=realize_mixture)\n"
        f"make_plan(load_spec({str(REPO / 'examples' / 'quickstart.yaml')!r}), runs_root={str(tmp_path)!r}, realize=realize_mixture)\n"
        "heavy = [m for m in ('keras', 'jax', 'tensorflow', 'torch', 'grain', 'datasets') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert json.loads(out.stdout) == []
    res = subprocess.run(
        [sys.executable, "-m", "flanctl.cli", "plan", str(REPO / "specs" / "flan_palm.yaml"), "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    for key in ("family", "size", "params", "encoder_decoder", "packed"):
        assert key in plan["model"]
    for key in ("tokens_per_step", "finetune_tokens", "finetune_flops", "pretrain_flops", "finetune_fraction"):
        assert key in plan["compute"]
    for key in ("per_device_bytes", "device_bytes", "fits"):
        assert key in plan["memory"]
    assert plan["distribution"]["mesh"] == {"data": 32, "model": 16}
    assert (tmp_path / ".flanctl" / "plan.json").is_file()


def test_plan_realizes_local_builtin_mixture_and_not_hub_ones(tmp_path):
    from flanctl.catalog.builtin import BUILTIN_TRAIN_TASKS
    from flanctl.data import realize_mixture

    quick = make_plan(load_spec(REPO / "examples" / "quickstart.yaml"), runs_root=tmp_path, realize=realize_mixture)
    realized = quick.mixture["realized"]
    assert {t["name"] for t in realized["tasks"]} == set(BUILTIN_TRAIN_TASKS)
    cap = quick.spec.mixture.collections[0].cap
    assert all(t["count"] == cap for t in realized["tasks"])
    assert sum(t["rate"] for t in realized["tasks"]) == pytest.approx(1.0)
    # The paper's collections live on the hub: nothing is downloaded at plan time.
    palm = make_plan(load_spec(REPO / "specs" / "flan_palm.yaml"), runs_root=tmp_path, realize=realize_mixture)
    assert palm.mixture["realized"] is None
