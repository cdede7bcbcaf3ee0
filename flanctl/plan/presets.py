"""Architecture of a `preset` model, read from a local keras-hub preset folder (JSON only).

A keras-hub preset directory holds `config.json` (the backbone's constructor arguments) and
usually `metadata.json` with `parameter_count`. Reading them needs no Keras import. Hub
handles (e.g. `gemma_2b_en`) are not resolved at plan time: the plan says so.
"""

from __future__ import annotations

import json
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


def preset_architecture(model: Any, base_dir: Path, notes: list[str]) -> tuple[dict[str, int] | None, int | None]:
    """(architecture, parameter count) of a local preset, or (None, None) with a note."""
    handle = model.preset or model.checkpoint
    if not handle:
        return None, None
    folder = Path(handle) if Path(handle).is_absolute() else base_dir / handle
    config_file = folder / "config.json"
    if not config_file.is_file():
        notes.append(f"model: preset {handle!r} is not a local folder; its size is known only when apply loads it")
        return None, None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        inner = config.get("config", config)
    except (json.JSONDecodeError, AttributeError):
        notes.append(f"model: {config_file} is not a keras-hub config.json")
        return None, None
    arch: dict[str, int] = {}
    for ours, theirs in _KEYS.items():
        for key in theirs:
            if isinstance(inner.get(key), int):
                arch[ours] = inner[key]
                break
    if "head_dim" not in arch and "hidden_dim" in arch and "num_heads" in arch:
        arch["head_dim"] = arch["hidden_dim"] // arch["num_heads"]
    arch.setdefault("max_sequence_length", 2048)
    params = None
    meta = folder / "metadata.json"
    if meta.is_file():
        try:
            params = json.loads(meta.read_text(encoding="utf-8")).get("parameter_count")
        except json.JSONDecodeError:
            params = None
    complete = all(k in arch for k in _KEYS)
    if params is None:
        notes.append(f"model: {meta} has no parameter_count; compute and memory are not estimated")
    return (arch if complete else None), params
