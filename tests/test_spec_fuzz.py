"""Property-based fuzzing of the loader: whatever the input, `load_spec` returns a valid
`LoadedSpec` or raises `SpecError` whose lines are all `place: message` - never anything else."""

from __future__ import annotations

import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flanctl.errors import SpecError, SpecErrors
from flanctl.spec import LoadedSpec, Spec, load_spec
from flanctl.spec.schema import json_schema

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _schema_keys() -> list[str]:
    """Every property name in the schema, so random data often hits real fields."""
    names: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json_schema())
    return sorted(names)


KEYS = _schema_keys()
SCALARS = (
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8) | st.sampled_from(["palm", "tiny", "t5", "small", "mmlu", "muffin", "jax", "1e-3", "flanctl/v1"])
)
KEY = st.sampled_from(KEYS) | st.text(max_size=6) | st.integers(-3, 3)
DATA = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEY, kids, max_size=5), max_leaves=25)
TOKENS = [
    "model:", "train:", "mixture:", "eval:", "distribution:", " steps: ", "collections:", "extends: ", "name: ",
    "\n", "\n  ", "\n    ", "- ", "{", "}", "[", "]", ", ", ": ", "'", '"', "#", "\t", "&a ", "*a", "<<: ",
    "---", "...", "!!python/object/apply:os.system ['true']", "!!str ", "!!binary ", "%YAML 1.1\n", "? ",
    "|\n", ">\n", "1", "-1", "0", "1.5", "null", "true", "~", "palm", "tiny", "\x00", "\ufeff", "é",
]
YAMLISH = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


def _check_outcome(path, overrides=()) -> None:
    try:
        result = load_spec(path, overrides)
    except SpecErrors as exc:
        assert exc.errors, "SpecErrors without errors"
        for err in exc.errors:
            line = str(err)
            assert "\n" not in line and line.strip(), repr(line)
            assert err.file, f"error without a place: {line!r}"
            assert line.startswith(err.file)
        return
    except SpecError as exc:  # a single error is fine too, as long as it is one line with a place
        assert "\n" not in str(exc) and exc.file
        return
    assert isinstance(result, LoadedSpec) and isinstance(result.spec, Spec)
    for c in result.spec.mixture.collections:
        assert math.isfinite(c.proportion)


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text_never_escapes(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fz") / "spec.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check_outcome(path)


@FUZZ
@given(text=YAMLISH)
def test_yaml_like_text_never_escapes(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fz") / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    _check_outcome(path)


@FUZZ
@given(data=DATA, overrides=st.lists(st.text(max_size=20) | st.sampled_from(
    ["train.steps=3", "eval.suites=[mmlu]", "model.size=tiny", "mixture.collections.0.cap=2", "a.b=c", "train=5"]), max_size=3))
def test_random_data_dumped_to_yaml_never_escapes(tmp_path_factory, data, overrides):
    path = tmp_path_factory.mktemp("fz") / "spec.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    _check_outcome(path, overrides)


@FUZZ
@given(steps=st.integers(-5, 10**9), batch=st.integers(-2, 4096), data_axis=st.integers(-1, 64),
       model_axis=st.integers(-1, 16), devices=st.integers(-1, 64), family=st.sampled_from(["palm", "t5", "u-palm"]))
def test_near_valid_specs_never_escape(tmp_path_factory, steps, batch, data_axis, model_axis, devices, family):
    spec = {
        "model": {"family": family, "size": "tiny"},
        "train": {"steps": steps, "batch_size": batch},
        "distribution": {"mesh": {"data": data_axis, "model": model_axis}, "processes": {"devices_per_process": devices}},
    }
    path = tmp_path_factory.mktemp("fz") / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    _check_outcome(path)
