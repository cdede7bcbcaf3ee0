"""Navigating the spec schema by path: which model sits at `mixture.collections[0]`, which
keys it knows, and the nearest known key to a typo ("did you mean ...?")."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel

from flanctl.spec.models import Spec


def format_path(path: tuple[Any, ...]) -> str:
    """('mixture', 'collections', 0, 'cap') -> 'mixture.collections[0].cap'; () -> 'top level'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "top level"


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated so that `Architecture | None` gives `Architecture`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def annotation_at(path: tuple[Any, ...], root: type[BaseModel] = Spec) -> Any:
    """The type annotation of the value at `path`, or None when the path leaves the schema.

    List indexes step into the item type; any key steps into a dict's value type.
    """
    current: Any = root
    for part in path:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None
            current = info.annotation
        elif origin in (list, tuple) and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    return _unwrap(current)


def model_at(path: tuple[Any, ...], root: type[BaseModel] = Spec) -> type[BaseModel] | None:
    """The pydantic model at `path`, or None when the value there is not a model."""
    ann = annotation_at(path, root)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def suggest(word: Any, choices: list[str]) -> str:
    """'; did you mean 'train'?' for a near miss, else a list of the valid choices."""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; known keys: {', '.join(choices)}" if choices else ""


def unknown_key_message(key: Any, parent: tuple[Any, ...], root: type[BaseModel] = Spec) -> str:
    """`unknown key 'trian' in top level; did you mean 'train'?`"""
    model = model_at(parent, root)
    choices = list(model.model_fields) if model else []
    if parent == () and "extends" not in choices:
        choices.append("extends")
    shown = f"'{key}'" if str(key).isprintable() else ascii(str(key))
    return f"unknown key {shown} in {format_path(parent)}{suggest(key, choices)}"
