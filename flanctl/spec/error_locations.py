"""Turning pydantic validation errors into one-line `file:line:col: message` spec errors.

Each pydantic error has a location path such as ('train', 'steps'); the longest prefix of it
that was written in a source (a spec file, an extended file, or a `--set`) gives the place.
Errors about a key (unknown, missing) point at the key; errors about a value at the value.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flanctl.errors import SpecError
from flanctl.spec.field_paths import annotation_at, format_path, suggest, unknown_key_message
from flanctl.spec.yaml_positions import Mark, NodePos, Positions

_MAX_REPR = 60


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def locate(positions: Positions, path: tuple[Any, ...], want_key: bool = False) -> Mark:
    """The mark of the longest written prefix of `path` (its key when `want_key`)."""
    for end in range(len(path), -1, -1):
        pos: NodePos | None = positions.get(tuple(path[:end]))
        if pos is not None:
            if end < len(path):
                return pos.best_key  # the parent was written, the child was not: point at the parent's key
            return pos.best_key if want_key else pos.value
    return Mark("<spec>")


def _literal_choices(path: tuple[Any, ...]) -> list[str]:
    import typing

    ann = annotation_at(path)
    if typing.get_origin(ann) is typing.Literal:
        return [str(a) for a in typing.get_args(ann)]
    return []


def _message(err: dict, path: tuple[Any, ...]) -> tuple[str, bool]:
    """(message, points-at-key) for one pydantic error dict."""
    kind = err["type"]
    where = format_path(path)
    if kind == "extra_forbidden":
        return unknown_key_message(path[-1], path[:-1]), True
    if kind == "missing":
        return f"missing required key '{path[-1]}' in {format_path(path[:-1])}", True
    value = err.get("input")
    if path == ("apiVersion",) and kind == "literal_error":
        return f"unsupported apiVersion {short_repr(value)}; this flanctl reads 'flanctl/v1'", False
    if kind == "literal_error":
        choices = _literal_choices(path)
        hint = suggest(value, choices) if isinstance(value, str) else ""
        hint = hint if hint.startswith("; did") else ""
        return f"{where}: unknown value {short_repr(value)}; expected one of: {', '.join(choices)}{hint}", False
    msg = err["msg"]
    msg = msg[0].lower() + msg[1:] if msg else msg
    return f"{where}: {msg}, got {short_repr(value)}", False


def validation_errors(exc: ValidationError, positions: Positions, offset: tuple[Any, ...] = ()) -> list[SpecError]:
    """One SpecError per pydantic error, each placed at its source mark."""
    out: list[SpecError] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        path = offset + tuple(p for p in err["loc"] if isinstance(p, (str, int)) and p != "[key]")
        message, at_key = _message(err, path)
        message = " ".join(message.split())
        mark = locate(positions, path, want_key=at_key)
        e = SpecError(message, mark.file, mark.line, mark.col)
        if str(e) not in seen:
            seen.add(str(e))
            out.append(e)
    return out
