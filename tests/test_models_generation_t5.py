"""Cached T5 decoding (encoder once, decoder K/V cache, cross-attention K/V once) against the
uncached reference decoder, on a real tiny random `T5PackedSeq2SeqLM`."""

from __future__ import annotations

import numpy as np
import pytest

import keras

from flanctl.catalog.models import SIZES
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.models import KerasPredictor, build_model

TINY = dict(SIZES["t5"]["tiny"], vocab_size=259)
TOK = ByteTokenizer()
# Encoder inputs of 17, 5 and 52 tokens: three different lengths, two length buckets.
PROMPTS = ["translate: hello", "2+2=", "a much longer prompt than the others, with commas, ok"]
NEVER = lambda row, ids: False  # noqa: E731


def varied_t5(seed: int, tied: bool = False):
    """A tiny T5 whose greedy output varies from token to token and from prompt to prompt.

    The T5 token embedding initialiser (`TruncatedNormal(1.0)`, i.e. mean 1.0, as in
    keras-hub) makes every token's embedding nearly the same vector, so a random model repeats
    one token; N(0, 1) embeddings make the comparisons below compare varied sequences.
    """
    keras.utils.set_random_seed(seed)
    model = build_model(TINY, "t5") if not tied else _tied_t5()
    emb = model.backbone.token_embedding
    emb.embeddings.assign(np.random.default_rng(seed).normal(size=emb.embeddings.shape).astype("float32"))
    return model


def _tied_t5():
    from flanctl.models.t5 import FlanT5Backbone, T5PackedSeq2SeqLM
    from flanctl.models.t5.presets import backbone_kwargs

    kwargs = dict(backbone_kwargs(TINY), tie_embedding_weights=True)
    return T5PackedSeq2SeqLM(backbone=FlanT5Backbone(**kwargs), compile=False)


@pytest.fixture(scope="module")
def predictor():
    return KerasPredictor(varied_t5(0), TOK, "t5", batch_size=4)


def encoded(prompts):
    return [TOK.encode(p) + [TOK.eos_id] for p in prompts]


def test_cached_greedy_equals_uncached_reference(predictor):
    engine = predictor.engine
    cached = engine.generate_ids(encoded(PROMPTS), 20, 0.0, 0, NEVER)
    reference = engine._generate_ids_uncached(encoded(PROMPTS), 20, 0.0, 0, NEVER)
    assert cached == reference
    assert all(len(row) == 20 for row in cached)  # 20 > 16: crosses a cache-length bucket
    assert all(len(set(row)) > 4 for row in cached)  # varied sequences, not one repeated token
    assert len({tuple(row) for row in cached}) == 3  # the encoder input matters


def test_cached_sampling_equals_uncached_reference_under_a_seed(predictor):
    engine = predictor.engine
    a = engine.generate_ids(encoded(PROMPTS), 12, 2.0, 11, NEVER)
    assert a == engine._generate_ids_uncached(encoded(PROMPTS), 12, 2.0, 11, NEVER)
    assert a == engine.generate_ids(encoded(PROMPTS), 12, 2.0, 11, NEVER)
    assert a != engine.generate_ids(encoded(PROMPTS), 12, 2.0, 12, NEVER)
    assert a != engine.generate_ids(encoded(PROMPTS), 12, 0.0, 11, NEVER)


def test_cached_step_logits_equal_full_decoder_logits(predictor):
    """Each cached step's logits equal the full decoder's logits at that slot."""
    from keras import ops

    model, engine = predictor.model, predictor.engine
    enc_ids, enc_seg = engine._encoder_batch(encoded(PROMPTS))
    enc_out = model.encode(enc_ids, enc_seg)
    cross = model.cross_attention_cache(enc_out)
    b, width = len(PROMPTS), 8
    rng = np.random.default_rng(1)
    dec = np.concatenate([np.zeros((b, 1), np.int32), rng.integers(3, 259, (b, width - 1)).astype(np.int32)], axis=1)
    full = np.asarray(model.decode_logits(dec, np.ones_like(dec), enc_out, enc_seg))
    cache = model.empty_decoder_cache(b, 16)
    valid = enc_seg.astype(bool)[:, None, :]
    for step in range(width):
        self_mask = np.broadcast_to(np.arange(16)[None, None, :] <= step, (b, 1, 16)).astype(np.int32)
        logits, cache = model.decode_with_cache(dec[:, step : step + 1], self_mask, valid.astype(np.int32), cache, cross, step)
        np.testing.assert_allclose(np.asarray(ops.convert_to_numpy(logits))[:, 0], full[:, step], atol=2e-4, rtol=1e-4)


def test_tied_embeddings_cached_equals_uncached():
    model = varied_t5(1, tied=True)
    for v in model.weights:  # with a tied head the residual stream would echo the input token
        if "token_embedding" not in v.path:
            v.assign(np.asarray(v) * 3.0)
    engine = KerasPredictor(model, TOK, "t5").engine
    cached = engine.generate_ids(encoded(PROMPTS), 10, 0.0, 0, NEVER)
    assert cached == engine._generate_ids_uncached(encoded(PROMPTS), 10, 0.0, 0, NEVER)
    assert all(len(set(row)) > 2 for row in cached)


def test_batches_of_different_prompt_lengths_equal_one_by_one(predictor):
    together = predictor.generate(PROMPTS, 10, stop=[])
    alone = [predictor.generate([p], 10, stop=[])[0] for p in PROMPTS]
    assert together == alone
    # a batch size that splits the prompts unevenly (2 + 1)
    small = KerasPredictor(predictor.model, TOK, "t5", batch_size=2)
    assert small.generate(PROMPTS, 10, stop=[]) == together


def test_rows_stop_independently_and_stop_sequences_cut(predictor):
    engine = predictor.engine
    calls = []

    def after(n_by_row):
        def finished(row, ids):
            calls.append(row)
            return len(ids) >= n_by_row[row]
        return finished

    out = engine.generate_ids(encoded(PROMPTS), 12, 0.0, 0, after([2, 5, 3]))
    full = engine.generate_ids(encoded(PROMPTS), 12, 0.0, 0, NEVER)
    assert [len(r) for r in out] == [2, 5, 3]
    assert all(full[i][: len(r)] == r for i, r in enumerate(out))
    assert len(calls) == 2 + 5 + 3  # finished rows are not checked again; decoding ended at 5

    text = predictor.generate(PROMPTS[:1], 12, stop=[])[0][0]
    ids = TOK.encode(text)
    assert len(ids) >= 6
    stop = TOK.decode(ids[3:5])
    cut = predictor.generate(PROMPTS[:1], 12, stop=[stop])[0][0]
    assert cut == text[: text.find(stop)] and stop not in cut



def test_loglikelihood_encodes_each_context_once_and_equals_the_full_forward(predictor):
    """Grouped scoring (encoder once per context, gathered per continuation) gives the task
    model's own forward-pass log-probabilities; batches of 3 split the groups."""
    model = predictor.model
    pred = KerasPredictor(model, TOK, "t5", batch_size=3)
    prompts, conts = ["translate: hello", "2+2=", "x"], [[" hola", " bonjour!"], ["4", "", " four"], ["y"]]
    got = pred.loglikelihood(prompts, conts)
    assert [len(s) for s in got] == [2, 3, 1] and got[1][1] == 0.0
    # Reference: one forward pass of the task model over every (prompt, continuation) row,
    # right-padded (segment 0 = padding), decoder input = start id + continuation[:-1].
    rows = [(TOK.encode(p) + [TOK.eos_id], TOK.encode(c)) for p, cs in zip(prompts, conts) for c in cs if c]
    le, ld = max(len(e) for e, _ in rows), max(len(t) for _, t in rows)
    x = {k: np.zeros((len(rows), le if k.startswith("enc") else ld), np.int32) for k in (
        "encoder_token_ids", "encoder_segment_ids", "encoder_positions", "decoder_token_ids", "decoder_segment_ids", "decoder_positions")}
    for i, (enc, tgt) in enumerate(rows):
        x["encoder_token_ids"][i, : len(enc)], x["encoder_segment_ids"][i, : len(enc)] = enc, 1
        x["decoder_token_ids"][i, : len(tgt)], x["decoder_segment_ids"][i, : len(tgt)] = [0] + tgt[:-1], 1
    x["encoder_positions"][:] = np.arange(le)
    x["decoder_positions"][:] = np.arange(ld)
    logits = np.asarray(model(x)).astype(np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    ref = [sum(logp[i, j, t] for j, t in enumerate(tgt)) for i, (_, tgt) in enumerate(rows)]
    np.testing.assert_allclose([v for row in got for v in row if v != 0.0], ref, atol=1e-3)
