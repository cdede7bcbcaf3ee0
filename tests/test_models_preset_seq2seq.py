"""family 'preset' with a keras-hub Seq2SeqLM: a tiny T5Seq2SeqLM preset directory (SentencePiece
vocabulary trained here, no network) generated from and scored through the keras-hub task,
and evaluated end to end with `flanctl eval --preset DIR`."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import keras
import keras_hub

from flanctl.errors import FlanctlError
from flanctl.models import KerasPredictor, load_model

CORPUS = [
    "Question: what is 2 + 3? Answer: 5",
    "the quick brown fox jumps over the lazy dog",
    "OPTIONS: yes no maybe. Which is larger, 7 or 9?",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;?!+-=()[]'\"",
]
PROMPTS = ["Question: what is 2 + 3?", "the quick", "Which is larger, 7 or 9? OPTIONS: yes no maybe"]


def tiny_t5_preset(directory: Path) -> None:
    """A 2+2-layer keras-hub T5Seq2SeqLM with a ~100-piece SentencePiece vocabulary.

    The token embeddings are redrawn from N(0, 1): T5's `TruncatedNormal(1.0)` initialiser has
    mean 1.0, which makes a random model repeat one token whatever the input.
    """
    import sentencepiece as spm

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 10), model_writer=proto, vocab_size=100, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )
    tokenizer = keras_hub.models.T5Tokenizer(proto=proto.getvalue())
    pre = keras_hub.models.T5Seq2SeqLMPreprocessor(tokenizer=tokenizer, encoder_sequence_length=64, decoder_sequence_length=32)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
        key_value_dim=16, activation="gelu", use_gated_activation=True, tie_embedding_weights=False,
    )
    emb = backbone.token_embedding
    emb.embeddings.assign(np.random.default_rng(0).normal(size=emb.embeddings.shape).astype("float32"))
    keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=pre).save_to_preset(str(directory))


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("s2s") / "t5"
    tiny_t5_preset(directory)
    return directory


@pytest.fixture(scope="module")
def predictor(preset_dir):
    from flanctl.evals.model_source import load_predictor

    pred, _ = load_predictor(preset=str(preset_dir), batch_size=2)
    return pred


def test_loaded_as_a_preset_with_the_seq2seq_engine(predictor):
    from flanctl.models.generation.keras_hub_seq2seq import KerasHubSeq2SeqEngine

    # config.json names "T5Backbone", but this is keras-hub's T5, not flanctl's packed t5 family:
    # the predictor is the keras-hub Seq2SeqLM family's engine.
    assert isinstance(predictor, KerasHubSeq2SeqEngine)
    assert isinstance(predictor.model, keras_hub.models.T5Seq2SeqLM)
    engine = predictor
    assert engine.enc_start == [] and engine.enc_end == [1] and engine.dec_start == [0]  # T5's framing


def test_greedy_generation_equals_keras_hub_generate(predictor, preset_dir):
    """Our batches (2 + 1 prompts, encoder padded to 16-token buckets) give the texts of the
    task's own string-in/string-out `generate` (its preprocessor pads every prompt to 64)."""
    ours = predictor.generate(PROMPTS, 10, stop=[])
    reference = keras_hub.models.Seq2SeqLM.from_preset(str(preset_dir))
    reference.compile(sampler="greedy")
    theirs = reference.generate(PROMPTS, max_length=11)  # decoder start + 10 new tokens
    assert [o[0].strip() for o in ours] == [t.strip() for t in theirs]
    assert len({o[0] for o in ours}) == 3 and all(len(o[0]) > 3 for o in ours)  # varied, input-dependent


def test_batched_generation_equals_one_by_one(predictor):
    together = predictor.generate(PROMPTS, 10, stop=[])
    assert together == [predictor.generate([p], 10, stop=[])[0] for p in PROMPTS]


def test_stop_sequences_and_sampling(predictor):
    full = predictor.generate(PROMPTS[:1], 10, stop=[])[0][0]
    stop = full[3:5]
    cut = predictor.generate(PROMPTS[:1], 10, stop=[stop])[0][0]
    assert cut == full[: full.find(stop)] and stop not in cut
    # a stop sequence that is one token also stops keras-hub's loop on the device
    tok = predictor.tokenizer
    one = next(i for i in range(3, tok.vocab_size) if tok.encode(tok.decode([i])) == [i])
    assert predictor._stop_ids([tok.decode([one]), "zz-not-one-token"]) == (1, one)
    assert predictor._stop_ids([]) == (1,)

    a = predictor.generate(PROMPTS, 6, stop=[], temperature=1.5, num_samples=2, seed=4)
    assert a == predictor.generate(PROMPTS, 6, stop=[], temperature=1.5, num_samples=2, seed=4)
    assert a != predictor.generate(PROMPTS, 6, stop=[], temperature=1.5, num_samples=2, seed=5)
    assert [len(s) for s in a] == [2, 2, 2] and len(set(a[0] + a[1] + a[2])) > 3


def test_loglikelihood_equals_keras_hub_forward_on_its_own_framing(predictor, preset_dir):
    prompts, conts = ["Question: what is 2 + 3?", "the quick"], [[" 5", " yes no"], [" fox"]]
    got = predictor.loglikelihood(prompts, conts)
    model = predictor.model
    pre = model.preprocessor
    for prompt, options, scores in zip(prompts, conts, got):
        for cont, score in zip(options, scores):
            # the preprocessor's training framing: decoder "<pad> tokens </s>", labels shifted
            x, y, w = pre({"encoder_text": [prompt], "decoder_text": [cont]})
            logits = np.asarray(model(x))[0].astype(np.float64)
            logp = logits - logits.max(-1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
            labels, weights = np.asarray(y)[0], np.asarray(w)[0]
            n = int(weights.sum()) - 1  # the continuation's tokens, without the final </s>
            ref = sum(logp[j, labels[j]] for j in range(n))
            assert score == pytest.approx(ref, abs=1e-4)
    assert all(s < 0 for row in got for s in row)


def test_errors_name_the_fix(preset_dir):
    from flanctl.models.generation.keras_hub_causal_lm import KerasHubCausalLMEngine

    model, tok = load_model(preset_dir)
    with pytest.raises(FlanctlError, match="KerasHubSeq2SeqEngine"):
        KerasHubCausalLMEngine(model, tok)
    bare = keras_hub.models.T5Seq2SeqLM(backbone=model.backbone, preprocessor=None)
    with pytest.raises(FlanctlError, match="no preprocessor"):
        KerasPredictor(bare, None, "preset")


def test_flanctl_eval_preset_dir_json_and_predictions(preset_dir, tmp_path, monkeypatch, capsys):
    from flanctl.cli import main

    preds = tmp_path / "preds.jsonl"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["flanctl", "eval", "--suite", "builtin", "--preset", str(preset_dir),
                                      "--limit", "2", "--json", "--write-predictions", str(preds)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    assert (exc.value.code or 0) == 0, out.err[-2000:]
    result = json.loads(out.out)
    assert result["suite"] == "builtin" and 0.0 <= result["score"] <= 100.0
    assert {"score", "tasks", "n", "chance", "settings"} <= set(result)
    assert result["n"] == 2 * len(result["tasks"]) and len(result["tasks"]) >= 2
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(lines) == result["n"]
    assert all(set(line) == {"id", "prediction"} and isinstance(line["prediction"], str) for line in lines)
    assert any(line["prediction"] for line in lines)  # the model did generate
