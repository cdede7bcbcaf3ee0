"""The shipped pretrained base (examples/base/) and finetuning a flanctl export (issue 16).

The base is what `make pretrain` made: its files must still match PROVENANCE.json, and
examples/pretrain.yaml must be the very spec that made it (same spec hash). A plan that
finetunes a flanctl export takes the architecture and the tokenizer from it. A slow test
reruns a reduced pretraining twice and checks the weights come out bit-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flanctl.errors import SpecError
from flanctl.models.preset_io import weights_digest
from flanctl.plan import make_plan
from flanctl.spec.loader import load_spec

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "examples" / "base"


def _provenance() -> dict:
    return json.loads((BASE / "PROVENANCE.json").read_text())


def test_shipped_base_matches_its_provenance():
    record = _provenance()
    assert weights_digest(BASE) == record["weights_sha256"]
    tok = BASE / "assets" / "tokenizer" / "spm.model"
    assert hashlib.sha256(tok.read_bytes()).hexdigest() == record["tokenizer_sha256"]
    assert record["command"].startswith("make pretrain") and record["spec"] == "examples/pretrain.yaml"
    assert record["steps"] == load_spec(REPO / "examples" / "pretrain.yaml").spec.train.steps


def test_pretrain_spec_is_the_one_that_made_the_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = make_plan(load_spec(REPO / "examples" / "pretrain.yaml"))
    assert plan.spec_hash == _provenance()["spec_hash"], "examples/pretrain.yaml changed: rerun `make pretrain` and record the base"
    from flanctl.data.corpus import CORPUS_VERSION, WORLD_SEED

    assert (_provenance()["corpus_version"], _provenance()["world_seed"]) == (CORPUS_VERSION, WORLD_SEED)


def _spec(tmp_path: Path, model: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(f"model: {model}\nmixture:\n  collections:\n    - {{name: builtin, proportion: 1, tasks: [parity]}}\n"
                 "train: {steps: 2, batch_size: 2}\n")
    return p


def test_plan_takes_architecture_and_tokenizer_from_a_flanctl_export(tmp_path):
    plan = make_plan(load_spec(_spec(tmp_path, f"{{family: palm, checkpoint: {BASE}}}")))
    config = json.loads((BASE / "config.json").read_text())["config"]
    assert plan.model.architecture["hidden_dim"] == config["hidden_dim"]
    assert plan.model.architecture["vocab_size"] == config["vocabulary_size"]
    assert plan.model.params == _provenance()["parameters"]
    assert plan.model.tokenizer.path == str(BASE / "assets" / "tokenizer" / "spm.model")
    assert any("the checkpoint's own tokenizer" in n for n in plan.notes)
    from flanctl.data import tokenizer_for_spec

    assert tokenizer_for_spec(plan.spec, plan.base_dir).vocab_size == config["vocabulary_size"]


def test_a_tokenizer_the_spec_names_wins(tmp_path):
    plan = make_plan(load_spec(_spec(tmp_path, f"{{family: palm, checkpoint: {BASE}, tokenizer: {{kind: byte}}}}")))
    assert plan.model.tokenizer.kind == "byte"


def test_a_contradicting_architecture_or_family_is_refused(tmp_path):
    with pytest.raises(SpecError, match=r"model.architecture.hidden_dim: 64 contradicts the checkpoint's 128"):
        make_plan(load_spec(_spec(tmp_path, f"{{family: palm, checkpoint: {BASE}, architecture: {{hidden_dim: 64}}}}")))


@pytest.mark.slow
def test_reduced_pretraining_is_reproducible(tmp_path):
    """The base's recipe, reduced (tiny model, 6 steps, 300 documents), run twice: same weights."""
    digests = []
    for k in (1, 2):
        cwd = tmp_path / f"run{k}"
        cwd.mkdir()
        sets = ["train.steps=6", "train.checkpoint_every=6", "train.log_every=2", "mixture.collections.0.cap=300",
                "model.architecture.num_layers=1", "model.architecture.hidden_dim=32", "model.architecture.head_dim=8",
                "model.architecture.ffn_dim=64", f"model.tokenizer.path={cwd / 'spm.model'}"]
        env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "apply", str(REPO / "examples" / "pretrain.yaml"),
                               *[a for s in sets for a in ("--set", s)]], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        digests.append(weights_digest(cwd / "runs" / "pretrain" / "export"))
    assert digests[0] == digests[1]


def _probe_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("base_probe", BASE / "probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_asks_each_held_out_question_in_the_corpus_words():
    from flanctl.catalog.builtin import BUILTIN_HELD_OUT_TASKS
    from flanctl.data.builtin_tasks import generate

    probe = _probe_module()
    assert set(probe.RECALL_TASKS) == {t for t in BUILTIN_HELD_OUT_TASKS if t.startswith("recall_")}
    for task in probe.RECALL_TASKS:
        for ex in generate(task, "test", 5, 0):
            stem, continuations = probe.stem_and_options(ex)
            right = continuations[ex.options.index(ex.answer)]
            assert ex.rationale.startswith(stem + right)  # the fact's own sentence, cut at the answer
            assert all(c.endswith(" " + o) for c, o in zip(continuations, ex.options))
            assert ex.inputs not in stem and "?" not in stem  # a statement, not the question


def test_shipped_base_states_held_out_facts_it_was_never_asked(capsys):
    # The base ranks the held-out facts well above chance when asked in the corpus's words:
    # the knowledge the held-out tasks need is in it before any finetuning. (Measured on the
    # seven facts the corpus states right before their answer; for birth years, pets' names
    # and the two questions read backwards a one-sentence probe ranks near chance, while the
    # finetuned model answers pets' names, for one, almost always: see README.)
    probe = _probe_module()
    assert probe.main(["--limit", "12"]) == 0
    out = capsys.readouterr().out
    scores = {line.split()[0]: float(line.split()[-1]) for line in out.splitlines() if line.startswith("  ")}
    assert set(scores) == set(probe.RECALL_TASKS) | {"mean"}
    forward = ["recall_home_town", "recall_trade", "recall_pet_kind", "recall_town_goods", "recall_favourite_colour",
               "recall_friend", "recall_town_river"]
    assert sum(scores[t] for t in forward) / len(forward) > 50.0, out
