"""load_spec contracts: positions, extends merging, --set overrides, notes, hashing, names."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flanctl.errors import SpecError, SpecErrors
from flanctl.spec import LoadedSpec, Spec, load_spec, resolve_path
from flanctl.spec.extends import deep_merge


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def errors_of(path, overrides=()) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        load_spec(path, overrides)
    return [str(e) for e in info.value.errors]


TINY = "model: {family: palm, size: tiny}\n"


# ----------------------------------------------------------------------------- basics


def test_valid_spec_loads_with_defaults_and_name_from_stem(tmp_path):
    spec_file = write(tmp_path / "my_run.yaml", TINY + "train: {steps: 7, batch_size: 4}\n")
    loaded = load_spec(spec_file)
    assert isinstance(loaded, LoadedSpec) and isinstance(loaded.spec, Spec)
    assert loaded.spec.name == "my_run"
    assert loaded.spec.apiVersion == "flanctl/v1"
    assert loaded.spec.train.steps == 7 and loaded.spec.train.optimizer == "adafactor"
    assert loaded.path == spec_file and loaded.path.is_absolute()
    assert loaded.data == {"model": {"family": "palm", "size": "tiny"}, "train": {"steps": 7, "batch_size": 4}}
    assert loaded.notes == []
    assert len(loaded.text_hash) == 64


def test_explicit_name_wins_and_odd_stems_become_valid_names(tmp_path):
    assert load_spec(write(tmp_path / "a.yaml", "name: chosen\n" + TINY)).spec.name == "chosen"
    assert load_spec(write(tmp_path / "_my spec!.yaml", TINY)).spec.name == "my-spec-"


def test_relative_path_is_shown_as_given(tmp_path, monkeypatch):
    write(tmp_path / "sub" / "s.yaml", TINY + "train: {stpes: 1}\n")
    monkeypatch.chdir(tmp_path)
    assert errors_of("sub/s.yaml") == ["sub/s.yaml:2:9: unknown key 'stpes' in train; did you mean 'steps'?"]


def test_all_errors_are_reported_in_source_order(tmp_path):
    spec_file = write(tmp_path / "s.yaml", """
        model: {family: palm, size: tiny}
        train:
          steps: -1
          batch_size: x
        eval:
          suites: [bbh, nope]
        distribution: {mesh: {modle: 2}}
        """)
    errs = errors_of(spec_file)
    assert [e.split(": ", 1)[0].rsplit(":", 2)[1:] for e in errs] == [["3", "10"], ["4", "15"], ["6", "17"], ["7", "23"]]
    assert "did you mean 'model'?" in errs[3]


def test_unknown_key_without_close_match_lists_known_keys(tmp_path):
    (err,) = errors_of(write(tmp_path / "s.yaml", TINY + "zzz: 1\n"))
    assert err.endswith("unknown key 'zzz' in top level; known keys: apiVersion, name, model, mixture, train, distribution, eval, extends")


def test_wrong_api_version_is_an_error_missing_is_default(tmp_path):
    assert load_spec(write(tmp_path / "a.yaml", TINY)).spec.apiVersion == "flanctl/v1"
    (err,) = errors_of(write(tmp_path / "b.yaml", "apiVersion: v2\n" + TINY))
    assert err.endswith("b.yaml:1:13: unsupported apiVersion 'v2'; this flanctl reads 'flanctl/v1'")


def test_python_tags_are_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    spec_file = write(tmp_path / "evil.yaml", f"""
        model: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ["{marker}"]]
        """)
    (err,) = errors_of(spec_file)
    assert "could not determine a constructor for the tag" in err and "refused" in err
    assert not marker.exists()


def test_not_utf8_reports_the_byte_position(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"model:\n  size: \xff\xfe\n")
    (err,) = errors_of(path)
    assert err.endswith("s.yaml:2:9: not UTF-8 text (byte 0xff); save the spec as UTF-8")


def test_recursive_alias_is_an_error_not_a_hang(tmp_path):
    (err,) = errors_of(write(tmp_path / "s.yaml", "eval: &a {suites: *a}\n"))
    assert "recursive" in err or "suites" in err


def test_yaml_merge_keys_keep_positions(tmp_path):
    spec_file = write(tmp_path / "s.yaml", """
        model: {family: palm, size: tiny}
        defaults: &d {steps: 5}
        train:
          <<: *d
          batch_size: 0
        """)
    errs = errors_of(spec_file)
    assert any(e.endswith("2:1: unknown key 'defaults' in top level; known keys: apiVersion, name, model, mixture, train, distribution, eval, extends") for e in errs)
    assert any(e.endswith("5:15: train.batch_size: input should be greater than 0, got 0") for e in errs)


# ----------------------------------------------------------------------------- extends


def test_extends_deep_merges_mappings_and_replaces_lists(tmp_path):
    write(tmp_path / "bases" / "base.yaml", """
        model: {family: palm, size: tiny}
        train: {steps: 100, batch_size: 8, learning_rate: 0.003}
        eval: {suites: [mmlu, bbh], limit: 5}
        """)
    spec_file = write(tmp_path / "child.yaml", """
        extends: bases/base.yaml
        train: {steps: 20}
        eval: {suites: [tydiqa]}
        """)
    loaded = load_spec(spec_file)
    assert loaded.spec.train.steps == 20 and loaded.spec.train.batch_size == 8 and loaded.spec.train.learning_rate == 0.003
    assert loaded.spec.eval.suites == ["tydiqa"] and loaded.spec.eval.limit == 5
    assert "extends" not in loaded.data
    assert loaded.files == [(tmp_path / "bases" / "base.yaml").resolve(), spec_file.resolve()]
    assert loaded.spec.name == "child"


def test_extends_list_merges_left_to_right_and_bases_can_extend(tmp_path):
    write(tmp_path / "a.yaml", TINY + "train: {steps: 1, batch_size: 2}\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\ntrain: {steps: 2}\n")
    write(tmp_path / "c.yaml", "train: {steps: 3, seed: 9}\n")
    loaded = load_spec(write(tmp_path / "d.yaml", "extends: [b.yaml, c.yaml]\ntrain: {seed: 4}\n"))
    assert (loaded.spec.train.steps, loaded.spec.train.batch_size, loaded.spec.train.seed) == (3, 2, 4)


def test_error_in_extended_file_points_into_that_file(tmp_path):
    base = write(tmp_path / "base.yaml", "train:\n  batch_size: 8\n  dropuot: 0.1\n")
    (err,) = errors_of(write(tmp_path / "child.yaml", "extends: base.yaml\n" + TINY))
    assert err == f"{base}:3:3: unknown key 'dropuot' in train; did you mean 'dropout'?"


def test_value_overridden_by_child_points_at_child(tmp_path):
    write(tmp_path / "base.yaml", TINY + "train:\n  steps: 5\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\ntrain:\n  steps: -2\n")
    (err,) = errors_of(child)
    assert err == f"{child}:3:10: train.steps: input should be greater than 0, got -2"


def test_missing_and_cyclic_extends_are_errors_at_the_extends_line(tmp_path):
    child = write(tmp_path / "child.yaml", TINY + "extends: nothere.yaml\n")
    (err,) = errors_of(child)
    assert err.startswith(f"{child}:2:10: extended file not found: {tmp_path / 'nothere.yaml'}")
    a = write(tmp_path / "a.yaml", "extends: b.yaml\n")
    b = write(tmp_path / "b.yaml", TINY + "extends: [a.yaml]\n")
    (err,) = errors_of(a)
    assert err == f"{b}:2:11: extends cycle: a.yaml -> b.yaml -> a.yaml; remove one of these extends"


def test_extends_of_a_non_mapping_base(tmp_path):
    write(tmp_path / "empty.yaml", "# nothing\n")
    (err,) = errors_of(write(tmp_path / "c.yaml", "extends: empty.yaml\n"))
    assert "extended file empty.yaml is empty" in err or "is empty, not a mapping" in err


def test_deep_merge_rules():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert deep_merge(base, {"a": 5}) == {"a": 5, "d": 1}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs are not mutated


# ----------------------------------------------------------------------------- --set


def test_set_overrides_scalars_lists_and_list_items(tmp_path):
    spec_file = write(tmp_path / "s.yaml", TINY + "mixture:\n  collections:\n    - {name: muffin, proportion: 1}\n")
    loaded = load_spec(spec_file, ["train.steps=100", "eval.suites=[mmlu,bbh]", "mixture.collections.0.cap=7",
                                   "distribution.backend=torch", "train.remat=true"])
    assert loaded.spec.train.steps == 100 and loaded.spec.eval.suites == ["mmlu", "bbh"]
    assert loaded.spec.mixture.collections[0].cap == 7 and loaded.spec.distribution.backend == "torch"
    assert loaded.spec.train.remat is True
    assert loaded.data["train"] == {"steps": 100, "remat": True}
    assert loaded.overrides == ("train.steps=100", "eval.suites=[mmlu,bbh]", "mixture.collections.0.cap=7",
                                "distribution.backend=torch", "train.remat=true")


def test_set_errors_name_the_override(tmp_path):
    spec_file = write(tmp_path / "s.yaml", TINY)
    assert errors_of(spec_file, ["train.stpes=3"]) == ["--set train.stpes=3: unknown key 'stpes' in train; did you mean 'steps'?"]
    assert errors_of(spec_file, ["trian.steps=3"]) == ["--set trian.steps=3: unknown key 'trian' in top level; did you mean 'train'?"]
    assert errors_of(spec_file, ["train.steps=-4"]) == ["--set train.steps=-4: train.steps: input should be greater than 0, got -4"]
    assert errors_of(spec_file, ["train.steps"])[0].startswith("--set train.steps: expected --set section.field=VALUE")
    assert errors_of(spec_file, ["eval.suites=[mmlu"])[0].startswith("--set eval.suites=[mmlu: cannot read the value as YAML")
    assert errors_of(spec_file, ["mixture.collections.3.cap=1"]) == ["--set mixture.collections.3.cap=1: mixture.collections[3] does not exist: mixture.collections is not set"]
    with_list = write(tmp_path / "l.yaml", TINY + "mixture:\n  collections: [{name: cot, proportion: 1}]\n")
    assert errors_of(with_list, ["mixture.collections.1.cap=1"]) == ["--set mixture.collections.1.cap=1: mixture.collections[1] does not exist: the list has 1 item(s)"]


def test_set_replaces_a_bad_value_from_the_file(tmp_path):
    spec_file = write(tmp_path / "s.yaml", TINY + "train: {steps: 0}\n")
    assert load_spec(spec_file, ["train.steps=3"]).spec.train.steps == 3


# ----------------------------------------------------------------------------- notes, hash, paths


def test_proportions_are_normalised_with_a_note(tmp_path):
    spec_file = write(tmp_path / "s.yaml", TINY + "mixture:\n  collections:\n    - {name: muffin, proportion: 3}\n    - {name: cot, proportion: 1}\n")
    loaded = load_spec(spec_file)
    assert loaded.notes == ["mixture proportions summed to 4; normalised to 1"]
    assert [c.proportion for c in loaded.spec.mixture.collections] == [0.75, 0.25]
    assert loaded.data["mixture"]["collections"][0]["proportion"] == 3  # data stays as written


def test_text_hash_covers_extended_files_and_overrides(tmp_path):
    base = write(tmp_path / "base.yaml", TINY)
    child = write(tmp_path / "child.yaml", "extends: base.yaml\n")
    h1 = load_spec(child).text_hash
    assert load_spec(child).text_hash == h1
    assert load_spec(child, ["train.steps=3"]).text_hash != h1
    base.write_text(TINY + "train: {steps: 9}\n")
    assert load_spec(child).text_hash != h1


def test_resolve_path_is_relative_to_the_spec_folder(tmp_path):
    loaded = load_spec(write(tmp_path / "sub" / "s.yaml", TINY))
    assert resolve_path(loaded, "data/x.jsonl") == tmp_path / "sub" / "data" / "x.jsonl"
    assert resolve_path(loaded, "/abs/x") == Path("/abs/x")


def test_spec_is_frozen(tmp_path):
    loaded = load_spec(write(tmp_path / "s.yaml", TINY))
    with pytest.raises(Exception):
        loaded.spec.train.steps = 3  # type: ignore[misc]


def test_spec_error_string_and_exit_code():
    err = SpecError("bad", "f.yaml", 3, 4)
    assert str(err) == "f.yaml:3:4: bad" and err.exit_code == 2


def test_importing_and_loading_stays_framework_free(tmp_path):
    spec_file = write(tmp_path / "s.yaml", TINY)
    code = (
        "import sys, time; t = time.perf_counter(); from flanctl.spec import load_spec; "
        f"load_spec({str(spec_file)!r}); "
        "heavy = [m for m in ('keras', 'jax', 'tensorflow', 'torch', 'grain', 'datasets', 'numpy') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
