"""The rooms as a test: docs/ARCHITECTURE.md's layering, checked on the real import graph.

Most rules are import-linter contracts in pyproject.toml (`[tool.importlinter]`); import-linter
reads every import statement, including those inside functions. Two things it cannot see are
checked by `room_crossings` below, a walk over the source with `ast`:

- `flanctl.backends` lives in backends/ (a mapped package dir), outside the graph import-linter
  builds from flanctl/. A backend imports only its framework, `flanctl.errors` and
  `flanctl.backends`; only train, apply, the CLI and `flanctl.runtime` import the backends.
- an import by name (`importlib.import_module("flanctl.train")`, `find_spec`, `__import__`) is
  not an import statement; one that reaches into another room is refused, so that every
  crossing is a plain import the contracts see.

Each check is also shown to fail on a deliberate violation in a copy of the tree.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Who may import `flanctl.backends` (besides the backends themselves).
BACKEND_IMPORTERS = {"train", "apply", "cli", "runtime"}
#: What a backend may import from flanctl.
BACKEND_MAY_IMPORT = {"backends", "errors"}
_BY_NAME = {"import_module", "find_spec", "__import__"}


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        exe = Path(shutil.which("lint-imports") or "lint-imports")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(exe), str(root / "pyproject.toml"), "--no-cache", "--no-logo"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "backends":
        parts = ["flanctl", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _room(module: str) -> str | None:
    """`flanctl.plan.mixture` -> `plan`; None outside flanctl."""
    parts = module.split(".")
    if parts[0] != "flanctl":
        return None
    return parts[1] if len(parts) > 1 else ""


def _imports(module: str, is_package: bool, tree: ast.AST):
    """(line, col, imported module, how) for every import in the file, at any depth."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, node.col_offset, alias.name, "import"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from flanctl import plan` imports flanctl.plan
                yield node.lineno, node.col_offset, f"{base}.{alias.name}" if base == "flanctl" else base, "import"
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
            arg = node.args[0]
            if name not in _BY_NAME:
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.lineno, node.col_offset, arg.value, "by name"
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                yield node.lineno, node.col_offset, str(arg.values[0].value), "by name"


def room_crossings(root: Path) -> list[str]:
    """`file:line:col: module -> imported (rule)` for each crossing import-linter cannot see."""
    found = []
    files = sorted((root / "flanctl").rglob("*.py")) + sorted((root / "backends").rglob("*.py"))
    for path in files:
        if "__pycache__" in path.parts:
            continue
        module = _module_name(root, path)
        room = _room(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, col, target, how in sorted(_imports(module, path.name == "__init__.py", tree)):
            target_room = _room(target)
            if target_room is None or target_room == room:
                continue
            rule = None
            if room == "backends" and target_room not in BACKEND_MAY_IMPORT:
                rule = f"a backend imports only its framework and flanctl.{{{', '.join(sorted(BACKEND_MAY_IMPORT))}}}"
            elif target_room == "backends" and room not in BACKEND_IMPORTERS:
                rule = f"only flanctl.{{{', '.join(sorted(BACKEND_IMPORTERS))}}} import the backends"
            elif how == "by name" and target_room:
                rule = "a room imports another room with an import statement, not by name"
            if rule:
                where = f"{path.relative_to(root)}:{line}:{col + 1}"
                found.append(f"{where}: {module} -> {target} ({rule})")
    return found


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "flanctl", root / "flanctl", ignore=ignore)
    shutil.copytree(ROOT / "backends", root / "backends", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _broken(result: subprocess.CompletedProcess) -> str:
    out = result.stdout + result.stderr
    return out[out.find("Broken contracts"):] if "Broken contracts" in out else out


# ------------------------------------------------------------------------------ the real tree


def test_import_contracts_hold():
    result = _lint_imports(ROOT)
    assert "Contracts:" in result.stdout, result.stdout + result.stderr  # the contracts ran
    assert result.returncode == 0, "a room imports what it may not:\n" + _broken(result)


def test_no_hidden_room_crossings():
    assert room_crossings(ROOT) == []


# ------------------------------------------------------------------ deliberate violations fail


@pytest.mark.parametrize(
    "room, code, offence",
    [
        ("plan", "def later():\n    import keras\n    return keras\n", "flanctl.plan._leak -> keras"),
        ("spec", "def later():\n    from numpy import zeros\n    return zeros\n", "flanctl.spec._leak -> numpy"),
        ("data", "from flanctl.models import layout_map\n", "flanctl.data._leak -> flanctl.models"),
        ("evals", "def later():\n    from flanctl import train\n    return train\n", "flanctl.evals._leak -> flanctl.train"),
    ],
)
def test_a_crossed_room_breaks_the_contracts(tmp_path, room, code, offence):
    root = _copy_tree(tmp_path)
    (root / "flanctl" / room / "_leak.py").write_text(code)
    result = _lint_imports(root)
    assert result.returncode != 0
    assert offence in result.stdout, _broken(result)


def test_a_cycle_inside_a_package_breaks_the_contracts(tmp_path):
    root = _copy_tree(tmp_path)
    pkg = root / "flanctl" / "catalog"
    (pkg / "_ping.py").write_text("def f():\n    from flanctl.catalog import _pong\n")
    (pkg / "_pong.py").write_text("from flanctl.catalog import _ping\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "No cycles are allowed in flanctl.catalog" in result.stdout, _broken(result)


def test_hidden_crossings_are_found(tmp_path):
    root = _copy_tree(tmp_path)
    (root / "flanctl" / "plan" / "_leak.py").write_text(
        "import importlib\n\n\ndef later():\n    return importlib.import_module('flanctl.train')\n")
    (root / "flanctl" / "spec" / "_leak.py").write_text("def later():\n    from flanctl.backends import get_backend\n")
    (root / "backends" / "_leak.py").write_text("def later():\n    from ..plan import load\n")
    found = "\n".join(room_crossings(root))
    assert "flanctl/plan/_leak.py:5:12: flanctl.plan._leak -> flanctl.train (a room imports another room" in found
    assert "flanctl/spec/_leak.py:2:5: flanctl.spec._leak -> flanctl.backends (only flanctl." in found
    assert "backends/_leak.py:2:5: flanctl.backends._leak -> flanctl.plan (a backend imports only" in found
