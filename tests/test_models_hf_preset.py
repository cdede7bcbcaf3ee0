"""Hugging Face folders through keras-hub (`family: preset`): the kind from config.json, exact
counts from the safetensors headers, and the tokenizer probe that refuses wrong ids before any
step (the Llama-2 SentencePiece case). Tiny models and tokenizers are made here (no network)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

import hf_tiny  # noqa: E402

from flanctl.errors import FlanctlError, SpecError  # noqa: E402
from flanctl.plan.presets import read_preset  # noqa: E402


def unique_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_llama2_sentencepiece_folder_is_refused_before_training(tmp_path):
    from transformers import LlamaForCausalLM

    from flanctl.models import get_family

    folder = hf_tiny.llama2_folder(tmp_path / "llama2")
    info = read_preset(str(folder), tmp_path)
    assert info.hf_model_type == "llama" and not info.encoder_decoder
    assert info.params == unique_params(LlamaForCausalLM.from_pretrained(folder))
    with pytest.raises(FlanctlError, match="does not give the checkpoint's own token ids.*Llama-2"):
        get_family("preset", False).load(str(folder))


def test_bart_folder_is_an_encoder_decoder(tmp_path):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    config = BartConfig(vocab_size=96, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64)
    model = BartForConditionalGeneration(config)
    model.save_pretrained(tmp_path / "bart")
    info = read_preset(str(tmp_path / "bart"), tmp_path)
    assert info.encoder_decoder and info.hf_model_type == "bart"
    assert info.architecture["hidden_dim"] == 16 and info.architecture["num_layers"] == 1
    assert info.params == unique_params(model)


def test_t5_spiece_that_is_not_the_folders_tokenizer(tmp_path):
    import shutil

    from flanctl.models import get_family

    folder = hf_tiny.t5_folder(tmp_path / "t5")
    other = hf_tiny.train_t5_spm(tmp_path / "other", vocab_size=60)
    shutil.copyfile(other, folder / "spiece.model")
    with pytest.raises(FlanctlError, match="does not give the checkpoint's own token ids"):
        get_family("t5").load(str(folder))


def test_byte_tokenizer_on_a_preset_is_refused(tmp_path):
    from flanctl.plan import make_plan
    from flanctl.spec import load_spec

    folder = hf_tiny.llama2_folder(tmp_path / "llama2")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"apiVersion: flanctl/v1\nmodel: {{family: preset, preset: {folder}}}\n"
                    "mixture: {collections: [{name: builtin, proportion: 1.0, cap: 10}]}\n")
    with pytest.raises(SpecError, match="byte tokenizer"):
        make_plan(load_spec(spec), runs_root=tmp_path / "runs")
    spec.write_text(spec.read_text().replace(f"preset: {folder}}}", f"preset: {folder}, tokenizer: {{kind: preset}}}}"))
    plan = make_plan(load_spec(spec), runs_root=tmp_path / "runs")
    assert plan.model.params and not plan.model.encoder_decoder and plan.memory["per_device_bytes"] > 0


def test_keras_hub_causal_lm_exports_to_transformers(tmp_path):
    """`export_hf` of a preset family goes through keras-hub's export_to_transformers: GPT-2
    reloads as GPT2LMHeadModel with the same logits and ids."""
    import numpy as np
    import torch
    from test_train_preset import byte_level_gpt2
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flanctl.models import get_family

    byte_level_gpt2(tmp_path / "gpt2")
    family = get_family("preset", False)
    model, tokenizer = family.load(str(tmp_path / "gpt2"))
    out = family.export_hf(family.trainable(model), tmp_path / "hf", tokenizer)
    text = "hello there, 42!"
    ids = np.array([tokenizer.encode(text)], np.int32)
    assert AutoTokenizer.from_pretrained(out)(text, add_special_tokens=False).input_ids == ids[0].tolist()
    hidden = model.backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)})
    ours = np.asarray(model.backbone.token_embedding(hidden, reverse=True))
    with torch.no_grad():
        theirs = AutoModelForCausalLM.from_pretrained(out).eval()(torch.tensor(ids)).logits.numpy()
    assert np.abs(ours - theirs).max() < 1e-5


def test_palm_export_hf_is_refused_with_the_reason():
    from flanctl.models import get_family

    with pytest.raises(FlanctlError, match="parallel"):
        get_family("palm").export_hf(None, "/nonexistent")
