"""The JSON Schema helper, the Markdown reference, and schema path navigation."""

from __future__ import annotations

import subprocess
import sys

import jsonschema
from flanctl.spec.field_paths import format_path, model_at, suggest
from flanctl.spec.models import Collection, Mesh, Spec, TrainSpec
from flanctl.spec.reference import markdown, rows
from flanctl.spec.schema import _models, json_schema


def test_schema_is_valid_draft_2020_12_and_strict():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    for name, definition in schema["$defs"].items():
        assert definition.get("additionalProperties") is False, name
        for field, prop in definition["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"


def test_schema_carries_factory_defaults():
    schema = json_schema()
    assert schema["properties"]["train"]["default"]["optimizer"] == "adafactor"
    assert schema["$defs"]["FewShot"]["properties"]["delimiters"]["default"][0] == ["Q: ", "A: "]
    assert schema["$defs"]["EvalSpec"]["properties"]["suites"]["default"] == []


def test_schema_accepts_defaults_and_refuses_unknown_keys():
    validator = jsonschema.Draft202012Validator(json_schema())
    assert not list(validator.iter_errors({}))
    assert not list(validator.iter_errors({"extends": ["a.yaml", "b.yaml"], "train": {"steps": 3}}))
    errors = list(validator.iter_errors({"train": {"steps": 0, "stpes": 1}}))
    assert {e.validator for e in errors} == {"exclusiveMinimum", "additionalProperties"}


def test_reference_has_one_row_per_field_of_every_model():
    table = list(rows())
    fields = {(section, field) for section, field, *_ in table}
    assert ("train", "steps") in fields and ("distribution", "mesh.data") in fields
    assert ("mixture", "collections[].user_tasks[].source.path") in fields
    assert ("(top level)", "extends") in fields
    # every field of every model appears under some path ending in its name
    names = {f.rsplit(".", 1)[-1].removesuffix("[]") for _, f in fields} | {section for section, _ in fields}
    for model in _models(Spec):
        assert set(model.model_fields) <= names, model.__name__
    steps = next(r for r in table if r[:2] == ("train", "steps"))
    assert steps[2:] == ("int > 0", "`1000`", "Optimizer steps.")
    backend = next(r for r in table if r[:2] == ("distribution", "backend"))
    assert backend[2] == "one of: jax, tensorflow, torch"


def test_reference_markdown_and_module_entry_point():
    text = markdown()
    lines = text.splitlines()
    assert lines[0] == "| section | field | type | default | meaning |"
    assert all(line.count(" | ") - line.count("\\|") == 4 for line in lines)
    out = subprocess.run([sys.executable, "-m", "flanctl.spec.reference"], capture_output=True, text=True, check=True)
    assert out.stdout == text


def test_field_path_helpers():
    assert format_path(("mixture", "collections", 0, "cap")) == "mixture.collections[0].cap"
    assert format_path(()) == "top level"
    assert model_at(("train",)) is TrainSpec
    assert model_at(("distribution", "mesh")) is Mesh
    assert model_at(("mixture", "collections", 3)) is Collection
    assert model_at(("train", "steps")) is None and model_at(("nope",)) is None
    assert suggest("stpes", ["steps", "seed"]) == "; did you mean 'steps'?"
    assert suggest("zzz", ["steps"]) == "; known keys: steps"
