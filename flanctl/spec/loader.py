"""`load_spec`: spec file -> extends merged -> `--set` applied -> schema -> cross-field checks.

Every problem found is collected and raised together as `SpecErrors`, each one line
`file:line:col: message`. Nothing here imports an ML framework.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from flanctl.errors import SpecError, SpecErrors
from flanctl.spec.checks import cross_field_errors, normalised
from flanctl.spec.error_locations import validation_errors
from flanctl.spec.extends import SourceTree, display_path, read_spec_file
from flanctl.spec.models import Spec
from flanctl.spec.overrides import apply_override, parse_override
from flanctl.spec.yaml_positions import Positions


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec and where it came from.

    `spec` has mixture proportions normalised to 1 when `mixture.normalize` is on (a note
    says so); `data` is the merged plain data as written (after `extends` and `--set`).
    """

    spec: Spec
    path: Path
    data: dict
    text_hash: str
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the spec file and every extended file
    overrides: tuple[str, ...] = ()
    positions: Positions = field(default_factory=dict, repr=False, compare=False)


def default_name(path: Path) -> str:
    """The run name when the spec gives none: the file's stem, made a valid name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).lstrip("_.-")
    return name or "spec"


def _text_hash(files: list[tuple[Path, bytes]], overrides: Iterable[str]) -> str:
    # Contents only (not absolute paths), so that moving the project keeps plans fresh.
    h = hashlib.sha256()
    for _, raw in files:
        h.update(b"file\0" + hashlib.sha256(raw).digest())
    for o in overrides:
        h.update(b"--set\0" + o.encode() + b"\0")
    return h.hexdigest()


def load_spec(path: str | os.PathLike, overrides: Iterable[str] = ()) -> LoadedSpec:
    """Load, merge, override and validate a spec; raise `SpecErrors` listing every problem."""
    overrides = tuple(overrides)
    given = Path(os.fspath(path))
    absolute = Path(os.path.abspath(os.path.expanduser(given)))
    shown = str(given) if not given.is_absolute() else display_path(absolute)
    try:
        tree = read_spec_file(absolute.resolve() if absolute.exists() else absolute, shown)
    except SpecErrors:
        raise
    except SpecError as exc:
        raise SpecErrors([exc]) from None

    errors: list[SpecError] = []
    tree = _apply_overrides(tree, overrides, errors)
    data = tree.data
    if not isinstance(data, dict):
        root = tree.positions.get(())
        line, col = (root.value.line, root.value.col) if root else (1, 1)
        what = "empty" if data is None else f"a {type(data).__name__} ({_short(data)})"
        raise SpecErrors([SpecError(f"the spec is {what}; it must be a mapping of sections "
                                    "(apiVersion, model, mixture, train, distribution, eval)", shown, line, col)] + errors)

    payload = dict(data)
    if payload.get("name") is None:
        payload["name"] = default_name(given)
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(payload)
    except ValidationError as exc:
        errors.extend(validation_errors(exc, tree.positions))
    except (RecursionError, ValueError, TypeError) as exc:  # pathological data pydantic cannot walk
        errors.append(SpecError(f"cannot validate the spec: {type(exc).__name__}", shown, 1, 1))
    notes: list[str] = []
    if spec is not None:
        check_errors, notes = cross_field_errors(spec, tree.positions)
        errors.extend(check_errors)
    if errors:
        raise SpecErrors(sorted(errors, key=_source_order))
    assert spec is not None
    return LoadedSpec(
        spec=normalised(spec),
        path=absolute,
        data=data,
        text_hash=_text_hash(tree.files, overrides),
        notes=notes,
        files=[p for p, _ in tree.files],
        overrides=overrides,
        positions=tree.positions,
    )


def _apply_overrides(tree: SourceTree, overrides: tuple[str, ...], errors: list[SpecError]) -> SourceTree:
    for text in overrides:
        try:
            path, value, mark = parse_override(text)
            tree = apply_override(tree, path, value, mark)
        except SpecError as exc:
            errors.append(exc)
    return tree


def _source_order(err: SpecError) -> tuple:
    """Errors in reading order: files before `--set` overrides, then by line and column."""
    return (str(err.file).startswith("--set"), str(err.file), err.line or 0, err.col or 0)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def resolve_path(loaded: LoadedSpec, p: str | os.PathLike) -> Path:
    """A path written in the spec, relative to the spec file's folder (absolute paths kept)."""
    candidate = Path(os.path.expanduser(os.fspath(p)))
    return candidate if candidate.is_absolute() else loaded.path.parent / candidate


@dataclass(frozen=True)
class FileCheck:
    """The outcome of validating one spec file: the loaded spec, or its errors."""

    path: str
    loaded: LoadedSpec | None
    errors: list[SpecError]

    @property
    def ok(self) -> bool:
        return self.loaded is not None


def check_files(paths: Iterable[str | os.PathLike], overrides: Iterable[str] = ()) -> list[FileCheck]:
    """Validate several spec files (with the same overrides); never raises for an invalid spec."""
    overrides = tuple(overrides)
    out = []
    for p in paths:
        try:
            out.append(FileCheck(os.fspath(p), load_spec(p, overrides), []))
        except SpecErrors as exc:
            out.append(FileCheck(os.fspath(p), None, list(exc.errors)))
        except SpecError as exc:
            out.append(FileCheck(os.fspath(p), None, [exc]))
    return out
