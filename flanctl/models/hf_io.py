"""Hugging Face folders (`save_pretrained` layout) read and written as numpy arrays.

Reading parses the safetensors headers (as the plan room does for its counts,
`flanctl.plan.presets`; the models room does not import the plan): each tensor is a view into a memory map of its file, converted to
float32 when it is stored as bfloat16 or float16 (numpy has no bfloat16, which is why this
module does not ask `safetensors.numpy` for it). Writing uses `safetensors.numpy.save_file`
and, for more than `shard_bytes`, shards with a `model.safetensors.index.json` as
transformers writes them. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from flanctl.errors import FlanctlError

SAFETENSORS_INDEX = "model.safetensors.index.json"

_NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_json(file: Path):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def hf_config(folder: Path) -> dict | None:
    """The transformers config.json of `folder` (it names a `model_type`), or None."""
    config = _read_json(Path(folder) / "config.json")
    ok = isinstance(config, dict) and isinstance(config.get("model_type"), str) and "class_name" not in config
    return config if ok else None


def safetensors_files(folder: Path) -> list[Path]:
    """The shards an index lists, else the folder's `*.safetensors` (sorted)."""
    index = _read_json(folder / SAFETENSORS_INDEX)
    if isinstance(index, dict) and isinstance(index.get("weight_map"), dict):
        return [folder / name for name in sorted(set(index["weight_map"].values()))]
    return sorted(folder.glob("*.safetensors"))


def safetensors_header(file: Path) -> tuple[int, dict]:
    """(offset of the data, header without `__metadata__`) of one safetensors file."""
    with open(file, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        if not 0 < size < 100_000_000:
            raise ValueError(f"{file.name}: not a safetensors file")
        try:
            header = json.loads(fh.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{file.name}: unreadable safetensors header ({exc})") from None
    header.pop("__metadata__", None)
    return 8 + size, header


def is_hf_folder(source) -> bool:
    """True for a local folder whose config.json is a transformers config."""
    try:
        path = Path(source)
        return path.is_dir() and hf_config(path) is not None
    except (TypeError, OSError):
        return False


def read_config(folder: Path) -> dict:
    config = hf_config(folder)
    if config is None:
        raise FlanctlError(f"{folder}: not a Hugging Face folder (no transformers config.json with model_type)")
    return config


def _tensor(buffer: np.memmap, start: int, meta: dict) -> np.ndarray:
    begin, end = (int(x) for x in meta["data_offsets"])
    raw = buffer[start + begin : start + end]
    shape = tuple(int(d) for d in meta["shape"])
    dtype = meta["dtype"]
    if dtype == "BF16":
        # bfloat16 is the top half of a float32: shift the 16 bits into place.
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype not in _NUMPY:
        raise FlanctlError(f"safetensors dtype {dtype} is not supported")
    return raw.view(_NUMPY[dtype]).reshape(shape)


def iter_tensors(folder: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) for every tensor of the folder's safetensors files (memory-mapped views)."""
    files = safetensors_files(folder)
    if not files:
        raise FlanctlError(f"{folder}: no safetensors weights (save the model with safe_serialization=True)")
    for file in files:
        if not file.is_file():
            raise FlanctlError(f"{folder}: weight shard {file.name} is missing")
        try:
            start, header = safetensors_header(file)
        except ValueError as exc:
            raise FlanctlError(f"{folder}: {exc}") from None
        buffer = np.memmap(file, dtype=np.uint8, mode="r")
        for name, meta in header.items():
            yield name, _tensor(buffer, start, meta)


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
    return dict(iter_tensors(folder))


def write_tensors(tensors: dict[str, np.ndarray], folder: Path, shard_bytes: int = 2 * 1024**3) -> list[Path]:
    """Write `tensors` as `model.safetensors`, or as shards plus the index past `shard_bytes`."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        if shards[-1] and size + array.nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = array
        size += array.nbytes
    metadata = {"format": "pt"}  # transformers refuses safetensors files without it
    if len(shards) == 1:
        path = folder / "model.safetensors"
        save_file(shards[0], str(path), metadata=metadata)
        return [path]
    paths, weight_map = [], {}
    for i, shard in enumerate(shards, 1):
        path = folder / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path), metadata=metadata)
        paths.append(path)
        weight_map.update({name: path.name for name in shard})
    total = sum(a.nbytes for a in tensors.values())
    (folder / SAFETENSORS_INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    return paths
