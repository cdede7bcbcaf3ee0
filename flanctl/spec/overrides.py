"""`--set a.b.c=VALUE` overrides, applied after `extends:` merging.

VALUE is read as a YAML scalar or flow collection (`100`, `true`, `[mmlu, bbh]`,
`{data: 2, model: 4}`), safely. The dotted path must name a field of the schema (list items
by index, e.g. `mixture.collections.0.proportion`); a typo gets a "did you mean".
"""

from __future__ import annotations

from typing import Any

import yaml

from flanctl.spec.extends import SourceTree
from flanctl.spec.field_paths import annotation_at, format_path, model_at, suggest
from flanctl.spec.yaml_positions import Mark, NodePos


def parse_override(text: str) -> tuple[tuple[Any, ...], Any, Mark]:
    """'train.steps=100' -> (('train', 'steps'), 100, mark naming the override)."""
    mark = Mark(f"--set {text if text.isprintable() else ascii(text)}")  # keep errors on one line
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise mark.error("expected --set section.field=VALUE, e.g. --set train.steps=100")
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise mark.error(f"empty part in the path '{key.strip()}'; write section.field, e.g. train.steps")
    path = tuple(int(p) if p.isdigit() else p for p in parts)
    try:
        value = yaml.load(raw, Loader=yaml.SafeLoader) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise mark.error(f"cannot read the value as YAML: {' '.join(str(problem).split())}") from None
    except RecursionError:
        raise mark.error("cannot read the value as YAML: nested too deeply") from None
    _check_path(path, mark)
    return path, value, mark


def _check_path(path: tuple[Any, ...], mark: Mark) -> None:
    """Refuse a path that leaves the schema, naming the nearest known key."""
    if path == ("extends",):
        raise mark.error("extends cannot be set from the command line; edit the spec file")
    for i, part in enumerate(path):
        if annotation_at(path[: i + 1]) is not None:
            continue
        parent = path[:i]
        model = model_at(parent)
        if model is not None:
            where = format_path(parent)
            raise mark.error(f"unknown key '{part}' in {where}{suggest(part, list(model.model_fields))}")
        raise mark.error(f"cannot set '{part}' inside {format_path(parent)}: it is not a section or a list")


def apply_override(tree: SourceTree, path: tuple[Any, ...], value: Any, mark: Mark) -> SourceTree:
    """Set `path` to `value` in the tree (creating mappings on the way) and record the mark."""
    if not isinstance(tree.data, dict):
        return tree  # the file itself is not a mapping; that error is reported on its own
    data = tree.data
    node: Any = data
    for i, part in enumerate(path[:-1]):
        nxt = node.get(part) if isinstance(node, dict) else _list_item(node, part, path[: i + 1], mark)
        if nxt is None:
            if isinstance(path[i + 1], int):
                raise mark.error(f"{format_path(path[: i + 2])} does not exist: {format_path(path[: i + 1])} is not set")
            nxt = {}
        elif isinstance(nxt, dict):
            nxt = dict(nxt)  # copy: the same dict may be shared by YAML aliases
        elif isinstance(nxt, list):
            nxt = list(nxt)
        else:
            raise mark.error(f"cannot set inside {format_path(path[: i + 1])}: it holds {type(nxt).__name__} {nxt!r}, not a section")
        node[part] = nxt
        node = nxt
    last = path[-1]
    if isinstance(node, list):
        _list_item(node, last, path, mark)
    node[last] = value
    positions = {p: pos for p, pos in tree.positions.items() if p[: len(path)] != path}
    positions[path] = NodePos(mark, mark)
    return SourceTree(data, positions, tree.files)


def _list_item(node: Any, part: Any, where: tuple[Any, ...], mark: Mark) -> Any:
    if not isinstance(node, list) or not isinstance(part, int):
        raise mark.error(f"cannot set {format_path(where)}: the value there is not a mapping")
    if part >= len(node):
        raise mark.error(f"{format_path(where)} does not exist: the list has {len(node)} item(s)")
    return node[part]
