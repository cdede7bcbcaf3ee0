"""Hugging Face T5 folders in and out of the t5 family: same logits as transformers, same ids.

Every model here is a tiny random T5 v1.1-shaped `T5ForConditionalGeneration` saved by
transformers in a temporary folder, with a SentencePiece model trained on the spot (tests/hf_tiny.py).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

import hf_tiny  # noqa: E402

from flanctl.models import get_family  # noqa: E402

TOL = 2e-5


def batch(enc, dec):
    enc, dec = np.asarray([enc], np.int32), np.asarray([dec], np.int32)
    pos = lambda a: np.arange(a.shape[1], dtype=np.int32)[None]  # noqa: E731
    return {"encoder_token_ids": enc, "encoder_segment_ids": np.ones_like(enc), "encoder_positions": pos(enc),
            "decoder_token_ids": dec, "decoder_segment_ids": np.ones_like(dec), "decoder_positions": pos(dec)}


def flanctl_logits(model, enc, dec):
    return np.asarray(model(batch(enc, dec)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return hf_tiny.t5_folder(tmp_path_factory.mktemp("hf") / "t5")


def probe_ids(tokenizer):
    family = get_family("t5")
    enc = family.frame_prompt(tokenizer.encode(hf_tiny.PROBE), tokenizer)
    return enc, [0] + enc[:5]


def test_load_gives_transformers_logits_and_ids(folder):
    from transformers import AutoTokenizer

    model, tokenizer = get_family("t5").load(str(folder))
    enc, dec = probe_ids(tokenizer)
    assert enc == AutoTokenizer.from_pretrained(folder)(hf_tiny.PROBE).input_ids
    ours, theirs = flanctl_logits(model, enc, dec), hf_tiny.hf_t5_logits(folder, [enc], [dec])
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < TOL, np.abs(ours - theirs).max()
    assert model.backbone.activation == "gelu_tanh" and not model.backbone.tie_embedding_weights


@pytest.mark.parametrize("variant", ["sharded", "tied"])
def test_sharded_and_tied_folders(tmp_path, variant):
    kwargs = {"max_shard_size": "20KB"} if variant == "sharded" else {"tied": True}
    folder = hf_tiny.t5_folder(tmp_path / variant, seed=1, **kwargs)
    if variant == "sharded":
        assert (folder / "model.safetensors.index.json").is_file()
    model, tokenizer = get_family("t5").load(str(folder))
    enc, dec = probe_ids(tokenizer)
    diff = np.abs(flanctl_logits(model, enc, dec) - hf_tiny.hf_t5_logits(folder, [enc], [dec])).max()
    assert diff < TOL, diff


def test_export_hf_reloads_in_transformers(folder, tmp_path):
    from transformers import AutoTokenizer

    family = get_family("t5")
    model, tokenizer = family.load(str(folder))
    out = family.export_hf(model, tmp_path / "export", tokenizer)
    enc, dec = probe_ids(tokenizer)
    assert AutoTokenizer.from_pretrained(out)(hf_tiny.PROBE).input_ids == enc
    diff = np.abs(flanctl_logits(model, enc, dec) - hf_tiny.hf_t5_logits(out, [enc], [dec])).max()
    assert diff < TOL, diff
    again, _ = family.load(str(out))  # and back into flanctl
    assert np.abs(flanctl_logits(again, enc, dec) - flanctl_logits(model, enc, dec)).max() == 0.0


def test_export_exact_gelu_catalog_model(tmp_path, folder):
    """A catalog t5 (exact GELU) exports with transformers' exact GELU (gated-gelu_python)."""
    import keras
    from flanctl.catalog.models import SIZES
    from flanctl.data.tokenizers import SentencePieceTokenizer

    tokenizer = SentencePieceTokenizer(folder / "spiece.model")
    keras.utils.set_random_seed(3)
    model = get_family("t5").build(dict(SIZES["t5"]["tiny"], vocab_size=256))
    out = get_family("t5").export_hf(model, tmp_path / "exact", tokenizer)
    enc, dec = probe_ids(tokenizer)
    diff = np.abs(flanctl_logits(model, enc, dec) - hf_tiny.hf_t5_logits(out, [enc], [dec])).max()
    assert diff < TOL, diff


def test_folder_that_will_not_load(tmp_path, folder):
    import json
    import shutil

    from flanctl.errors import FlanctlError

    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "relative_attention_num_buckets": 64}))
    with pytest.raises(FlanctlError, match="64 buckets"):
        get_family("t5").load(str(bad))


SPEC = """\
apiVersion: flanctl/v1
name: hft5
model:
  family: t5
  checkpoint: {ckpt}
  tokenizer: {{kind: sentencepiece, path: {ckpt}/spiece.model}}
mixture:
  collections:
    - {{name: builtin, proportion: 1.0, cap: 50}}
  inputs_length: 64
  targets_length: 32
train: {{batch_size: 4, steps: 6, precision: float32, learning_rate: 1.0e-3, log_every: 1, checkpoint_every: 6}}
"""


def test_plan_reads_config_and_exact_params(folder, tmp_path):
    import torch  # noqa: F401
    from transformers import T5ForConditionalGeneration

    from flanctl.plan import make_plan
    from flanctl.spec import load_spec

    spec = tmp_path / "hft5.yaml"
    spec.write_text(SPEC.format(ckpt=folder))
    plan = make_plan(load_spec(spec), runs_root=tmp_path / "runs")
    hf = T5ForConditionalGeneration.from_pretrained(folder)
    assert plan.model.params == sum(p.numel() for p in hf.parameters())  # unique parameters
    a = plan.model.architecture
    assert (a["hidden_dim"], a["num_heads"], a["head_dim"], a["ffn_dim"], a["vocab_size"]) == (32, 4, 8, 48, hf.config.vocab_size)
    assert a["encoder_layers"] == a["decoder_layers"] == 2
    assert plan.model.checkpoint == str(folder) and plan.model.encoder_decoder
    assert plan.compute["finetune_flops"] > 0 and plan.memory["per_device_bytes"] > 0
    model, _ = get_family("t5").load(plan.model.weights)
    assert model.count_params() == plan.model.params


def test_plan_cli_refuses_folders_that_will_not_load(folder, tmp_path):
    import shutil
    import subprocess
    import sys

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "model.safetensors").unlink()
    byte = tmp_path / "byte.yaml"
    byte.write_text(SPEC.format(ckpt=folder).replace("{kind: sentencepiece, path: " + str(folder) + "/spiece.model}", "{kind: byte}"))
    preset = tmp_path / "preset.yaml"
    preset.write_text(SPEC.format(ckpt=folder).replace("family: t5", "family: preset"))
    nofile = tmp_path / "broken.yaml"
    nofile.write_text(SPEC.format(ckpt=broken))
    for spec, words in ((nofile, "no safetensors weights"), (byte, "byte tokenizer"), (preset, "family: t5")):
        proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "plan", str(spec)], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = [line for line in proc.stderr.splitlines() + proc.stdout.splitlines() if line.strip()]
        assert len(lines) == 1 and words in lines[0], lines
    good = tmp_path / "good.yaml"
    good.write_text(SPEC.format(ckpt=folder))
    proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "plan", str(good)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_apply_then_export_hf_round_trip(folder, tmp_path, apply_spec):
    """An HF T5 v1.1-shaped folder finetuned by `flanctl apply`, exported with `--format hf`:
    transformers reloads it with flanctl's logits and token ids."""
    import subprocess
    import sys

    from transformers import AutoTokenizer

    (tmp_path / "hft5.yaml").write_text(SPEC.format(ckpt=folder))
    run_dir, losses = apply_spec(tmp_path, "hft5.yaml", "hft5")
    assert len(losses) == 6 and all(np.isfinite(losses))
    proc = subprocess.run([sys.executable, "-m", "flanctl.cli", "export", "hft5", "--format", "hf"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    out = run_dir / "export_hf"
    model, tokenizer = get_family("t5").load(str(run_dir / "export"))
    enc, dec = probe_ids(tokenizer)
    assert AutoTokenizer.from_pretrained(out)(hf_tiny.PROBE).input_ids == enc
    finetuned = flanctl_logits(model, enc, dec)
    assert np.abs(finetuned - hf_tiny.hf_t5_logits(folder, [enc], [dec])).max() > 1e-3  # training moved it
    diff = np.abs(finetuned - hf_tiny.hf_t5_logits(out, [enc], [dec])).max()
    assert diff < TOL, diff


def test_load_model_without_a_plan_takes_an_hf_t5_folder(folder):
    """`flanctl eval --checkpoint/--preset DIR` loads through load_model and family_of_model."""
    from flanctl.models import family_of_model, load_model

    model, tokenizer = load_model(str(folder))
    assert family_of_model(model, folder).name == "t5" and tokenizer is not None


def test_plan_resolves_hf_handles_from_the_local_cache(folder, tmp_path, monkeypatch):
    import shutil

    from flanctl.errors import SpecError
    from flanctl.plan import make_plan
    from flanctl.spec import load_spec

    cache = tmp_path / "hub"
    repo = cache / "models--google--tiny-t5"
    shutil.copytree(folder, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    spec = tmp_path / "hub.yaml"
    spec.write_text(SPEC.format(ckpt=folder).replace(f"checkpoint: {folder}", "checkpoint: hf://google/tiny-t5"))
    plan = make_plan(load_spec(spec), runs_root=tmp_path / "runs")
    assert plan.model.checkpoint == str(repo / "snapshots" / "abc123") and plan.model.params
    spec.write_text(spec.read_text().replace("hf://google/tiny-t5", "hf://google/not-downloaded"))
    with pytest.raises(SpecError, match="not in the local Hugging Face cache"):
        make_plan(load_spec(spec), runs_root=tmp_path / "runs")
