"""Tokenizers: byte-level ids, SentencePiece trained locally, keras-hub preset directories."""

from __future__ import annotations

import pytest

from flanctl.data.builtin_tasks import generate
from flanctl.data.tokenizers import ByteTokenizer, get_tokenizer
from flanctl.errors import FlanctlError
from flanctl.spec.models import Tokenizer


def test_byte_tokenizer_ids_and_round_trip():
    tok = get_tokenizer(Tokenizer(kind="byte"), ".")
    assert isinstance(tok, ByteTokenizer)
    assert (tok.vocab_size, tok.pad_id, tok.eos_id, tok.bos_id) == (259, 0, 1, 2)
    assert tok.encode("A") == [ord("A") + 3]
    text = "héllo → 日本"
    ids = tok.encode(text)
    assert len(ids) == len(text.encode()) == tok.count(text)
    assert min(ids) >= 3 and max(ids) < 259
    assert tok.decode(ids + [tok.eos_id, tok.pad_id]) == text


def test_sentencepiece_is_trained_from_mixture_text_when_missing(tmp_path):
    texts = [e.inputs + " " + e.targets for t in ("spelling", "parity", "word_sorting") for e in generate(t, "train", 300, 0)]
    spec = Tokenizer(kind="sentencepiece", path="tok/spm.model", vocab_size=400)
    tok = get_tokenizer(spec, tmp_path, mixture_texts=texts)
    assert (tmp_path / "tok" / "spm.model").exists()
    assert not list((tmp_path / "tok").glob(".*tmp*"))  # written under a temporary name, then renamed
    assert (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    ids = tok.encode("Is 4097 even or odd?")
    assert tok.decode(ids) == "Is 4097 even or odd?"
    # Newlines and repeated spaces survive: templates and eval stop sequences rely on "\n".
    layout = "Is 12 even?\n\nOPTIONS:\n- even\n-  odd\n"
    assert tok.decode(tok.encode(layout)) == layout
    # Ids above the pieces (sentinels of a grown vocabulary, as a U-PaLM model may generate) are dropped.
    assert tok.decode(ids[:2] + [tok.vocab_size, tok.vocab_size + 39] + ids[2:]) == "Is 4097 even or odd?"
    again = get_tokenizer(spec, tmp_path)  # reused, not retrained: same fingerprint
    assert again.fingerprint == tok.fingerprint and again.encode("spell") == tok.encode("spell")


def test_sentencepiece_missing_without_text_is_an_error(tmp_path):
    with pytest.raises(FlanctlError, match="does not exist"):
        get_tokenizer(Tokenizer(kind="sentencepiece", path="none.model"), tmp_path)
    with pytest.raises(FlanctlError, match="training SentencePiece .* failed"):
        get_tokenizer(Tokenizer(kind="sentencepiece", path="small.model", vocab_size=20), tmp_path, mixture_texts=["abc def"] * 10)
    assert not list(tmp_path.glob("*small*"))
    with pytest.raises(FlanctlError, match="needs a .model file"):
        get_tokenizer(Tokenizer(kind="sentencepiece"), tmp_path)


def test_keras_hub_preset_tokenizer_from_a_local_directory(tmp_path):
    import keras_hub

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "is", "seven", "even", "or", "odd", "?"]
    preset = tmp_path / "tiny_bert"
    keras_hub.models.BertTokenizer(vocabulary=vocab).save_to_preset(str(preset))
    keras_hub.models.BertBackbone(vocabulary_size=len(vocab), num_layers=1, num_heads=1, hidden_dim=4,
                                  intermediate_dim=8, max_sequence_length=16).save_to_preset(str(preset))
    tok = get_tokenizer(Tokenizer(kind="preset", path="tiny_bert"), tmp_path)
    assert tok.vocab_size == len(vocab) and tok.pad_id == 0 and tok.eos_id == vocab.index("[SEP]")
    ids = tok.encode("is seven even or odd ?")
    assert ids == [5, 6, 7, 8, 9, 10]
    assert tok.decode(ids) == "is seven even or odd ?"
    assert tok.fingerprint.startswith("preset-")


def test_preset_tokenizer_bad_directory_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlanctlError) as err:
        get_tokenizer(Tokenizer(kind="preset", path="empty"), tmp_path)
    assert "could not load the keras-hub tokenizer" in str(err.value)


def test_tokenizer_for_spec_trains_sentencepiece_on_the_mixture(tmp_path):
    from flanctl.data import tokenizer_for_spec
    from flanctl.spec.models import Spec

    spec = Spec.model_validate({
        "model": {"tokenizer": {"kind": "sentencepiece", "path": "spm/mix.model", "vocab_size": 320}},
        "mixture": {"collections": [{"name": "builtin", "proportion": 1, "cap": 150, "tasks": ["spelling", "parity", "comparisons"]}]},
    })
    tok = tokenizer_for_spec(spec, tmp_path)
    assert (tmp_path / "spm" / "mix.model").exists() and tok.eos_id == 1
    text = "Is 4097 even or odd?"
    assert tok.decode(tok.encode(text)) == text and len(tok.encode(text)) < len(text.encode())
