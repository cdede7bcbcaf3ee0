"""Reading and writing keras-hub preset directories, for every family.

A preset directory holds keras-hub's `config.json`, `task.json` and weights; flanctl adds
`flanctl.json`, which records the family that wrote it and the tokenizer (a SentencePiece
model copied to `assets/tokenizer/`, or the byte tokenizer). flanctl's own task models (PaLM,
packed T5) are registered Keras classes, so plain keras-hub reloads them too once
`flanctl.models.palm` (or `.t5`) is imported.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from flanctl.errors import FlanctlError

MARKER = "flanctl.json"


def read_marker(directory: str | os.PathLike | None) -> dict:
    """The preset's flanctl.json, or {} (not a folder, no marker, or not readable)."""
    if directory is None:
        return {}
    try:
        data = json.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_family(directory: str | os.PathLike | None) -> str | None:
    """The family name `export_preset` recorded in the folder, or None."""
    family = read_marker(directory).get("family")
    return family if isinstance(family, str) else None


def saved_tokenizer(directory: Path):
    """The flanctl tokenizer recorded in a preset's flanctl.json, or None."""
    tok = read_marker(directory).get("tokenizer") or {}
    if tok.get("kind") == "byte":
        from flanctl.data.tokenizers import ByteTokenizer

        return ByteTokenizer()
    if tok.get("kind") == "sentencepiece":
        from flanctl.data.tokenizers import SentencePieceTokenizer

        return SentencePieceTokenizer(Path(directory) / tok["file"])
    return None


def export_preset(model, directory, family: str, tokenizer=None) -> Path:
    """Save a task model as a keras-hub preset directory (config.json, task.json, weights)
    plus flanctl.json naming `family` and the tokenizer: a SentencePiece model file is
    copied to `assets/tokenizer/`; with no tokenizer given, a 259-token vocabulary is
    recorded as the byte tokenizer."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_to_preset(str(directory))
    meta: dict = {"family": family}
    vocab = getattr(getattr(model, "backbone", None), "vocabulary_size", None)
    spm_path = getattr(tokenizer, "path", None)
    if spm_path is not None and str(spm_path).endswith(".model"):
        dest = directory / "assets" / "tokenizer" / "spm.model"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spm_path, dest)
        meta["tokenizer"] = {"kind": "sentencepiece", "file": "assets/tokenizer/spm.model"}
        if getattr(tokenizer, "vocab_size", None):  # below the model's when its vocabulary grew (sentinels)
            meta["tokenizer"]["vocab_size"] = int(tokenizer.vocab_size)
    elif (tokenizer is None and vocab == 259) or getattr(tokenizer, "fingerprint", "") == "byte-v1":
        meta["tokenizer"] = {"kind": "byte"}
    (directory / MARKER).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def _hf_t5_folder(local: Path):
    """`(model, tokenizer)` of a Hugging Face T5 folder (keras-hub has no T5 converter, so
    flanctl's weight map loads it as its packed t5), or None for anything else."""
    from flanctl.models.hf_io import hf_config

    config = hf_config(local) if local.is_dir() else None
    from flanctl.models.t5.hf import SUPPORTED_MODEL_TYPES

    if config is None or config.get("model_type") not in SUPPORTED_MODEL_TYPES:
        return None
    from flanctl.models.t5.hf import load_checked

    return load_checked(local)


def load_preset(path_or_preset: str | os.PathLike):
    """Open a preset and return `(task model, tokenizer or None)`.

    Accepts a directory written by `export_preset`, any local keras-hub preset directory, or
    a keras-hub preset handle (which needs network access the first time). The tokenizer is
    flanctl's when flanctl.json records one, else the preset's keras-hub tokenizer wrapped in
    the data room's `PresetTokenizer`, else None (the caller then builds it from the spec).
    """
    import keras_hub

    # Registers flanctl's classes with Keras so their configs deserialise.
    import flanctl.models.palm  # noqa: F401
    import flanctl.models.t5  # noqa: F401

    src = str(path_or_preset)
    local = Path(src)
    t5 = _hf_t5_folder(local)
    if t5 is not None:
        return t5
    if local.exists() and not (local / "config.json").is_file():
        raise FlanctlError(f"{src}: not a keras-hub preset directory (no config.json); pass a directory written by save_to_preset")
    if not local.exists() and ("/" in src or src.startswith(".")) and "://" not in src:
        raise FlanctlError(f"{src}: preset directory not found; check model.preset / --preset")
    errors = []
    for cls in (keras_hub.models.CausalLM, keras_hub.models.Seq2SeqLM):
        try:
            model = cls.from_preset(src)
            break
        except (ValueError, TypeError) as exc:
            errors.append(f"{cls.__name__}: {exc}")
    else:
        first = errors[0].splitlines()[0] if errors else "unknown error"
        raise FlanctlError(f"{src}: cannot load as a keras-hub CausalLM or Seq2SeqLM ({first})")
    tokenizer = saved_tokenizer(local) if local.is_dir() else None
    if tokenizer is None and getattr(model, "preprocessor", None) is not None:
        from flanctl.data.tokenizers import PresetTokenizer

        # flanctl's tokenizer interface over the preset's own keras-hub tokenizer.
        tokenizer = PresetTokenizer(src)
    return model, tokenizer


def weights_digest(directory: str | os.PathLike) -> str:
    """sha256 over the arrays of a preset's model.weights.h5: each array's path, dtype, shape
    and bytes, in path order. Unlike the file's own hash it ignores HDF5 metadata (timestamps,
    layout), so two runs that trained the same numbers give the same digest."""
    import hashlib

    import h5py
    import numpy as np

    file = Path(directory) / "model.weights.h5"
    if not file.is_file():
        raise FlanctlError(f"{directory}: no model.weights.h5 to digest")
    digest = hashlib.sha256()
    with h5py.File(file, "r") as f:
        names: list[str] = []
        f.visit(lambda name: names.append(name) if isinstance(f[name], h5py.Dataset) else None)
        for name in sorted(names):
            arr = np.ascontiguousarray(f[name][()])
            digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
            digest.update(arr.tobytes())
    return digest.hexdigest()
