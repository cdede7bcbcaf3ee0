"""A Markdown reference of every spec field, rendered from the JSON Schema.

`python -m flanctl.spec.reference` prints it (the README's spec reference). One table, one
row per leaf field: section, field (dotted below the section; `[]` marks list items), type,
default, and meaning. Because it is rendered from the schema, it cannot drift from the code.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from flanctl.spec.schema import json_schema

_SECTION_NONE = "(top level)"


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if ref else node


def _non_null(node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the non-null alternative of an `X | None`, whether null is allowed)."""
    options = node.get("anyOf")
    if options:
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == 1:
            return rest[0], len(rest) < len(options)
    return node, False


def type_text(node: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short human type: `int > 0`, `one of: a, b`, `list of str`, `section`, `str or null`."""
    inner, nullable = _non_null(node)
    text = _plain_type(inner, defs)
    return f"{text} or null" if nullable else text


def _plain_type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        return "section"
    if "enum" in node:
        return "one of: " + ", ".join(str(v) for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "anyOf" in node:
        return " or ".join(_plain_type(o, defs) for o in node["anyOf"])
    kind = node.get("type")
    if kind == "array":
        if "prefixItems" in node:
            return "(" + ", ".join(_plain_type(i, defs) for i in node["prefixItems"]) + ")"
        items = node.get("items", {})
        return "list of " + ("sections" if "$ref" in items else _plain_type(items, defs))
    if kind == "object":
        values = node.get("additionalProperties")
        return f"map of str to {_plain_type(values, defs)}" if isinstance(values, dict) else "map"
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}
    text = names.get(kind, str(kind))
    bounds = [(k, s) for k, s in (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"), ("maximum", "<=")) if k in node]
    if bounds:
        text += " " + ", ".join(f"{s} {node[k]}" for k, s in bounds)
    if "pattern" in node:
        text += f" matching `{node['pattern']}`"
    return text


def _default_text(node: dict[str, Any], required: bool) -> str:
    if "default" not in node:
        return "required" if required else "(none)"
    value = node["default"]
    if isinstance(value, dict):
        return "(see fields)" if value else "{}"
    return "`" + json.dumps(value) + "`"


def rows(schema: dict[str, Any] | None = None) -> Iterator[tuple[str, str, str, str, str]]:
    """(section, field, type, default, meaning) for every leaf field, in schema order."""
    schema = schema or json_schema()
    defs = schema.get("$defs", {})
    for name, node in schema["properties"].items():
        target, _ = _non_null(node)
        if "$ref" in target:
            yield from _walk(name, "", _resolve(target, defs), defs)
        else:
            required = name in schema.get("required", [])
            yield (_SECTION_NONE, name, type_text(node, defs), _default_text(node, required), node.get("description", ""))


def _walk(section: str, prefix: str, model: dict[str, Any], defs: dict[str, Any]) -> Iterator[tuple[str, str, str, str, str]]:
    for name, node in model.get("properties", {}).items():
        field = f"{prefix}{name}"
        target, _ = _non_null(node)
        items = target.get("items", {}) if target.get("type") == "array" else {}
        meaning = node.get("description", "")
        default = _default_text(node, name in model.get("required", []))
        if "$ref" in target:
            yield (section, field, type_text(node, defs), default, meaning)
            yield from _walk(section, f"{field}.", _resolve(target, defs), defs)
        elif "$ref" in items:
            yield (section, field, type_text(node, defs), default, meaning)
            yield from _walk(section, f"{field}[].", _resolve(items, defs), defs)
        else:
            yield (section, field, type_text(node, defs), default, meaning)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(schema: dict[str, Any] | None = None) -> str:
    """The reference as one Markdown table."""
    lines = ["| section | field | type | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for row in rows(schema):
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
