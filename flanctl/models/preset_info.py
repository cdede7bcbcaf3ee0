"""What a keras-hub preset holds, read from its JSON files (no Keras import).

The data room asks `preset_is_encoder_decoder` to decide the batch layout of `model.family:
preset` (decoder-only rows for a CausalLM, encoder/decoder rows for a Seq2SeqLM); the plan
can ask it without loading the model. A local preset directory is read (`task.json`, else
`config.json`); a hub handle that is not on disk falls back to its name.
"""

from __future__ import annotations

import json
from pathlib import Path

# Backbones of keras-hub's (and flanctl's) encoder-decoder families, for presets saved
# without a task.json.
ENCODER_DECODER_BACKBONES = ("T5Backbone", "FlanT5Backbone", "BartBackbone", "T5GemmaBackbone", "T5Gemma2Backbone")
_NAME_HINTS = ("t5", "bart")


def preset_folder(handle: str, base_dir: str | Path | None = None) -> Path | None:
    """The local folder of a preset handle (relative to `base_dir`), or None for a hub handle."""
    path = Path(handle)
    if not path.is_absolute():
        path = Path(base_dir or ".") / path
    return path if path.is_dir() else None


def _class_name(file: Path) -> str | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data.get("class_name") if isinstance(data, dict) else None


def preset_is_encoder_decoder(handle: str | None, base_dir: str | Path | None = None) -> bool:
    """True when the preset is an encoder-decoder (a keras-hub `Seq2SeqLM`, e.g. T5 or BART).

    keras-hub names every sequence-to-sequence task class `...Seq2SeqLM` (T5Seq2SeqLM,
    BartSeq2SeqLM, T5GemmaSeq2SeqLM, flanctl's T5PackedSeq2SeqLM).
    """
    if not handle:
        return False
    folder = preset_folder(handle, base_dir)
    if folder is None:
        return any(hint in handle.lower() for hint in _NAME_HINTS)
    task = _class_name(folder / "task.json")
    if task:
        return task.endswith("Seq2SeqLM")
    return (_class_name(folder / "config.json") or "") in ENCODER_DECODER_BACKBONES
