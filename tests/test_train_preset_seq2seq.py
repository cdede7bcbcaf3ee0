"""family 'preset' with a keras-hub Seq2SeqLM: a tiny T5 preset the test saves itself (no network).

- the data stream gives encoder-decoder rows, one example per row (packing off), for a preset
  folder whose name says nothing (its task.json says Seq2SeqLM);
- `flanctl apply` finetunes it, the loss goes down, and the export is the plain keras-hub
  T5Seq2SeqLM: reloaded with `keras_hub.models.Seq2SeqLM.from_preset`, it gives the logits of
  the run's last checkpoint (atol 1e-5) and its weights differ from the original's.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import keras_hub
import numpy as np
import pytest

from flanctl.errors import FlanctlError

SPEC = """\
name: t5ft
model:
  family: preset
  preset: tiny_seq2seq
  tokenizer: {{kind: preset, path: tiny_seq2seq}}
mixture:
  collections:
    - {{name: builtin, proportion: 1.0, cap: 200, tasks: [parity, comparisons]}}
  inputs_length: 64
  targets_length: 16
train:
  steps: {steps}
  batch_size: 4
  learning_rate: 0.01
  checkpoint_every: 4
  log_every: 1
  precision: float32
  dropout: 0.0
"""

CORPUS = [
    "Is 14 even or odd? Answer: even", "Which is larger, 31 or 13? Answer: 31", "OPTIONS: - yes - no",
    "Q: Is the number 7 odd? A: yes. The number 7 is odd because 7 = 2 * 3 + 1.",
    "Which number is bigger: 250 or 205? The answer is 250.", "even odd larger smaller number answer",
]


def tiny_t5_preset(directory: Path) -> None:
    """A 2+2-layer T5 v1.1 with a SentencePiece vocabulary trained here (byte fallback: every
    text tokenizes; ids 0 pad, 1 </s>)."""
    from flanctl.data.tokenizers import train_sentencepiece

    spm = train_sentencepiece(CORPUS * 20, directory.parent / "spm" / "t5.model", 320)
    tokenizer = keras_hub.models.T5Tokenizer(proto=spm.read_bytes())
    pre = keras_hub.models.T5Seq2SeqLMPreprocessor(tokenizer=tokenizer, encoder_sequence_length=64, decoder_sequence_length=16)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
        key_value_dim=16, dropout=0.0, activation="gelu", use_gated_activation=True, tie_embedding_weights=False,
    )
    keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=pre).save_to_preset(str(directory))


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seq2seq")
    tiny_t5_preset(root / "tiny_seq2seq")
    return root


def test_stream_gives_unpacked_encoder_decoder_rows_for_a_seq2seq_preset(preset_dir):
    from flanctl.data import build_train_stream, tokenizer_for_spec
    from flanctl.plan import make_plan
    from flanctl.plan.make import model_kind
    from flanctl.spec import load_spec

    (preset_dir / "ft.yaml").write_text(SPEC.format(steps=2))
    loaded = load_spec(preset_dir / "ft.yaml")
    spec = loaded.spec
    assert spec.mixture.packing  # asked for, but a preset cannot keep packed examples apart
    assert model_kind(spec, preset_dir) == (True, False)  # encoder-decoder, not packed
    assert model_kind(spec.model_copy(update={"model": spec.model.model_copy(update={"preset": "gpt2"})}), preset_dir) == (False, False)
    plan = make_plan(loaded, runs_root=preset_dir / "runs")
    assert plan.mixture["packing"] is False and plan.model.encoder_decoder and not plan.model.packed
    assert any("mixture.packing: off for model.family preset" in n for n in plan.notes)

    tokenizer = tokenizer_for_spec(spec, preset_dir)
    batch = next(build_train_stream(spec, preset_dir, tokenizer, model=plan.model))
    assert set(batch) == {"encoder_token_ids", "encoder_segment_ids", "encoder_positions", "decoder_token_ids",
                          "decoder_segment_ids", "decoder_positions", "targets", "loss_mask"}
    assert batch["encoder_token_ids"].shape == (4, 64) and batch["targets"].shape == (4, 16)
    for key in ("encoder_segment_ids", "decoder_segment_ids"):
        assert set(np.unique(batch[key])) <= {0, 1}  # one example per row
        assert (batch[key][:, 0] == 1).all()
    assert (batch["decoder_token_ids"][:, 0] == tokenizer.pad_id).all()  # T5's decoder start
    np.testing.assert_array_equal(batch["decoder_token_ids"][:, 1:][batch["decoder_segment_ids"][:, 1:] > 0],
                                  batch["targets"][:, :-1][batch["decoder_segment_ids"][:, 1:] > 0])
    ends = batch["decoder_segment_ids"].sum(1) - 1
    assert (batch["targets"][np.arange(4), ends] == tokenizer.eos_id).all()


def test_seq2seq_adapter_maps_the_batch_to_keras_hub_inputs(preset_dir):
    from flanctl.models import load_model
    from flanctl.models.preset_adapter import PresetCausalLMAdapter, PresetSeq2SeqLMAdapter, trainable_preset

    task, tokenizer = load_model(str(preset_dir / "tiny_seq2seq"))
    adapter = trainable_preset(task)
    assert isinstance(adapter, PresetSeq2SeqLMAdapter) and adapter.trainable_weights
    rng = np.random.default_rng(0)
    enc, dec = rng.integers(3, 300, (2, 10)).astype("int32"), rng.integers(3, 300, (2, 6)).astype("int32")
    eseg, dseg = np.ones_like(enc), np.ones_like(dec)
    eseg[1, 7:] = dseg[1, 4:] = 0
    batch = {"encoder_token_ids": enc, "encoder_segment_ids": eseg, "encoder_positions": np.zeros_like(enc),
             "decoder_token_ids": dec, "decoder_segment_ids": dseg, "decoder_positions": np.zeros_like(dec)}
    direct = task({"encoder_token_ids": enc, "encoder_padding_mask": eseg, "decoder_token_ids": dec, "decoder_padding_mask": dseg})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(adapter(batch)), keras.ops.convert_to_numpy(direct), atol=1e-6)
    # A CausalLM must not be taken for a Seq2SeqLM (keras-hub's Seq2SeqLM subclasses CausalLM).
    with pytest.raises(FlanctlError, match="Seq2SeqLM whose inputs"):
        PresetSeq2SeqLMAdapter(keras_hub.models.GPT2CausalLM(keras_hub.models.GPT2Backbone(
            vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=8, intermediate_dim=8, max_sequence_length=8)))
    assert type(trainable_preset(keras_hub.models.GPT2CausalLM(keras_hub.models.GPT2Backbone(
        vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=8, intermediate_dim=8, max_sequence_length=8)))) is PresetCausalLMAdapter


@pytest.mark.slow
def test_apply_finetunes_a_seq2seq_preset_and_exports_a_plain_keras_hub_preset(preset_dir, apply_spec):
    (preset_dir / "ft.yaml").write_text(SPEC.format(steps=12))
    run, losses = apply_spec(preset_dir, "ft.yaml", "t5ft")
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.5, losses

    # The export is the keras-hub task itself: plain keras-hub reloads it, with the trained weights.
    exported = keras_hub.models.Seq2SeqLM.from_preset(str(run / "export"))
    original = keras_hub.models.Seq2SeqLM.from_preset(str(preset_dir / "tiny_seq2seq"))
    assert isinstance(exported, keras_hub.models.T5Seq2SeqLM)
    assert any(not np.allclose(a, b) for a, b in zip(exported.get_weights(), original.get_weights()))

    # Same logits as the run's last checkpoint loaded into the training adapter.
    from flanctl.models.preset_adapter import trainable_preset

    adapter = trainable_preset(original)
    saved = np.load(run / "checkpoints" / "step_12" / "variables.npz")
    for i, v in enumerate(adapter.variables):
        v.assign(saved[f"m{i:05d}"])
    rng = np.random.default_rng(1)
    enc, dec = rng.integers(3, 300, (2, 12)).astype("int32"), rng.integers(3, 300, (2, 5)).astype("int32")
    seg_e, seg_d = np.ones_like(enc), np.ones_like(dec)
    seg_e[0, 9:] = seg_d[0, 3:] = 0
    ours = adapter({"encoder_token_ids": enc, "encoder_segment_ids": seg_e, "decoder_token_ids": dec, "decoder_segment_ids": seg_d})
    theirs = exported({"encoder_token_ids": enc, "encoder_padding_mask": seg_e, "decoder_token_ids": dec, "decoder_padding_mask": seg_d})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs), keras.ops.convert_to_numpy(ours), atol=1e-5)
    # The exported tokenizer comes along (keras-hub's own, loadable without flanctl).
    tok = keras_hub.tokenizers.Tokenizer.from_preset(str(run / "export"))
    assert tok.vocabulary_size() == original.backbone.vocabulary_size


def test_preset_kind_from_json_files_or_hub_name(tmp_path):
    from flanctl.plan.make import model_kind
    from flanctl.plan.presets import read_preset
    from flanctl.spec.models import Spec

    def preset_is_encoder_decoder(handle, base=None):
        return read_preset(handle, base or tmp_path).encoder_decoder

    def packs(spec):
        return model_kind(spec, tmp_path)[1]

    (tmp_path / "causal").mkdir()
    (tmp_path / "causal" / "task.json").write_text(json.dumps({"class_name": "GPT2CausalLM"}))
    (tmp_path / "causal" / "config.json").write_text(json.dumps({"class_name": "GPT2Backbone"}))
    (tmp_path / "backbone_only").mkdir()
    (tmp_path / "backbone_only" / "config.json").write_text(json.dumps({"class_name": "BartBackbone"}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "task.json").write_text("{not json")
    assert not preset_is_encoder_decoder("causal", tmp_path)
    assert preset_is_encoder_decoder(str(tmp_path / "backbone_only"))  # absolute path, no task.json
    assert not preset_is_encoder_decoder("broken", tmp_path)
    assert read_preset("causal", tmp_path).architecture is None  # no backbone numbers: the plan says so
    assert any("not a local folder" in n for n in read_preset("gemma_2b_en", tmp_path).notes)
    # Hub handles that are not on disk: by name, as keras-hub names its presets.
    assert preset_is_encoder_decoder("t5_base_multi", tmp_path) and preset_is_encoder_decoder("bart_base_en", tmp_path)
    assert not preset_is_encoder_decoder("gemma_2b_en", tmp_path) and not preset_is_encoder_decoder(None)
    base = {"apiVersion": "flanctl/v1", "name": "x", "mixture": {"collections": [{"name": "builtin", "proportion": 1.0}]}}
    assert not packs(Spec.model_validate({**base, "model": {"family": "preset", "preset": "gpt2"}}))
    assert packs(Spec.model_validate({**base, "model": {"family": "palm", "size": "tiny"}}))
