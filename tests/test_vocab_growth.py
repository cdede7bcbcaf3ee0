"""A palm checkpoint's vocabulary grows on load (`model.architecture.vocab_size` above the
checkpoint's): the old ids keep their rows and logits, the new rows are typical and distinct,
the plan notes it and refuses shrinking, and UL2R (U-PaLM) continues a base pretrained without
sentinel room through apply, as `examples/upalm.yaml` does with the shipped base."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import keras

from flanctl.catalog.models import SIZES
from flanctl.errors import FlanctlError, SpecError
from flanctl.models import build_model, get_family
from flanctl.models.palm import with_attention, with_vocabulary
from flanctl.models.palm.causal_lm import grow_rows

TINY = dict(SIZES["palm"]["tiny"], vocab_size=259)


@pytest.fixture(scope="module")
def base():
    keras.utils.set_random_seed(5)
    return build_model(TINY, "palm")


def _x(ids):
    ids = np.asarray([ids], np.int32)
    return {"token_ids": ids, "segment_ids": np.ones_like(ids), "positions": np.arange(ids.shape[1], dtype=np.int32)[None]}


def _table(model) -> np.ndarray:
    return keras.ops.convert_to_numpy(model.backbone.token_embedding.embeddings)


def test_old_ids_keep_their_rows_and_logits(base):
    grown = with_vocabulary(base, 299, seed=1)
    assert grown.backbone.vocabulary_size == 299 and _table(grown).shape == (299, TINY["hidden_dim"])
    np.testing.assert_array_equal(_table(grown)[:259], _table(base))
    ids = [1, 72, 101, 108, 108, 111, 33]
    old, new = np.asarray(base(_x(ids))), np.asarray(grown(_x(ids)))
    assert new.shape[-1] == 299
    np.testing.assert_allclose(new[..., :259], old, rtol=1e-5, atol=1e-5)
    # Every other weight is the same array.
    for a, b in zip(base.weights, grown.weights, strict=True):
        if tuple(a.shape) == tuple(b.shape):
            np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))
    # A new id reads as an input and gets a finite, non-dominant logit.
    out = np.asarray(grown(_x(ids[:3] + [290, 291])))
    assert np.isfinite(out).all()
    assert (out[0, :, 259:].max(axis=-1) < out[0, :, :259].max(axis=-1)).mean() >= 0.5


def test_new_rows_are_typical_distinct_and_seeded(base):
    old = _table(base)
    a = grow_rows(old, 400, seed=1)[259:]
    np.testing.assert_allclose(a.mean(axis=0), old.mean(axis=0), atol=4 * old.std(axis=0).max() / np.sqrt(141))
    np.testing.assert_allclose(a.std(axis=0).mean(), old.std(axis=0).mean(), rtol=0.15)
    assert np.linalg.matrix_rank(a) == min(a.shape)  # no two rows alike
    np.testing.assert_array_equal(grow_rows(old, 400, seed=1), grow_rows(old, 400, seed=1))
    assert not np.array_equal(grow_rows(old, 400, seed=1), grow_rows(old, 400, seed=2))


def test_same_size_is_the_model_itself_and_shrinking_is_refused(base):
    assert with_vocabulary(base, 259) is base
    with pytest.raises(FlanctlError, match="can grow on load, not shrink"):
        with_vocabulary(base, 200)


def test_growth_keeps_the_attention_mode_and_the_family_applies_both(base):
    prefix = get_family("palm", False).as_planned(base, "prefix", 300, seed=0)
    assert prefix.backbone.attention == "prefix" and prefix.backbone.vocabulary_size == 300
    assert with_attention(with_vocabulary(base, 300), "prefix").backbone.vocabulary_size == 300


def test_families_without_growth_refuse_another_size():
    t5 = get_family("t5", True)
    keras.utils.set_random_seed(0)
    model = t5.build(dict(SIZES["t5"]["tiny"], vocab_size=259))
    assert t5.with_vocabulary(model, 259) is model and t5.with_vocabulary(model, None) is model
    with pytest.raises(FlanctlError, match="built for the palm families"):
        t5.with_vocabulary(model, 300)


# --------------------------------------------------------------------------- plan and apply

ARCH = ("{num_layers: 1, hidden_dim: 32, num_heads: 2, num_kv_heads: 1, head_dim: 16, ffn_dim: 64, vocab_size: 259, "
        "max_sequence_length: 128}")


def _spec(model: str, objective: str, steps: int, name: str) -> str:
    return (
        f"apiVersion: flanctl/v1\nname: {name}\nmodel:\n{model}"
        "mixture:\n  collections:\n    - {name: corpus, proportion: 1, cap: 100, source: {kind: builtin, path: corpus}}\n"
        "  inputs_length: 96\n  targets_length: 32\n  seed: 3\n"
        f"train: {{objective: {objective}, batch_size: 4, steps: {steps}, precision: float32, optimizer: adamw, "
        "learning_rate: 0.003, dropout: 0.0, log_every: 1, checkpoint_every: 100}\n"
    )


def _plan(tmp_path: Path, text: str, name: str):
    from flanctl.plan.make import make_plan
    from flanctl.spec.loader import load_spec

    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return make_plan(load_spec(p), runs_root=tmp_path / "runs")


@pytest.fixture(scope="module")
def byte_base(tmp_path_factory) -> Path:
    """A palm base pretrained (causal LM, 3 steps) with vocab 259 = the byte tokenizer's: no sentinel room."""
    from flanctl.apply import apply_plan, default_stages

    tmp = tmp_path_factory.mktemp("base")
    plan = _plan(tmp, _spec(f"  family: palm\n  architecture: {ARCH}\n  tokenizer: {{kind: byte}}\n", "causal_lm", 3, "b"), "b")
    apply_plan(plan, cwd=tmp, stages=default_stages(None))
    return tmp / "runs" / "b" / "export"


def _upalm(base: Path, vocab: int | None, family: str = "u-palm") -> str:
    grow = f"  architecture: {{vocab_size: {vocab}}}\n" if vocab else ""
    return f"  family: {family}\n  checkpoint: {base}\n  attention: prefix\n{grow}  tokenizer: {{kind: byte}}\n"


def test_plan_refuses_ul2_without_room_and_says_to_grow(tmp_path, byte_base):
    with pytest.raises(FlanctlError, match=r"vocab_size to at least 2\d\d"):
        _plan(tmp_path, _spec(_upalm(byte_base, None), "ul2", 4, "u"), "u")


def test_plan_notes_growth_and_refuses_shrinking(tmp_path, byte_base):
    plan = _plan(tmp_path, _spec(_upalm(byte_base, 299), "ul2", 4, "u"), "u")
    assert plan.model.architecture["vocab_size"] == 299
    assert any("grows from 259 to 299 rows" in n for n in plan.notes)
    assert any("a palm model" in n and "continued as u-palm" in n for n in plan.notes)
    small = _plan(tmp_path, _spec(f"  family: palm\n  architecture: {ARCH}\n  tokenizer: {{kind: byte}}\n", "causal_lm", 1, "s"), "s")
    assert plan.model.params - small.model.params == 40 * 32  # 40 new rows of width 32
    # The data room without a plan (data preview / stats) sees the grown vocabulary too.
    from flanctl.data.stream import objective_layout_for
    from flanctl.data.tokenizers import ByteTokenizer

    assert objective_layout_for(plan.spec, ByteTokenizer(), tmp_path).sentinel_top == 299
    with pytest.raises(SpecError, match="never shrink"):
        _plan(tmp_path, _spec(_upalm(byte_base, 200), "causal_lm", 4, "u"), "u")


def test_ul2r_continues_a_base_without_sentinel_room_through_apply(tmp_path, byte_base):
    """U-PaLM at test scale: the causal base continues on UL2 as a prefix LM with 40 new ids;
    the export has the grown vocabulary, its first 259 rows started from the base's."""
    from flanctl.apply import apply_plan, default_stages
    from flanctl.models.preset_io import load_preset

    plan = _plan(tmp_path, _spec(_upalm(byte_base, 299), "ul2", 8, "u"), "u")
    apply_plan(plan, cwd=tmp_path, stages=default_stages(None))
    run = tmp_path / "runs" / "u"
    losses = [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert len(losses) == 8 and np.isfinite(losses).all()
    config = json.loads((run / "export" / "config.json").read_text())["config"]
    assert config["vocabulary_size"] == 299 and config["attention"] == "prefix"
    assert json.loads((run / "export" / "flanctl.json").read_text())["family"] == "u-palm"
    before, _ = load_preset(byte_base)
    after, _ = load_preset(run / "export")
    moved = np.abs(_table(after)[:259] - _table(before)).mean()
    assert 0 < moved < np.abs(_table(before)).mean()  # trained from the base's rows, not from scratch
    # The grown export finetunes as it is: no vocab_size needed, no growth note.
    again = _plan(tmp_path, _spec(_upalm(run / "export", None), "ul2", 1, "f"), "f")
    assert again.model.architecture["vocab_size"] == 299 and not any("grows from" in n for n in again.notes)


def test_an_export_records_its_tokenizers_pieces_apart_from_the_grown_vocabulary(tmp_path, base):
    """A grown model's export says how many pieces its SentencePiece model has, so a later spec
    that takes the export's tokenizer knows the sentinel room (1,064 rows, 1,024 pieces)."""
    from types import SimpleNamespace

    from flanctl.models.preset_io import export_preset
    from flanctl.plan.presets import read_flanctl_export, spec_tokenizer
    from flanctl.spec.models import ModelSpec

    spm = tmp_path / "t.model"
    spm.write_bytes(b"not read here")
    export_preset(with_vocabulary(base, 299), tmp_path / "export", "u-palm", SimpleNamespace(path=spm, vocab_size=259))
    marker = json.loads((tmp_path / "export" / "flanctl.json").read_text())
    assert marker["tokenizer"] == {"kind": "sentencepiece", "file": "assets/tokenizer/spm.model", "vocab_size": 259}
    export = read_flanctl_export(str(tmp_path / "export"), tmp_path)
    assert export.architecture["vocab_size"] == 299 and export.tokenizer_vocab == 259
    tok = spec_tokenizer(ModelSpec(family="u-palm", checkpoint=str(tmp_path / "export")), tmp_path)
    assert tok.kind == "sentencepiece" and tok.vocab_size == 259
