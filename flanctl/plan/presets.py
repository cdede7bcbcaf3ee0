"""What a keras-hub preset holds, read once from its folder's JSON files (no Keras import).

A keras-hub preset directory holds `config.json` (the backbone's constructor arguments),
usually `task.json` (the task class: `...CausalLM` or `...Seq2SeqLM`) and `metadata.json`
with `parameter_count`. The plan reads them once and records the result in `plan.model`
(architecture, parameter count, encoder-decoder or not); no other room reads them again.
Hub handles (e.g. `gemma_2b_en`) are not resolved at plan time: the plan says so and guesses
the kind from the handle's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# keras-hub backbone config names -> our architecture keys, first match wins.
_KEYS = {
    "num_layers": ("num_layers",),
    "hidden_dim": ("hidden_dim",),
    "num_heads": ("num_query_heads", "num_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads", "num_query_heads", "num_heads"),
    "head_dim": ("head_dim", "key_value_dim"),
    "ffn_dim": ("intermediate_dim",),
    "vocab_size": ("vocabulary_size",),
    "max_sequence_length": ("max_sequence_length",),
}

# Backbones of keras-hub's (and flanctl's) encoder-decoder families, for presets saved
# without a task.json.
ENCODER_DECODER_BACKBONES = ("T5Backbone", "FlanT5Backbone", "BartBackbone", "T5GemmaBackbone", "T5Gemma2Backbone")
_NAME_HINTS = ("t5", "bart")


@dataclass
class PresetInfo:
    """What the plan learned from a preset: None where the folder does not say."""

    folder: Path | None
    architecture: dict[str, int] | None = None
    params: int | None = None
    encoder_decoder: bool = False
    notes: list[str] = field(default_factory=list)


def _read_json(file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def preset_folder(handle: str, base_dir: str | Path | None = None) -> Path | None:
    """The local folder of a preset handle (relative to `base_dir`), or None for a hub handle."""
    path = Path(handle)
    if not path.is_absolute():
        path = Path(base_dir or ".") / path
    return path.resolve() if path.is_dir() else None


def read_preset(handle: str | None, base_dir: str | Path) -> PresetInfo:
    """Read a preset folder (or note that a hub handle is known only when apply loads it)."""
    if not handle:
        return PresetInfo(folder=None)
    folder = preset_folder(handle, base_dir)
    if folder is None:
        return PresetInfo(
            folder=None,
            encoder_decoder=any(hint in handle.lower() for hint in _NAME_HINTS),
            notes=[f"model: preset {handle!r} is not a local folder; its size is known only when apply loads it"],
        )
    info = PresetInfo(folder=folder)
    config = _read_json(folder / "config.json")
    task = _read_json(folder / "task.json")
    if task and task.get("class_name"):
        # keras-hub names every sequence-to-sequence task class `...Seq2SeqLM`.
        info.encoder_decoder = str(task["class_name"]).endswith("Seq2SeqLM")
    else:
        info.encoder_decoder = (config or {}).get("class_name") in ENCODER_DECODER_BACKBONES
    if config is None:
        info.notes.append(f"model: {folder / 'config.json'} is missing or not a keras-hub config.json")
        return info
    inner = config.get("config", config)
    inner = inner if isinstance(inner, dict) else {}
    arch: dict[str, int] = {}
    for ours, theirs in _KEYS.items():
        for key in theirs:
            if isinstance(inner.get(key), int):
                arch[ours] = inner[key]
                break
    if "head_dim" not in arch and "hidden_dim" in arch and "num_heads" in arch:
        arch["head_dim"] = arch["hidden_dim"] // arch["num_heads"]
    arch.setdefault("max_sequence_length", 2048)
    meta = _read_json(folder / "metadata.json")
    params = (meta or {}).get("parameter_count")
    info.params = params if isinstance(params, int) else None
    if info.params is None:
        info.notes.append(f"model: {folder / 'metadata.json'} has no parameter_count; compute and memory are not estimated")
    info.architecture = arch if all(k in arch for k in _KEYS) else None
    return info
