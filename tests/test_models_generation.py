"""KerasPredictor on a real tiny PaLM: cached decoding, batching, stops, sampling, scoring."""

from __future__ import annotations

import numpy as np
import pytest

import keras

from flanctl.catalog.models import SIZES
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.errors import FlanctlError
from flanctl.models import KerasPredictor, build_model
from flanctl.models.generation import cut_at_stop

TINY = dict(SIZES["palm"]["tiny"], vocab_size=259)
TOK = ByteTokenizer()
PROMPTS = ["Hello there", "Q: what is 2+2?\nA:", "x"]


@pytest.fixture(scope="module")
def lm():
    keras.utils.set_random_seed(3)
    model = build_model(TINY, "palm")
    # Larger weights make a random model's greedy output vary from token to token, so the
    # token-for-token comparisons below are not comparing runs of one repeated token.
    model.set_weights([w * 3.0 for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def predictor(lm):
    return KerasPredictor(lm, TOK, "palm", batch_size=4)


def uncached_greedy(lm, prompt: str, n: int, width: int = 64, bos: bool = False) -> list[int]:
    """Reference: re-run the whole sequence each step and take the argmax (no cache).

    Rows are right-padded to one width (causal attention: padding after the last real token
    cannot change its logits), so the compiled forward is traced once.
    """
    from flanctl.models.compiled import CompiledModelFunction

    forward = CompiledModelFunction(lm, lambda x: lm(x))
    ids, out = ([TOK.bos_id] if bos else []) + TOK.encode(prompt), []
    for _ in range(n):
        length = len(ids)
        x = {
            "token_ids": np.array([ids + [0] * (width - length)], "int32"),
            "segment_ids": np.array([[1] * length + [0] * (width - length)], "int32"),
            "positions": np.arange(width, dtype="int32")[None],
        }
        nxt = int(np.argmax(np.asarray(forward(x))[0, length - 1]))
        out.append(nxt)
        ids = ids + [nxt]
    return out


def test_cached_generation_equals_uncached_argmax(lm, predictor):
    never = lambda row, ids: False  # noqa: E731
    batch = predictor.engine.generate_ids([TOK.encode(p) for p in PROMPTS], 12, 0.0, 0, never)
    for prompt, got in zip(PROMPTS, batch):
        ref = uncached_greedy(lm, prompt, 12)
        assert got == ref
    assert len(set(batch[0])) > 2  # a varied sequence, not one token repeated


def test_generate_frames_prompts_like_training(lm, predictor):
    text = predictor.generate(PROMPTS[:1], 6, stop=[])[0][0]
    ref = uncached_greedy(lm, PROMPTS[0], 6, bos=True)
    if TOK.eos_id in ref:
        ref = ref[: ref.index(TOK.eos_id)]
    assert text == TOK.decode(ref)


def test_batch_with_different_prompt_lengths_equals_one_by_one(predictor):
    together = predictor.generate(PROMPTS, 10, stop=[])
    alone = [predictor.generate([p], 10, stop=[])[0] for p in PROMPTS]
    assert together == alone
    assert all(len(s) == 1 for s in together)


def test_stop_sequences_cut_the_output(predictor):
    full = predictor.generate(PROMPTS[:1], 12, stop=[])[0][0]
    ids = TOK.encode(full)
    assert len(ids) >= 6
    stop = TOK.decode(ids[4:6])
    cut = predictor.generate(PROMPTS[:1], 12, stop=[stop])[0][0]
    assert cut == full[: full.find(stop)]
    assert stop not in cut


def test_cut_at_stop_earliest_wins():
    assert cut_at_stop("abc\n\nQ: x", ["Q:", "\n\n"]) == ("abc", True)
    assert cut_at_stop("abc", ["zz", ""]) == ("abc", False)


def test_sampling_is_seeded_and_near_greedy_at_low_temperature(predictor):
    # A hot temperature, because the sharpened model is confident.
    a = predictor.generate(PROMPTS[:2], 8, stop=[], temperature=20.0, num_samples=3, seed=5)
    b = predictor.generate(PROMPTS[:2], 8, stop=[], temperature=20.0, num_samples=3, seed=5)
    c = predictor.generate(PROMPTS[:2], 8, stop=[], temperature=20.0, num_samples=3, seed=6)
    assert a == b and a != c
    assert [len(s) for s in a] == [3, 3]
    assert len(set(a[0])) > 1  # samples of one prompt differ
    greedy = predictor.generate(PROMPTS[:2], 8, stop=[])
    cold = predictor.generate(PROMPTS[:2], 8, stop=[], temperature=1e-4, num_samples=1, seed=1)
    assert cold == greedy


def test_loglikelihood_equals_full_forward_log_softmax(lm, predictor):
    prompts, conts = ["The cat", "Hi"], [[" sat", " ran away"], ["!"]]
    got = predictor.loglikelihood(prompts, conts)
    for prompt, options, scores in zip(prompts, conts, got):
        for cont, score in zip(options, scores):
            ctx, tgt = [TOK.bos_id] + TOK.encode(prompt), TOK.encode(cont)  # rows start with BOS, as in training
            seq = ctx + tgt
            length = len(seq) - 1
            x = {
                "token_ids": np.array([seq[:-1]], "int32"),
                "segment_ids": np.ones((1, length), "int32"),
                "positions": np.arange(length, dtype="int32")[None],
            }
            logits = np.asarray(lm(x))[0].astype(np.float64)
            logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
            ref = sum(logp[len(ctx) - 1 + i, t] for i, t in enumerate(tgt))
            assert score == pytest.approx(ref, abs=1e-3)
    assert all(s < 0 for row in got for s in row)


def test_zero_new_tokens_and_errors(lm, predictor):
    assert predictor.generate(["a", "b"], 0, stop=[]) == [[""], [""]]
    with pytest.raises(FlanctlError, match="unknown model family"):
        KerasPredictor(lm, TOK, "gpt")
    big = build_model(dict(TINY, vocab_size=300, num_layers=1), "palm")
    with pytest.raises(FlanctlError, match="no tokenizer"):
        KerasPredictor(big, None, "palm")


def test_grouped_scoring_equals_one_forward_per_continuation(lm):
    """Contexts run once per group (prefill + gathered cache rows) score each continuation as
    the plain forward over context + continuation does: contexts of different lengths (one
    empty), continuations of 0, 1 and 11 tokens, groups split over batches of 3 continuations."""
    pred = KerasPredictor(lm, TOK, "palm", batch_size=3)
    prompts = ["The cat sat on the", "", "Q: 2+2?\nA:", "x"]
    conts = [[" mat", " hat"], [" hello there", "!"], [" 4", " 5", "", " four or five"], ["y"]]
    got = pred.loglikelihood(prompts, conts)
    engine = pred.engine
    for prompt, options, scores in zip(prompts, conts, got):
        ctx = [TOK.bos_id] + TOK.encode(prompt)
        ref = engine.score([(ctx, TOK.encode(c)) for c in options], TOK.bos_id)
        assert len(scores) == len(options)
        np.testing.assert_allclose(scores, ref, atol=2e-3)
    assert got[2][2] == 0.0  # an empty continuation has log-probability 0
    assert all(s < 0 for row in got for s in row if s != 0.0)
    assert pred.loglikelihood([], []) == []


def test_a_budget_larger_than_the_model_never_shortens_the_prompt():
    """A derived decode budget (BBH-CoT: up to 3,616 tokens) on a shorter model is cut to the room
    left after the prompt; the prompt itself stays whole, so greedy outputs equal those of a budget
    that fits."""
    import keras

    keras.utils.set_random_seed(3)
    short = build_model(dict(TINY, max_sequence_length=48), "palm")
    pred = KerasPredictor(short, TOK, "palm", batch_size=2)
    prompt = "The quick brown fox jumps over the lazy dog."  # 44 bytes + BOS: room for 3 tokens
    fits = pred.generate([prompt], 3, stop=[])
    huge = pred.generate([prompt], 3_616, stop=[])
    assert huge == fits and len(TOK.encode(huge[0][0])) <= 3
