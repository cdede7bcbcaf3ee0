"""Reading a spec file and the bases it `extends:`, deep-merged, with positions kept.

Merge rule: mappings merge key by key, recursively; lists and scalars replace. Bases listed
in `extends:` (a path or a list of paths, relative to the extending file) are merged left to
right, then the extending file on top. A missing base or a cycle is an error at the
`extends:` entry that names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flanctl.errors import SpecError
from flanctl.spec.yaml_positions import Mark, NodePos, Path_, Positions, load_yaml_text

EXTENDS_KEY = "extends"


def display_path(path: Path) -> str:
    """How a file is named in errors: relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class SourceTree:
    """Merged data of a spec and its bases, where each value came from, and the files read."""

    data: Any
    positions: Positions
    files: list[tuple[Path, bytes]] = field(default_factory=list)  # every file read, in order


def read_spec_file(path: Path, display: str | None = None, _stack: tuple[Path, ...] = ()) -> SourceTree:
    """Load `path` (absolute) and, recursively, its `extends:` bases; return the merged tree."""
    shown = display or display_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError("spec file not found", shown) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a spec file", shown) from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file: {exc.strerror or exc}", shown) from None
    text = _decode(raw, shown)
    data, positions, root = load_yaml_text(text, shown)
    tree = SourceTree(data, positions, [(path, raw)])
    if not isinstance(data, dict) or EXTENDS_KEY not in data:
        return tree

    own = dict(data)
    extends_value = own.pop(EXTENDS_KEY)
    own_positions = {p: pos for p, pos in positions.items() if not (p and p[0] == EXTENDS_KEY)}
    merged = SourceTree({}, {(): root}, [])
    for base_path, mark in _extends_entries(extends_value, positions, path, shown):
        if base_path in _stack or base_path == path:
            chain = " -> ".join(p.name for p in (*_stack, path, base_path))
            raise mark.error(f"extends cycle: {chain}; remove one of these extends")
        if not base_path.is_file():
            raise mark.error(f"extended file not found: {base_path}; the path is relative to {display_path(path.parent) or '.'}")
        base = read_spec_file(base_path, None, (*_stack, path))
        if not isinstance(base.data, dict):
            kind = "empty" if base.data is None else f"a {type(base.data).__name__}"
            raise mark.error(f"extended file {display_path(base_path)} is {kind}, not a mapping of spec sections")
        merged = merge_trees(merged, base)
    return merge_trees(merged, SourceTree(own, own_positions, tree.files))


def _decode(raw: bytes, shown: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the spec as UTF-8", shown, line, col) from None


def _extends_entries(value: Any, positions: Positions, path: Path, shown: str) -> list[tuple[Path, Mark]]:
    """The bases named by `extends:` as absolute paths, each with the mark that names it."""
    key_pos = positions.get((EXTENDS_KEY,), NodePos(None, Mark(shown, 1, 1)))
    if isinstance(value, str):
        items: list[tuple[Any, Mark]] = [(value, key_pos.value)]
    elif isinstance(value, list):
        items = [(v, positions.get((EXTENDS_KEY, i), key_pos).value) for i, v in enumerate(value)]
    else:
        raise key_pos.best_key.error(f"extends must be a file path or a list of file paths, got {type(value).__name__}")
    out = []
    for item, mark in items:
        if not isinstance(item, str) or not item.strip():
            raise mark.error(f"extends entries must be non-empty file paths, got {item!r}")
        base = Path(os.path.expanduser(item))
        out.append(((base if base.is_absolute() else path.parent / base).resolve(), mark))
    return out


def deep_merge(base: Any, over: Any) -> Any:
    """Mappings merge recursively; anything else in `over` replaces what `base` had."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return over


def _exists(data: Any, path: Path_) -> bool:
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return False
    return True


def merge_trees(base: SourceTree, over: SourceTree) -> SourceTree:
    """Deep-merge two trees; each surviving value keeps the position of the layer it came from."""
    data = deep_merge(base.data, over.data)
    positions = {p: pos for p, pos in base.positions.items() if p not in over.positions and _exists(data, p) and not _replaced(p, over)}
    positions.update(over.positions)
    return SourceTree(data, positions, base.files + over.files)


def _replaced(path: Path_, over: SourceTree) -> bool:
    """True when `over` replaced (not merged into) a container above or at `path`."""
    node = over.data
    for key in path:
        if not isinstance(node, dict):
            return True  # a list or scalar in `over` replaced everything below it
        if key not in node:
            return False
        node = node[key]
    return False
