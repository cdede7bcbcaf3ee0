"""family 'preset': a tiny keras-hub GPT2CausalLM saved by the test, loaded and evaluated offline."""

from __future__ import annotations

import numpy as np
import pytest

import keras
import keras_hub

from flanctl.errors import FlanctlError
from flanctl.models import KerasPredictor, load_model, packing_note, supports_packing

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_gpt2(tmp_path):
    """A 2-layer GPT-2 with a 30-symbol byte-level BPE vocabulary, saved as a preset directory."""
    vocab = {"<|endoftext|>": 0, "Ġ": 1, **{c: i + 2 for i, c in enumerate(LETTERS)}, "Ġa": 28, "Ġb": 29}
    merges = ["Ġ a", "Ġ b"]
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
    pre = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=32)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=64,
    )
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=pre)
    lm.save_to_preset(str(tmp_path / "gpt2"))
    return lm, tmp_path / "gpt2"


def test_load_keras_hub_preset_directory_and_score(tmp_path):
    original, path = tiny_gpt2(tmp_path)
    model, tok = load_model(path)
    assert isinstance(model, keras_hub.models.GPT2CausalLM)
    assert tok is not None and tok.encode("ab") == [2, 3]
    pred = KerasPredictor(model, tok, "preset", batch_size=4)
    scores = pred.loglikelihood(["abc", "a"], [["d", " a b"], ["b"]])
    assert [len(s) for s in scores] == [2, 1] and all(v < 0 for row in scores for v in row)
    # reference: keras-hub forward on [start] + context + continuation
    seq = [0] + tok.encode("abc") + tok.encode("d")
    logits = np.asarray(original({"token_ids": np.array([seq]), "padding_mask": np.ones((1, len(seq)), "int32")}))[0]
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    assert scores[0][0] == pytest.approx(float(logp[-2, seq[-1]]), abs=1e-4)


def test_generate_with_keras_hub_sampler_and_stops(tmp_path):
    _, path = tiny_gpt2(tmp_path)
    model, tok = load_model(path)
    pred = KerasPredictor(model, tok, "preset", batch_size=4)
    out = pred.generate(["abc", "b"], 5, stop=[])
    assert [len(o) for o in out] == [1, 1]
    assert all(len(tok.encode(o[0])) <= 5 for o in out)
    full = out[0][0]
    if len(full) >= 2:
        cut = pred.generate(["abc"], 5, stop=[full[1]])[0][0]
        assert full[1] not in cut and full.startswith(cut)
    sampled = pred.generate(["abc"], 5, stop=[], temperature=1.0, num_samples=2, seed=3)
    assert len(sampled[0]) == 2


def test_preset_packing_is_off_with_reason():
    assert not supports_packing("preset")
    assert "padding mask" in packing_note("preset")
    assert supports_packing("palm") and packing_note("palm") is None


def test_load_model_rejects_a_non_preset(tmp_path):
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(FlanctlError, match="cannot load"):
        load_model(tmp_path)
