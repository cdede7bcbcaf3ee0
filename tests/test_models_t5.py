"""T5 v1.1 on keras-hub's T5 layers: parameter counts, contamination-free packing, saving, decoding."""

from __future__ import annotations

import numpy as np
import pytest

import keras
import keras_hub

from flanctl.catalog.models import SIZES, param_count
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.models import KerasPredictor, abstract_param_count, build_model, load_model, save_preset, supports_packing
from flanctl.models.t5.presets import backbone_kwargs

TINY = dict(SIZES["t5"]["tiny"], vocab_size=259)
TOK = ByteTokenizer()


def t5_batch(enc_rows, dec_rows, enc_seg=None, dec_seg=None):
    enc, dec = np.asarray(enc_rows, np.int32), np.asarray(dec_rows, np.int32)
    es = np.ones_like(enc) if enc_seg is None else np.asarray(enc_seg, np.int32)
    ds = np.ones_like(dec) if dec_seg is None else np.asarray(dec_seg, np.int32)
    return {
        "encoder_token_ids": enc, "encoder_segment_ids": es,
        "encoder_positions": np.broadcast_to(np.arange(enc.shape[1], dtype=np.int32), enc.shape).copy(),
        "decoder_token_ids": dec, "decoder_segment_ids": ds,
        "decoder_positions": np.broadcast_to(np.arange(dec.shape[1], dtype=np.int32), dec.shape).copy(),
    }


@pytest.fixture(scope="module")
def t5():
    keras.utils.set_random_seed(4)
    return build_model(TINY, "t5")


def test_tiny_count_equals_catalog_and_keras_hub_t5(t5):
    kw = backbone_kwargs(TINY)
    kw.pop("num_decoder_layers")
    hub = keras_hub.models.T5Backbone(**kw)
    assert t5.count_params() == hub.count_params() == param_count("t5", TINY)


def test_keras_hub_t5_small_real_count_equals_catalog():
    kw = backbone_kwargs(SIZES["t5"]["small"])
    kw.pop("num_decoder_layers")
    hub = keras_hub.models.T5Backbone(**kw)
    assert hub.count_params() == param_count("t5", SIZES["t5"]["small"]) == 76_961_152


@pytest.mark.parametrize("size,expected", [("small", 76_961_152), ("base", 247_577_856), ("large", 783_150_080), ("xl", 2_849_757_184), ("xxl", 11_135_332_352)])
def test_t5_v11_sizes_by_variable_shapes(size, expected):
    assert abstract_param_count(SIZES["t5"][size], "t5") == expected == param_count("t5", SIZES["t5"][size])


def test_packing_is_contamination_free(t5):
    assert supports_packing("t5")
    rng = np.random.default_rng(0)
    e1, e2 = rng.integers(3, 259, 6), rng.integers(3, 259, 5)
    d1, d2 = rng.integers(3, 259, 4), rng.integers(3, 259, 3)
    packed = t5_batch(
        [np.concatenate([e1, e2, [0]])], [np.concatenate([d1, d2, [0]])],
        [[1] * 6 + [2] * 5 + [0]], [[1] * 4 + [2] * 3 + [0]],
    )
    out = np.asarray(t5(packed))[0]
    alone1 = np.asarray(t5(t5_batch([e1], [d1])))[0]
    alone2 = np.asarray(t5(t5_batch([e2], [d2])))[0]
    np.testing.assert_allclose(out[:4], alone1, atol=1e-4)
    np.testing.assert_allclose(out[4:7], alone2, atol=1e-4)


def test_preset_roundtrip(t5, tmp_path):
    x = t5_batch(np.random.default_rng(1).integers(3, 259, (2, 8)), np.random.default_rng(2).integers(3, 259, (2, 5)))
    expected = np.asarray(t5(x))
    save_preset(t5, tmp_path / "t5")
    via_hub = keras_hub.models.Seq2SeqLM.from_preset(str(tmp_path / "t5"))
    np.testing.assert_allclose(np.asarray(via_hub(x)), expected, atol=1e-6)
    model, tok = load_model(tmp_path / "t5")
    np.testing.assert_allclose(np.asarray(model(x)), expected, atol=1e-6)
    assert tok.vocab_size == 259


def test_generation_matches_full_forward_argmax_and_batches(t5):
    model = build_model(TINY, "t5")
    model.set_weights([w * 3.0 for w in t5.get_weights()])
    pred = KerasPredictor(model, TOK, "t5", batch_size=4)
    prompts = ["translate: hello", "2+2="]
    outs = pred.engine.generate_ids([TOK.encode(p) + [TOK.eos_id] for p in prompts], 4, 0.0, 0, lambda r, i: False)
    for prompt, got in zip(prompts[:1], outs[:1]):  # batched row vs a token-by-token reference
        enc = TOK.encode(prompt) + [TOK.eos_id]
        dec = [0]
        for _ in range(4):
            logits = np.asarray(model(t5_batch([enc], [dec])))[0, -1]
            dec.append(int(np.argmax(logits)))
        assert got == dec[1:]
    together = pred.generate(prompts, 4, stop=[])
    assert together == [pred.generate([p], 4, stop=[])[0] for p in prompts]
    scores = pred.loglikelihood(prompts, [["a", "bc"], ["4"]])
    assert [len(s) for s in scores] == [2, 1] and all(v < 0 for row in scores for v in row)


def test_token_embeddings_start_centred_and_varied(t5):
    """T5 v1.1 draws embeddings from N(0, 1): a mean of 1 (TruncatedNormal's first argument)
    would make every token start near the same vector and a random model repeat one token."""
    emb = keras.ops.convert_to_numpy(t5.backbone.token_embedding.embeddings)
    assert abs(emb.mean()) < 0.05
    assert 0.8 < emb.std() < 0.95  # a normal of std 1 truncated at 2 sigma has std 0.88
