"""Atomic training checkpoints: weights, optimizer state, data iterator state and step.

Layout of `checkpoints/step_<n>/`:
  meta.json             step, tokens, format, variable paths (checked on restore)
  data_state_<p>.json   the data iterator state of process p (exact resume of the data order)
  variables.npz         model + optimizer variables (format "npz": one process, one device)
  state/                the same as an orbax PyTree (format "orbax": sharded or multi-process jax)

Writers fill `tmp-step_<n>/`, fsync every file, then process 0 renames it to `step_<n>/` and
fsyncs the folder, so a kill at any moment leaves either the whole checkpoint or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from flanctl.errors import FlanctlError

NPZ = "variables.npz"
ORBAX_DIR = "state"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _to_numpy(variable) -> np.ndarray:
    """Host copy of a Keras variable; bf16 is widened to f32 (exact) since npz cannot hold it."""
    import keras

    array = np.asarray(keras.ops.convert_to_numpy(variable.value))
    if array.dtype.kind == "V" or array.dtype.name == "bfloat16":
        array = array.astype(np.float32)
    return array


def _shapes(variables) -> list[list[int]]:
    return [list(v.shape) for v in variables]


def _variables(model, optimizer) -> tuple[list, list]:
    return list(model.variables), list(optimizer.variables)


def save_checkpoint(root: Path, step: int, model, optimizer, data_state: dict, meta: dict, placement, fmt: str, keep: int) -> Path:
    """Write checkpoint `step` atomically under `root`; returns the final path."""
    root = Path(root)
    tmp, final = root / f"tmp-step_{step}", root / f"step_{step}"
    model_vars, opt_vars = _variables(model, optimizer)
    if placement.is_chief:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed mid-save
        tmp.mkdir()
    placement.barrier(f"ckpt-mkdir-{step}")
    if fmt == "orbax":
        import orbax.checkpoint as ocp

        tree = {"model": [v.value for v in model_vars], "optimizer": [v.value for v in opt_vars]}
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save((tmp / ORBAX_DIR).absolute(), tree)
            ckptr.wait_until_finished()
    elif placement.is_chief:
        arrays = {f"m{i:05d}": _to_numpy(v) for i, v in enumerate(model_vars)}
        arrays.update({f"o{i:05d}": _to_numpy(v) for i, v in enumerate(opt_vars)})
        with open(tmp / NPZ, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
    _write_json(tmp / f"data_state_{placement.process_index}.json", _jsonable_state(data_state))
    placement.barrier(f"ckpt-written-{step}")
    if placement.is_chief:
        full_meta = {
            **meta,
            "step": step,
            "format": fmt,
            "process_count": placement.process_count,
            "model_variables": [v.path for v in model_vars],
            "optimizer_variables": [v.path for v in opt_vars],
            "model_shapes": _shapes(model_vars),
            "optimizer_shapes": _shapes(opt_vars),
        }
        # Checksums of every file (not meta.json itself), verified before a resume trusts them.
        full_meta["files"] = file_checksums(tmp)
        _write_json(tmp / "meta.json", full_meta)
        _fsync_path(tmp)
        if final.exists():  # same step saved before a kill; the new one is just as good
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_path(root)
        _prune(root, keep)
    placement.barrier(f"ckpt-done-{step}")
    return final


def _jsonable_state(state: dict) -> dict:
    try:
        json.dumps(state)
    except TypeError as exc:
        raise FlanctlError(f"data iterator state is not JSON-serialisable ({exc}); the data stream must return plain values") from exc
    return state


def _prune(root: Path, keep: int) -> None:
    """Keep the newest `keep` completed checkpoints."""
    steps = sorted(int(p.name[5:]) for p in root.iterdir() if p.name.startswith("step_") and p.name[5:].isdigit())
    for old in steps[:-keep]:
        shutil.rmtree(root / f"step_{old}", ignore_errors=True)


def file_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` except meta.json, by relative path."""
    sums = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != "meta.json":
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            sums[str(path.relative_to(folder))] = digest.hexdigest()
    return sums


def verify_checkpoint(path: Path) -> dict:
    """The checkpoint's meta after checking its files against the recorded checksums; raises
    `FlanctlError` naming the first missing or changed file. Checkpoints written before
    checksums existed are only checked for a readable meta.json."""
    meta = read_meta(path)
    recorded = meta.get("files")
    if isinstance(recorded, dict):
        actual = file_checksums(path)
        for name, digest in recorded.items():
            if name not in actual:
                raise FlanctlError(f"{path}: checkpoint file {name} is missing")
            if actual[name] != digest:
                raise FlanctlError(f"{path}: checkpoint file {name} does not match its checksum (truncated or changed)")
    return meta


def set_aside(path: Path) -> Path:
    """Rename a bad checkpoint `step_<n>` to `corrupt-step_<n>[-k]` (kept for a look, never resumed)."""
    path = Path(path)
    k = 0
    while (target := path.with_name(f"corrupt-{path.name}" + (f"-{k}" if k else ""))).exists():
        k += 1
    os.rename(path, target)
    return target


def restore_latest(run, model, optimizer, placement, say=print) -> tuple[int, Path, dict, dict | None] | None:
    """Restore the newest good checkpoint of `run`: (step, path, meta, data_state), or None when
    there is none. A bad one (unreadable meta, a file that fails its checksum or does not load)
    is set aside with a warning and the one before it is used. With several processes a bad
    checkpoint is an error instead: they must all agree on which one they resume from."""
    for step, path in reversed(run.checkpoints()):
        try:
            verify_checkpoint(path)
            meta, data_state = restore_checkpoint(path, model, optimizer, placement)
        except _Mismatch:
            raise
        except FlanctlError as exc:
            problem = str(exc)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            problem = f"{path}: checkpoint does not load ({type(exc).__name__}: {exc})"
        else:
            return step, path, meta, data_state
        if placement.process_count > 1:
            raise FlanctlError(f"{problem}; move {path.name} out of checkpoints/ to resume from the one before")
        aside = set_aside(path) if placement.is_chief else path
        say(f"warning: {problem}; set aside as {aside.name}, trying the checkpoint before it")
    return None


class _Mismatch(FlanctlError):
    """The checkpoint is fine but belongs to another model: an older one would not help."""


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads((Path(path) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FlanctlError(f"{path}: checkpoint has no readable meta.json ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise FlanctlError(f"{path}: checkpoint meta.json is not a flanctl checkpoint record")
    return meta


def restore_checkpoint(path: Path, model, optimizer, placement) -> tuple[dict, dict]:
    """Load weights and optimizer state into the built model/optimizer; returns (meta, data_state).

    `data_state` is None when the checkpoint was written by a different number of processes.
    """
    path = Path(path)
    meta = read_meta(path)
    model_vars, opt_vars = _variables(model, optimizer)
    # Shapes, not paths: auto-numbered layer names differ between two models of one process.
    if meta.get("model_shapes") != _shapes(model_vars) or meta.get("optimizer_shapes") != _shapes(opt_vars):
        raise _Mismatch(
            f"{path}: checkpoint variables do not match the model built from the plan "
            "(architecture or optimizer changed); start a new run name or delete checkpoints/"
        )
    if meta["format"] == "orbax":
        import jax
        import orbax.checkpoint as ocp

        def abstract(v):
            return jax.ShapeDtypeStruct(v.shape, v.value.dtype, sharding=v.value.sharding)

        target = {"model": [abstract(v) for v in model_vars], "optimizer": [abstract(v) for v in opt_vars]}
        with ocp.StandardCheckpointer() as ckptr:
            tree = ckptr.restore((path / ORBAX_DIR).absolute(), target)
        for v, value in zip(model_vars, tree["model"]):
            v.assign(value)
        for v, value in zip(opt_vars, tree["optimizer"]):
            v.assign(value)
    else:
        with np.load(path / NPZ) as arrays:
            for i, v in enumerate(model_vars):
                v.assign(arrays[f"m{i:05d}"])
            for i, v in enumerate(opt_vars):
                v.assign(arrays[f"o{i:05d}"])
    state_file = path / f"data_state_{placement.process_index}.json"
    if meta.get("process_count", 1) != placement.process_count or not state_file.exists():
        return meta, None  # weights load anywhere; the data order needs the same process layout
    return meta, json.loads(state_file.read_text())
