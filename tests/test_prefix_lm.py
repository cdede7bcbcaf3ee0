"""Prefix-LM attention for the palm families (`model.attention: prefix`, UL2 / U-PaLM's non-causal
decoder): the mask, the prefix flags of the batches, the model, cached generation and scoring,
a UL2 run through apply, and the spec check that keeps it to the palm families."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import keras

from flanctl.catalog.models import SIZES
from flanctl.data.stream import BatchUnpacker, DecoderFeatures, prefix_flags
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.errors import SpecError, SpecErrors
from flanctl.models import build_model
from flanctl.models.palm import with_attention
from flanctl.models.palm.layers import segment_causal_mask, segment_prefix_mask

TINY = dict(SIZES["palm"]["tiny"], vocab_size=259)
TOK = ByteTokenizer()

# Two packed examples and padding: example 1 = 3 prefix + 2 target tokens, example 2 = 2 + 1.
SEG = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 0]], np.int32)
PRE = np.array([[1, 1, 1, 0, 0, 1, 1, 0, 0]], np.int32)
# Row q = query, column k = key; written out from the definition.
HAND = np.array([
    [1, 1, 1, 0, 0, 0, 0, 0, 0],  # prefix tokens of example 1 see all three prefix tokens
    [1, 1, 1, 0, 0, 0, 0, 0, 0],
    [1, 1, 1, 0, 0, 0, 0, 0, 0],
    [1, 1, 1, 1, 0, 0, 0, 0, 0],  # its targets: causal
    [1, 1, 1, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 1, 1, 0, 0],  # example 2's prefix: both of its prefix tokens, never example 1
    [0, 0, 0, 0, 0, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0],  # padding sees nothing (and is never a key)
], bool)


@pytest.fixture(scope="module")
def models():
    """(causal, prefix) tiny palm models with the same weights (scaled so outputs vary)."""
    keras.utils.set_random_seed(3)
    causal = build_model(TINY, "palm")
    causal.set_weights([w * 3.0 for w in causal.get_weights()])
    return causal, with_attention(causal, "prefix")


def _inputs(ids, prefix_len: int | None = None):
    ids = np.asarray([ids], np.int32)
    x = {"token_ids": ids, "segment_ids": np.ones_like(ids), "positions": np.arange(ids.shape[1], dtype=np.int32)[None]}
    if prefix_len is not None:
        x["prefix_mask"] = (np.arange(ids.shape[1]) < prefix_len).astype(np.int32)[None]
    return x


def _mask_of(model):
    """The model's attention mask as a function of its inputs (its `attention_mask` layer)."""
    bb = model.backbone
    return keras.Model(bb.input, bb.get_layer("attention_mask").output)


# --------------------------------------------------------------------------- the mask


def test_prefix_mask_equals_the_hand_built_mask(models):
    _, prefix = models
    np.testing.assert_array_equal(np.asarray(segment_prefix_mask(SEG, PRE))[0], HAND)
    x = {"token_ids": np.full_like(SEG, 5), "segment_ids": SEG, "positions": np.zeros_like(SEG), "prefix_mask": PRE}
    np.testing.assert_array_equal(np.asarray(_mask_of(prefix)(x))[0], HAND)
    # With no prefix flags it is the segment-causal mask.
    np.testing.assert_array_equal(np.asarray(segment_prefix_mask(SEG, np.zeros_like(PRE))),
                                  np.asarray(segment_causal_mask(SEG)))


def test_prefix_flags_come_from_the_packed_loss_bits():
    """DecoderFeatures' `[bos] inputs targets` rows, packed by hand, unpack with `[bos] inputs` flagged."""
    feats = DecoderFeatures(TOK.bos_id, TOK.eos_id)
    a = feats({"inputs": np.array([10, 11], np.int32), "targets": np.array([20, 21], np.int32)})["token_ids"]
    b = feats({"inputs": np.array([12], np.int32), "targets": np.array([22], np.int32)})["token_ids"]
    code = np.zeros((1, 10), np.int32)
    code[0, :5], code[0, 5:8] = a, b
    seg = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 0, 0]], np.int32)
    pos = np.array([[0, 1, 2, 3, 4, 0, 1, 2, 0, 0]], np.int32)
    packed = {"token_ids": code, "token_ids_segment_ids": seg, "token_ids_positions": pos}
    out = BatchUnpacker(False, TOK.eos_id, 0, prefix=True)(packed)
    assert out["prefix_mask"].tolist() == [[1, 1, 1, 0, 0, 1, 1, 0, 0, 0]]  # [bos 10 11] and [bos 12]
    assert out["loss_mask"].tolist() == [[0, 0, 1, 1, 1, 0, 1, 1, 0, 0]]
    assert "prefix_mask" not in BatchUnpacker(False, TOK.eos_id, 0)(packed)  # only when the model needs it
    # A causal-LM example (loss from its first token) has a one-token prefix: causal attention.
    assert prefix_flags(np.array([[1, 1, 1, 0]]), np.array([[1, 1, 1, 0]])).tolist() == [[1, 0, 0, 0]]


# --------------------------------------------------------------------------- the model


def test_prefix_tokens_see_later_prefix_tokens_and_targets_never_see_later_tokens(models):
    causal, prefix = models
    ids = [2, 40, 41, 42, 43, 50, 51, 52]
    later_prefix = list(ids)
    later_prefix[3] = 99  # the last of 4 prefix tokens
    later_target = list(ids)
    later_target[7] = 99  # the last target token
    p = lambda seq: np.asarray(prefix(_inputs(seq, prefix_len=4)))[0]  # noqa: E731
    c = lambda seq: np.asarray(causal(_inputs(seq)))[0]  # noqa: E731
    assert np.abs(p(later_prefix)[1] - p(ids)[1]).max() > 1e-3  # prefix token 1 sees prefix token 3
    np.testing.assert_allclose(c(later_prefix)[:3], c(ids)[:3], atol=1e-6)  # causally it does not
    np.testing.assert_allclose(p(later_target)[:7], p(ids)[:7], atol=1e-6)  # no token sees a later target
    # The targets attend causally: target 5 does not see target 6.
    later_second = list(ids)
    later_second[6] = 98
    np.testing.assert_allclose(p(later_second)[5], p(ids)[5], atol=1e-6)


def test_causal_mode_is_unchanged_and_an_empty_prefix_is_causal(models):
    causal, prefix = models
    assert list(causal.input) == ["token_ids", "segment_ids", "positions"]
    assert causal.backbone.get_config()["attention"] == "causal"
    ids = [2, 40, 41, 42, 43, 50, 51, 52]
    np.testing.assert_array_equal(np.asarray(causal(_inputs(ids))), np.asarray(prefix(_inputs(ids, prefix_len=0))))
    x = {"token_ids": np.full_like(SEG, 5), "segment_ids": SEG, "positions": np.zeros_like(SEG)}
    np.testing.assert_array_equal(np.asarray(_mask_of(causal)(x)), np.asarray(segment_causal_mask(SEG)))


# --------------------------------------------------------------------------- inference


def _full_forward_greedy(model, prompt: list[int], n: int, width: int = 32) -> list[int]:
    """Reference: the whole sequence each step (right-padded to one width, so the forward is
    traced once; padding is never a key), the prompt flagged as the prefix, argmax."""
    from flanctl.models.compiled import CompiledModelFunction

    forward = CompiledModelFunction(model, lambda x: model(x))
    ids, out = list(prompt), []
    for _ in range(n):
        x = _inputs(ids + [0] * (width - len(ids)), prefix_len=len(prompt))
        x["segment_ids"][0, len(ids):] = 0
        nxt = int(np.argmax(np.asarray(forward(x))[0, len(ids) - 1]))
        out.append(nxt)
        ids.append(nxt)
    return out


def test_cached_generation_equals_full_forward_with_the_prefix_mask(models):
    causal, prefix = models
    from flanctl.models.generation.decoder_only import DecoderOnlyEngine

    prompts = [[TOK.bos_id] + TOK.encode("Q: 2+2?\nA:"), [TOK.bos_id] + TOK.encode("hi")]  # left-padded together
    engine = DecoderOnlyEngine(prefix, TOK, batch_size=2)
    assert engine.prefix and not DecoderOnlyEngine(causal, TOK).prefix
    got = engine.generate_ids(prompts, 6, 0.0, 0, lambda row, ids: False)
    assert got == [_full_forward_greedy(prefix, p, 6) for p in prompts]


def test_scoring_runs_the_context_as_the_prefix(models):
    _, prefix = models
    from flanctl.models.generation.decoder_only import DecoderOnlyEngine

    engine = DecoderOnlyEngine(prefix, TOK, batch_size=4)
    ctx = [TOK.bos_id] + TOK.encode("The cat sat on the")
    options = [TOK.encode(" mat"), TOK.encode(" hat now")]
    grouped = engine.score_grouped([(ctx, options)], TOK.bos_id)[0]  # cached context, gathered per option
    full = engine.score([(ctx, o) for o in options], TOK.bos_id)  # one forward, prefix flags on the context
    np.testing.assert_allclose(grouped, full, atol=2e-3)
    option = options[1]  # by hand: the forward's log-softmax with the context flagged as the prefix
    logits = np.asarray(prefix(_inputs(ctx + option[:-1], prefix_len=len(ctx))))[0].astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    want = sum(logp[len(ctx) - 1 + i, t] for i, t in enumerate(option))
    assert full[1] == pytest.approx(float(want), abs=2e-3)


# --------------------------------------------------------------------------- spec and apply


def _spec_text(family: str = "palm", objective: str = "ul2", attention: str = "prefix", steps: int = 8) -> str:
    arch = ("{num_layers: 1, hidden_dim: 32, num_heads: 2, num_kv_heads: 1, head_dim: 16, ffn_dim: 64, vocab_size: 384, "
            "max_sequence_length: 128}")
    return (
        "apiVersion: flanctl/v1\nname: plm\n"
        f"model:\n  family: {family}\n  attention: {attention}\n  architecture: {arch}\n  tokenizer: {{kind: byte}}\n"
        "mixture:\n  collections:\n    - {name: corpus, proportion: 1, cap: 100, source: {kind: builtin, path: corpus}}\n"
        "  inputs_length: 96\n  targets_length: 32\n  seed: 3\n"
        f"train: {{objective: {objective}, batch_size: 4, steps: {steps}, precision: float32, optimizer: adamw, "
        "learning_rate: 0.003, dropout: 0.0, log_every: 1, checkpoint_every: 100}\n"
    )


def _load(tmp_path: Path, text: str):
    from flanctl.spec.loader import load_spec

    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return load_spec(p)


@pytest.mark.parametrize("family", ["t5", "preset"])
def test_validate_refuses_prefix_attention_outside_the_palm_families(tmp_path, family):
    text = _spec_text(family=family)
    if family == "preset":
        text = text.replace("  architecture:", "  preset: some/preset\n  architecture:")
    with pytest.raises((SpecError, SpecErrors)) as exc:
        _load(tmp_path, text)
    lines = [line for line in str(exc.value).splitlines() if "model.attention" in line]
    assert len(lines) == 1 and "palm" in lines[0] and "remove model.attention" in lines[0]
    at = int(lines[0].split("spec.yaml:")[1].split(":")[0])
    assert "attention" in (tmp_path / "spec.yaml").read_text().splitlines()[at - 1]


def test_plan_notes_say_how_ul2_attends(tmp_path):
    assert any("a prefix LM: the inputs attend" in n for n in _load(tmp_path, _spec_text()).notes)
    assert any("causal attention; model.attention: prefix" in n for n in _load(tmp_path, _spec_text(attention="causal")).notes)


def test_ul2_trains_a_prefix_lm_palm_through_apply(tmp_path):
    """UL2 with model.attention: prefix through the real apply path: finite, falling loss, and an
    export whose config records the prefix LM and whose engine runs it as one (~10 s on 2 cores)."""
    from flanctl.apply import apply_plan, default_stages
    from flanctl.models.preset_io import load_preset
    from flanctl.plan.make import make_plan

    plan = make_plan(_load(tmp_path, _spec_text(steps=12)), runs_root=tmp_path / "runs")
    apply_plan(plan, cwd=tmp_path, stages=default_stages(None))
    run = tmp_path / "runs" / "plm"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    config = json.loads((run / "export" / "config.json").read_text())
    assert config["config"]["attention"] == "prefix"
    model, _ = load_preset(run / "export")
    assert "prefix_mask" in model.input
    from flanctl.models.generation.decoder_only import DecoderOnlyEngine

    out = DecoderOnlyEngine(model, TOK).generate(["[S2S] The cat"], 4, stop=[])
    assert len(out) == 1 and isinstance(out[0][0], str)
    # Finetuning that export causally is allowed, and the plan says the mode changes.
    again = _spec_text(attention="causal").replace("  architecture:", f"  checkpoint: {run / 'export'}\n  architecture:")
    notes = make_plan(_load(tmp_path, again), runs_root=tmp_path / "runs").notes
    assert any("checkpoint attends as prefix" in n for n in notes)
