"""The installed package must hold every module: a plain (non-editable) `pip install .`
installs only the packages pyproject.toml lists, so a package missing there breaks
`flanctl` for every user who does not install from a checkout in editable mode."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _source_packages() -> set[str]:
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "flanctl").rglob("__init__.py")}
    found |= {"flanctl.backends"} if (ROOT / "backends" / "__init__.py").exists() else set()
    return found


def test_pyproject_lists_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = _source_packages() - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert not listed - _source_packages(), "pyproject.toml lists packages that do not exist"


def test_built_wheel_holds_every_module_and_template(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("flanctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "flanctl").rglob("*.py")}
    sources |= {"flanctl/backends/" + p.name for p in (ROOT / "backends").glob("*.py")}
    assert not sources - names, f"modules missing from the wheel: {sorted(sources - names)[:5]}"
    templates = {str(p.relative_to(ROOT)) for p in (ROOT / "flanctl" / "data" / "templates").glob("*.yaml")}
    assert templates and templates <= names
