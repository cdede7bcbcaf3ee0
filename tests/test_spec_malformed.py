"""The malformed-spec corpus: each file in tests/malformed/ states, on its first line,

    # expect: [FILE:]LINE:COL: message fragment

the exact place (in FILE, default the case itself) and a fragment of the message of one of
the errors `load_spec` must raise for it. Helper bases live in tests/malformed/bases/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flanctl.errors import SpecError, SpecErrors
from flanctl.spec import load_spec

CORPUS = Path(__file__).resolve().parent / "malformed"
CASES = sorted(CORPUS.glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (?:(?P<file>[\w./-]+\.yaml):)?(?P<line>\d+):(?P<col>\d+): (?P<fragment>.+)$")


def _expectation(case: Path) -> tuple[str, int, int, str]:
    first = case.read_bytes().split(b"\n", 1)[0].decode()
    m = EXPECT.match(first)
    assert m, f"{case.name}: first line must be '# expect: LINE:COL: fragment'"
    return m["file"] or case.name, int(m["line"]), int(m["col"]), m["fragment"]


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_malformed_spec_reports_exact_place(case: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a Python tag that ran would leave a file here
    file, line, col, fragment = _expectation(case)
    with pytest.raises(SpecErrors) as info:
        load_spec(case)
    errors = info.value.errors
    for err in errors:  # every error is one line with a place
        assert "\n" not in str(err) and err.file
    hits = [e for e in errors if fragment in e.message]
    assert hits, f"no error contains {fragment!r}; got:\n{info.value}"
    places = [(Path(e.file).resolve(), e.line, e.col) for e in hits]
    assert ((CORPUS / file).resolve(), line, col) in places, f"expected {file}:{line}:{col}; got:\n{info.value}"
    assert not list(tmp_path.iterdir()), "the spec ran code"
    assert isinstance(info.value, SpecError) and info.value.exit_code == 2
