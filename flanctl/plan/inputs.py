"""Fingerprints of the local files a spec reads, so a saved plan can tell it went stale.

Files up to 16 MiB are hashed; bigger files and directories are fingerprinted by size and
modification time of each file (reading gigabytes to check freshness would defeat the point).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

HASH_LIMIT = 16 * 2**20
MAX_DIR_FILES = 5000


def _file_fingerprint(path: Path) -> str:
    st = path.stat()
    if st.st_size <= HASH_LIMIT:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return f"stat:{st.st_size}:{st.st_mtime_ns}"


def fingerprint(path: Path) -> str | None:
    """A string that changes when the file or directory changes; None if it does not exist."""
    if path.is_file():
        return _file_fingerprint(path)
    if path.is_dir():
        digest = hashlib.sha256()
        count = 0
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                f = Path(root) / name
                st = f.stat()
                digest.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
                count += 1
                if count >= MAX_DIR_FILES:
                    break
        return f"dir:{count}:{digest.hexdigest()}"
    return None


def local_inputs(spec: Any, base_dir: Path) -> dict[str, str | None]:
    """{path as written in the spec: fingerprint} for every local file or folder the spec reads."""
    paths: list[str] = []
    model = spec.model
    trained = trained_inputs(spec)
    for p in (model.checkpoint, model.tokenizer.path, model.preset):
        if p and not (p in trained and not _resolve(base_dir, p).exists()):
            paths.append(p)
    for coll in spec.mixture.collections:
        if coll.source is not None and coll.source.kind == "local":
            paths.append(coll.source.path)
        for task in coll.user_tasks:
            if task.source.kind == "local":
                paths.append(task.source.path)
            if task.templates:
                paths.append(task.templates)
    out: dict[str, str | None] = {}
    for p in paths:
        resolved = (base_dir / p) if not Path(p).is_absolute() else Path(p)
        # Hub handles (preset names, hf ids) are not local paths: only record what exists or
        # looks like a path, so a missing local file still shows up as a change later.
        if resolved.exists() or p.startswith((".", "/")) or os.sep in p and not _looks_like_hub_id(p):
            out[p] = fingerprint(resolved)
    return out


def trained_inputs(spec: Any) -> set[str]:
    """Inputs that `apply` itself makes when missing: a SentencePiece model trained on the
    mixture (a function of the spec, which the spec hash already covers). Absent at planning
    time they are not inputs yet; once made they are, so a later change is still caught."""
    tok = spec.model.tokenizer
    return {tok.path} if tok.kind == "sentencepiece" and tok.path else set()


def _resolve(base_dir: Path, p: str) -> Path:
    return (base_dir / p) if not Path(p).is_absolute() else Path(p)


def _looks_like_hub_id(p: str) -> bool:
    """'owner/name' with no dots or further slashes is a hub id, not a relative path."""
    parts = p.split("/")
    return len(parts) == 2 and all(part and "." not in part for part in parts)
