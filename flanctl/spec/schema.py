"""The JSON Schema of a spec file, for editors, `flanctl schema` and independent validators.

It is pydantic's schema of `Spec` (every field's type, default and description), plus the
`extends:` key, which the loader consumes before validation and so is not a `Spec` field.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from flanctl.spec.models import Spec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_EXTENDS = {
    "description": "Base spec file(s) to deep-merge under this one, relative to this file (mappings merge; lists and scalars replace).",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ],
}


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema (draft 2020-12) as a dict; `additionalProperties` is false everywhere."""
    schema = Spec.model_json_schema(mode="validation")
    _add_factory_defaults(schema)
    schema = {"$schema": SCHEMA_DIALECT, **schema}
    schema["properties"] = {"extends": _EXTENDS, **schema["properties"]}
    return schema


def json_schema_text() -> str:
    """The schema as indented JSON text with a final newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model class reachable from `root` (sections, list items, optional sub-sections)."""
    import typing

    found: list[type[BaseModel]] = []
    todo: list[Any] = [root]
    while todo:
        ann = todo.pop()
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if ann in found:
                continue
            found.append(ann)
            todo.extend(f.annotation for f in ann.model_fields.values())
        else:
            todo.extend(typing.get_args(ann))
    return found


def _add_factory_defaults(schema: dict[str, Any]) -> None:
    """pydantic leaves out defaults made by `default_factory`; editors and the reference want them."""
    for model in _models(Spec):
        props = schema["properties"] if model is Spec else schema.get("$defs", {}).get(model.__name__, {}).get("properties", {})
        for name, info in model.model_fields.items():
            if info.default_factory is not None and name in props and "default" not in props[name]:
                props[name]["default"] = to_jsonable_python(info.default_factory())
