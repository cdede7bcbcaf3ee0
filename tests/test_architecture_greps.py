"""The renovation's invariants, checked on the source as `grep` would: family names are compared
only in the catalog and the family registry, `plan.json` is read only by the `Plan` type, and
one function sets the Keras backend."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.joinpath("flanctl").rglob("*.py"), *ROOT.joinpath("backends").rglob("*.py")])
FAMILY_NAMES = ("palm", "cont-palm", "u-palm", "t5", "preset")


def _code_lines(path: Path):
    """(line number, line) of a module without its comments (docstrings keep their text, which
    the patterns below do not match)."""
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        code = line.split("#", 1)[0]
        if code.strip():
            yield i, code


def _hits(pattern: re.Pattern, allowed: set[str]) -> list[str]:
    out = []
    for path in SOURCES:
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed:
            continue
        out += [f"{rel}:{i}: {line.strip()}" for i, line in _code_lines(path) if pattern.search(line)]
    return out


def test_family_names_are_compared_only_in_the_catalog_and_the_family_registry():
    names = "|".join(re.escape(n) for n in FAMILY_NAMES)
    compare = re.compile(rf"""(family\w*\s*(==|!=)\s*["']({names})["'])|(["']({names})["']\s*(==|!=)\s*\w*family)"""
                         r"|(family\w*\s+(not\s+)?in\s+(DECODER_FAMILIES|\(|\[|\{))|is_decoder_only\(")
    allowed = {p.relative_to(ROOT).as_posix() for p in ROOT.joinpath("flanctl", "catalog").rglob("*.py")}
    allowed.add("flanctl/models/families/__init__.py")
    assert _hits(compare, allowed) == []


def test_the_check_finds_a_family_comparison(tmp_path):
    """The pattern is not vacuous: it matches the comparisons the renovation removed."""
    names = "|".join(re.escape(n) for n in FAMILY_NAMES)
    compare = re.compile(rf"""family\w*\s*(==|!=)\s*["']({names})["']""")
    for line in ('if family == "t5":', 'if spec.model.family != "preset":', "elif family == 'palm':"):
        assert compare.search(line), line


def test_plan_json_is_read_only_by_the_plan_type():
    reads = re.compile(r"json\.loads?\(.*plan|plan\w*\.read_text\(|open\(\s*plan")
    assert _hits(reads, {"flanctl/plan/document.py"}) == []


def test_one_place_sets_the_keras_backend():
    sets = re.compile(r"""environ(\.setdefault\(|\[)\s*["']KERAS_BACKEND["']""")
    assert _hits(sets, {"flanctl/runtime.py"}) == []
    assert _hits(re.compile(r"""["']KERAS_BACKEND["']\s*:"""), set()) == []  # no env dicts for children either
