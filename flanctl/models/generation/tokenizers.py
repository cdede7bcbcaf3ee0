"""The tokenizer an engine uses when the caller has none (flanctl's interface over it).

flanctl's own models (palm, t5) carry no tokenizer: a byte-vocabulary model gets the byte
tokenizer, anything else must be given one. keras-hub presets carry theirs: it is wrapped,
live, in the data room's `PresetTokenizer` interface.
"""

from __future__ import annotations

from flanctl.errors import FlanctlError


def default_tokenizer(model):
    """flanctl's byte tokenizer when the model's vocabulary is the byte vocabulary (259)."""
    from flanctl.data.tokenizers import ByteTokenizer

    vocab = getattr(getattr(model, "backbone", None), "vocabulary_size", None)
    if vocab == ByteTokenizer.vocab_size:
        return ByteTokenizer()
    raise FlanctlError(
        f"no tokenizer for this model (vocabulary {vocab}): save it with "
        "save_preset(model, dir, tokenizer=...) or pass the spec's tokenizer to the engine"
    )


def live_tokenizer(hub_tokenizer):
    """flanctl's tokenizer interface (`PresetTokenizer`) over a loaded keras-hub tokenizer."""
    from flanctl.data.tokenizers import PresetTokenizer

    tokenizer = PresetTokenizer.__new__(PresetTokenizer)  # wrap the live tokenizer, no reload
    tokenizer._tok = hub_tokenizer
    tokenizer.vocab_size = int(hub_tokenizer.vocabulary_size())
    tokenizer.pad_id = int(getattr(hub_tokenizer, "pad_token_id", None) or 0)
    end = getattr(hub_tokenizer, "end_token_id", None)
    tokenizer.eos_id = int(end) if end is not None else None
    start = getattr(hub_tokenizer, "start_token_id", None)
    tokenizer.bos_id = int(start) if start is not None else None
    tokenizer.fingerprint = "preset-live"
    return tokenizer
