"""Training objectives (issue 16): causal LM, T5 span corruption and UL2 on raw text, their batches,
their cross-field checks, their plan numbers, and UL2R continued training of a palm checkpoint."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from flanctl.catalog.objectives import (
    DENOISERS,
    UL2,
    Denoiser,
    denoised_lengths,
    max_text_length,
    noise_counts,
)
from flanctl.data.objectives import (
    ObjectiveFeatures,
    ObjectiveLayout,
    corrupt_spans,
    denoise,
    noise_mask,
    random_segmentation,
)
from flanctl.data.stream import BatchUnpacker, DecoderFeatures, EncoderDecoderFeatures
from flanctl.data.tokenizers import ByteTokenizer
from flanctl.errors import SpecError, SpecErrors


def _spec_text(objective="causal_lm", family="palm", vocab=384, extra_model="", collections=None, lengths=(96, 32), steps=10):
    colls = collections or "    - {name: corpus, proportion: 1, cap: 200, source: {kind: builtin, path: corpus}}\n"
    arch = ("{num_layers: 1, hidden_dim: 32, num_heads: 2, num_kv_heads: 1, head_dim: 16, ffn_dim: 64, "
            f"vocab_size: {vocab}, max_sequence_length: 128}}") if family == "palm" else (
            f"{{num_layers: 1, hidden_dim: 32, num_heads: 2, num_kv_heads: 2, head_dim: 16, ffn_dim: 64, vocab_size: {vocab}}}")
    return (
        "apiVersion: flanctl/v1\nname: obj\n"
        f"model:\n  family: {family}\n  architecture: {arch}\n  tokenizer: {{kind: byte}}\n{extra_model}"
        f"mixture:\n  collections:\n{colls}  inputs_length: {lengths[0]}\n  targets_length: {lengths[1]}\n  seed: 3\n"
        f"train: {{objective: {objective}, batch_size: 4, steps: {steps}, precision: float32, optimizer: adamw, "
        "learning_rate: 0.003, dropout: 0.0, log_every: 1, checkpoint_every: 100}\n"
    )


def _load(tmp_path: Path, text: str, name: str = "spec.yaml"):
    from flanctl.spec.loader import load_spec

    p = tmp_path / name
    p.write_text(text)
    return load_spec(p)


# --------------------------------------------------------------------------- span corruption by hand


def test_corrupt_spans_matches_a_hand_made_example():
    tokens = np.arange(10, 20, dtype=np.int32)  # 10 .. 19
    mask = np.zeros(10, bool)
    mask[[2, 3, 7]] = True
    inputs, targets = corrupt_spans(tokens, mask, sentinel_top=100)
    # T5: each noise span -> one sentinel (99, 98, ... from the top) in the inputs; targets = sentinel + span
    assert inputs.tolist() == [10, 11, 99, 14, 15, 16, 98, 18, 19]
    assert targets.tolist() == [99, 12, 13, 98, 17]


def test_noise_mask_has_t5_counts_and_starts_with_kept_text():
    rng = np.random.default_rng(0)
    for n in (20, 57, 100, 568):
        mask = noise_mask(rng, n, 0.15, 3.0)
        noise, spans = noise_counts(n, 0.15, 3.0)
        assert int(mask.sum()) == noise == round(n * 0.15)
        starts = int(np.sum(mask[1:] & ~mask[:-1])) + int(mask[0])
        assert starts == spans and not mask[0]
    # T5's sizes: 568 raw tokens -> 512 inputs and 114 targets (eos included), its default 512-token task
    assert denoised_lengths(568, DENOISERS["span_corruption"][0]) == (511, 113)
    assert max_text_length(DENOISERS["span_corruption"][0], 511, 113) == 568


def test_random_segmentation_is_positive_and_sums():
    rng = np.random.default_rng(1)
    for items, segs in ((10, 1), (10, 3), (7, 7)):
        parts = random_segmentation(rng, items, segs)
        assert len(parts) == segs and parts.sum() == items and (parts > 0).all()


def test_prefix_lm_denoiser_splits_off_the_last_quarter():
    s = Denoiser("S", "[S2S]", 0.0, 0.25, 1.0, prefix_lm=True)
    tokens = np.arange(1, 9, dtype=np.int32)
    inputs, targets = denoise(tokens, s, np.random.default_rng(0), sentinel_top=100)
    assert inputs.tolist() == [1, 2, 3, 4, 5, 6] and targets.tolist() == [7, 8]


def test_ul2_mixture_is_the_papers_seven_denoisers_with_mode_tokens():
    spans = {(d.mean_span, d.density, d.mode) for d in UL2 if not d.prefix_lm}
    assert spans == {(3, 0.15, "[NLU]"), (8, 0.15, "[NLU]"), (3, 0.5, "[NLG]"), (8, 0.5, "[NLG]"), (64, 0.15, "[NLG]"), (64, 0.5, "[NLG]")}
    [s] = [d for d in UL2 if d.prefix_lm]
    assert s.mode == "[S2S]" and s.density == 0.25
    assert sum(d.weight for d in UL2) == pytest.approx(1.0)


# --------------------------------------------------------------------------- features and loss masks


def _unpack_one(feat: dict, length: int, eos: int = 1) -> dict:
    """One example padded to a row, as the packer would lay it out, then unpacked."""
    out = {}
    for k, v in feat.items():
        L = length
        pad = np.zeros(L, v.dtype)
        pad[: len(v)] = v
        seg = np.zeros(L, np.int32)
        seg[: len(v)] = 1
        out[k], out[f"{k}_segment_ids"], out[f"{k}_positions"] = pad[None], seg[None], np.where(seg > 0, np.arange(L), 0)[None]
    return {k: v[0] for k, v in BatchUnpacker("encoder_token_ids" in feat, eos, 0)(out).items()}


def test_causal_lm_loss_on_every_token_and_eos_only_at_document_end():
    tok = ByteTokenizer()
    layout = ObjectiveLayout("causal_lm", 8, 259, {})
    f = ObjectiveFeatures(layout, DecoderFeatures(tok.bos_id, tok.eos_id), 0, tok.bos_id)
    ex = {"inputs": np.asarray([10, 11, 12], np.int32), "targets": np.zeros(0, np.int32), "task": 0, "draw": 0}
    b = _unpack_one(f({**ex, "end": True}), 6)
    assert b["token_ids"].tolist() == [2, 10, 11, 12, 0, 0]
    assert b["targets"].tolist() == [10, 11, 12, 1, 0, 0]
    assert b["loss_mask"].tolist() == [1, 1, 1, 1, 0, 0]
    cut = _unpack_one(f({**ex, "end": False}), 6)  # a piece cut from a longer document: no eos to learn
    assert cut["loss_mask"].tolist() == [1, 1, 1, 0, 0, 0]


def test_span_corruption_decoder_only_row_is_prefix_lm_with_loss_on_targets():
    tok = ByteTokenizer()
    layout = ObjectiveLayout("span_corruption", 40, 384, {})
    f = ObjectiveFeatures(layout, DecoderFeatures(tok.bos_id, tok.eos_id), 5, tok.bos_id)
    text = np.arange(100, 140, dtype=np.int32)
    ex = {"inputs": text, "targets": np.zeros(0, np.int32), "task": 0, "draw": 7, "end": True}
    inputs, targets, name = f.pair(ex)
    assert name == "span(3,0.15)" and f.pair(ex)[1].tolist() == targets.tolist()  # seeded: the same draw, the same noise
    b = _unpack_one(f(ex), 64)
    n_in, n_tg = 1 + len(inputs), len(targets)
    assert b["token_ids"][: n_in + n_tg].tolist() == [tok.bos_id] + inputs.tolist() + targets.tolist()
    # loss where the next token is a target (and the eos after the last one)
    assert b["loss_mask"].tolist() == [0] * (n_in - 1) + [1] * (n_tg + 1) + [0] * (64 - n_in - n_tg)
    assert b["targets"][n_in - 1: n_in + n_tg].tolist() == targets.tolist() + [tok.eos_id]
    # the targets rebuild the text with the inputs: fill each sentinel with its span
    spans, cur = {}, None
    for t in targets.tolist():
        if t >= 259:
            cur = t
            spans[cur] = []
        else:
            spans[cur].append(t)
    rebuilt = [x for t in inputs.tolist() for x in (spans[t] if t >= 259 else [t])]
    assert rebuilt == text.tolist()


def test_span_corruption_encoder_decoder_inputs_and_targets():
    tok = ByteTokenizer()
    layout = ObjectiveLayout("span_corruption", 40, 384, {})
    f = ObjectiveFeatures(layout, EncoderDecoderFeatures(tok.eos_id), 5, None)
    ex = {"inputs": np.arange(100, 140, dtype=np.int32), "targets": np.zeros(0, np.int32), "task": 0, "draw": 7, "end": True}
    inputs, targets, _ = f.pair(ex)
    feat = f(ex)
    assert feat["encoder_token_ids"].tolist() == inputs.tolist() + [tok.eos_id]
    assert feat["targets"].tolist() == targets.tolist() + [tok.eos_id]
    assert targets[0] == 383  # the first span's sentinel is the top id of the model's vocabulary


def test_ul2_examples_start_with_their_mode_token():
    tok = ByteTokenizer()
    modes = {m: np.asarray(tok.encode(m), np.int32) for m in ("[NLU]", "[NLG]", "[S2S]")}
    f = ObjectiveFeatures(ObjectiveLayout("ul2", 120, 384, modes), DecoderFeatures(tok.bos_id, tok.eos_id), 0, tok.bos_id)
    seen = set()
    for draw in range(60):
        ex = {"inputs": np.arange(100, 220, dtype=np.int32), "targets": np.zeros(0, np.int32), "task": 0, "draw": draw}
        inputs, targets, name = f.pair(ex)
        mode = {"R": "[NLU]", "X": "[NLG]", "S": "[S2S]"}[name[0]]
        assert inputs[:5].tolist() == modes[mode].tolist()
        if name[0] == "S":
            assert (targets < 259).all() and targets.tolist() == list(range(190, 220))
        else:
            assert targets[0] == 383
        seen.add(name[0])
    assert seen == {"R", "X", "S"}


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("objective", ["causal_lm", "span_corruption", "ul2"])
def test_stream_packs_each_objective_with_todays_keys(tmp_path, objective):
    from flanctl.data import build_train_stream

    loaded = _load(tmp_path, _spec_text(objective))
    tok = ByteTokenizer()
    stream = build_train_stream(loaded.spec, tmp_path, tok)
    b = next(stream)
    assert set(b) == {"token_ids", "segment_ids", "positions", "targets", "loss_mask"}
    assert b["token_ids"].shape == (4, 128)
    seg = b["segment_ids"]
    if objective == "causal_lm":  # packed: long documents are cut to fill rows, short ones share a row
        assert (seg > 0).mean() > 0.8 and ((seg.max(axis=1) >= 2) | (seg > 0).all(axis=1)).sum() >= 2
    assert ((b["loss_mask"] > 0) <= (seg > 0)).all()
    if objective == "causal_lm":
        assert b["loss_mask"].sum() == pytest.approx((seg > 0).sum(), rel=0.05)
    else:
        assert 0 < b["loss_mask"].sum() < (seg > 0).sum()
    state = stream.get_state()
    nxt = next(stream)
    again = build_train_stream(loaded.spec, tmp_path, tok)
    again.set_state(state)
    assert np.array_equal(next(again)["token_ids"], nxt["token_ids"])  # exact resume


def test_stream_encoder_decoder_span_corruption(tmp_path):
    from flanctl.data import build_train_stream

    loaded = _load(tmp_path, _spec_text("span_corruption", family="t5", lengths=(64, 24)))
    b = next(build_train_stream(loaded.spec, tmp_path, ByteTokenizer()))
    assert b["encoder_token_ids"].shape == (4, 64) and b["targets"].shape == (4, 24)
    first = b["targets"][0][b["decoder_segment_ids"][0] == 1]
    assert first[0] == 383 and first[-1] == 1  # a sentinel opens the targets, eos closes them
    assert (b["encoder_token_ids"] >= 259).any()


# --------------------------------------------------------------------------- spec checks


def _errors(tmp_path, text):
    with pytest.raises((SpecError, SpecErrors)) as exc:
        _load(tmp_path, text)
    return str(exc.value)


def test_causal_lm_on_t5_is_an_error_at_the_objective(tmp_path):
    msg = _errors(tmp_path, _spec_text("causal_lm", family="t5"))
    assert "spec.yaml:" in msg and "causal_lm trains a decoder-only model" in msg
    line = msg.split("spec.yaml:")[1].split(":")[0]
    assert "objective" in (tmp_path / "spec.yaml").read_text().splitlines()[int(line) - 1]


def test_corpus_needs_a_pretraining_objective_and_tasks_need_instruction(tmp_path):
    assert "raw text for the pretraining objectives" in _errors(tmp_path, _spec_text("instruction"))
    builtin = "    - {name: builtin, proportion: 1}\n"
    assert "has no text source" in _errors(tmp_path, _spec_text("causal_lm", collections=builtin))
    tasks = "    - {name: mine, proportion: 1, source: {kind: builtin, path: word_sorting}}\n"
    assert "is a task of (inputs, targets) pairs" in _errors(tmp_path, _spec_text("causal_lm", collections=tasks))


def test_sentinels_need_room_above_the_tokenizer(tmp_path):
    msg = _errors(tmp_path, _spec_text("span_corruption", vocab=259))
    assert "sentinel ids" in msg and "vocab_size to at least" in msg


def test_span_corruption_on_palm_says_what_it_does(tmp_path):
    loaded = _load(tmp_path, _spec_text("span_corruption"))
    assert any("prefix-LM form" in n for n in loaded.notes)


# --------------------------------------------------------------------------- plan


def test_plan_computes_tokens_and_flops_per_objective(tmp_path):
    from flanctl.plan.make import make_plan

    out = {}
    for objective in ("causal_lm", "span_corruption", "ul2"):
        plan = make_plan(_load(tmp_path, _spec_text(objective), f"{objective}.yaml"), runs_root=tmp_path / "runs")
        c = plan.compute
        out[objective] = c
        assert c["objective"]["name"] == objective and c["flops_method"].startswith(f"objective {objective}:")
        assert c["finetune_flops"] == 6 * plan.model.params * 4 * 128 * 10
    assert out["causal_lm"]["objective"]["loss_tokens_per_step"] == 4 * 128
    sc = out["span_corruption"]["objective"]
    assert sc["loss_tokens_per_step"] < 0.3 * 4 * 128 < sc["text_tokens_per_step"]
    assert len(out["ul2"]["objective"]["denoisers"]) == 7
    t5 = make_plan(_load(tmp_path, _spec_text("span_corruption", family="t5", lengths=(512, 114)), "t5.yaml"), runs_root=tmp_path / "runs")
    o = t5.compute["objective"]
    assert o["text_tokens_per_example"] == 568 and o["denoisers"][0]["targets_tokens"] == 113  # T5's 568 -> 512/114
    assert json.dumps(t5.document())  # the plan stays JSON


# --------------------------------------------------------------------------- UL2R on a palm checkpoint


def _apply(tmp_path: Path, text: str, name: str):
    from flanctl.apply import apply_plan, default_stages
    from flanctl.plan.make import make_plan

    plan = make_plan(_load(tmp_path, text, f"{name}.yaml"), runs_root=tmp_path / "runs")
    apply_plan(plan, cwd=tmp_path, stages=default_stages(None))
    run = tmp_path / "runs" / name
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return run, [r["loss"] for r in rows if "loss" in r]


def test_ul2_continues_training_a_causal_lm_palm_checkpoint(tmp_path):
    """U-PaLM at toy scale: a palm model pretrained with causal_lm, continued with UL2 (~20 s on 2 cores)."""
    base, losses = _apply(tmp_path, _spec_text("causal_lm", steps=20).replace("name: obj", "name: base"), "base")
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    ckpt = textwrap.indent(f"checkpoint: {base / 'export'}\n", "  ")
    text = _spec_text("ul2", steps=20, extra_model=ckpt).replace("name: obj", "name: upalm")
    _, ul2 = _apply(tmp_path, text, "upalm")
    assert np.isfinite(ul2).all()
    assert ul2[0] < losses[0] - 0.5  # it starts from the pretrained weights, not from scratch
    assert np.mean(ul2[-5:]) < np.mean(ul2[:5])


# --------------------------------------------------------------------------- raw-text sources


def test_local_text_source_with_a_mapped_column(tmp_path):
    from flanctl.data import build_train_stream
    from flanctl.data.mixture import realize
    from flanctl.errors import FlanctlError

    rows = [{"body": f"Document {i} says that the lamp of room {i} is {'on' if i % 2 else 'off'}.", "id": i} for i in range(30)]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    src = "    - {name: web, proportion: 1, source: {kind: local, path: docs.jsonl, columns: {text: body}}}\n"
    loaded = _load(tmp_path, _spec_text("causal_lm", collections=src))
    [task] = realize(loaded.spec, tmp_path).tasks
    assert task.text and task.available == 30 and task.load()[3].inputs == rows[3]["body"]
    b = next(build_train_stream(loaded.spec, tmp_path, ByteTokenizer()))
    assert b["segment_ids"].max() >= 2  # short documents are packed several to a row
    bad = src.replace("text: body", "text: missing")
    with pytest.raises(FlanctlError, match="no column 'missing' for text"):
        realize(_load(tmp_path, _spec_text("causal_lm", collections=bad), "bad.yaml").spec, tmp_path)


def test_data_preview_and_stats_show_what_the_objective_makes(tmp_path):
    from flanctl.data import preview_examples
    from flanctl.data.stats import data_stats

    loaded = _load(tmp_path, _spec_text("ul2"))
    rows = preview_examples(loaded.spec, tmp_path, n=12, tokenizer=ByteTokenizer())
    assert {r["format"][0] for r in rows} <= {"R", "X", "S"}
    assert any("<extra_id_0>" in r["inputs"] and r["targets"].startswith("<extra_id_0>") for r in rows)
    assert all(r["inputs"].startswith(("[NLU]", "[NLG]", "[S2S]")) for r in rows)
    stats = data_stats(loaded.spec, tmp_path, tokenizer=ByteTokenizer(), sample_rows=8)
    assert stats["tasks"][0]["task"] == "corpus" and stats["examples_per_sequence"] >= 1


def test_streamed_hub_text_source_reads_only_up_to_the_cap(tmp_path, monkeypatch):
    import datasets

    from flanctl.data.mixture import realize

    read = []

    def rows():
        for i in range(10_000):
            read.append(i)
            yield {"content": f"Streamed document {i}.", "id": i}

    def fake_load_dataset(path, config=None, split=None, revision=None, streaming=False):
        assert streaming and path == "someone/web-text"
        return rows()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    src = ("    - {name: web, proportion: 1, cap: 25, source: {kind: hf, path: someone/web-text, streaming: true, "
           "columns: {text: content}}}\n")
    loaded = _load(tmp_path, _spec_text("causal_lm", collections=src))
    [task] = realize(loaded.spec, tmp_path).tasks
    assert task.size == 25 and len(read) == 25 and task.load()[-1].inputs == "Streamed document 24."
