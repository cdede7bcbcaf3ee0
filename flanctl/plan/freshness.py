"""Is a saved plan still true? `check_fresh` compares it with the spec files and local inputs now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flanctl.errors import FlanctlError
from flanctl.plan.document import Plan
from flanctl.plan.inputs import local_inputs, trained_inputs


def check_fresh(plan: Plan, loader: Any = None) -> None:
    """Raise `FlanctlError` when the spec files or local inputs changed since planning.

    `loader(path, overrides) -> LoadedSpec` defaults to `flanctl.spec.load_spec`.
    """
    spec_path = Path(plan.spec_path)
    again = f"run `flanctl plan {spec_path}` again"
    if not spec_path.is_file():
        raise FlanctlError(f"stale plan: spec file {spec_path} no longer exists; {again}")
    if loader is None:
        from flanctl.spec import load_spec as loader
    try:
        loaded = loader(spec_path, list(plan.spec_overrides))
    except FlanctlError as exc:
        first = str(exc).splitlines()[0]
        raise FlanctlError(f"stale plan: {spec_path} no longer loads ({first}); fix it and {again}") from None
    if loaded.text_hash != plan.spec_hash:
        raise FlanctlError(f"stale plan: {spec_path} or a file it extends changed since it was planned; {again}")
    now = local_inputs(loaded.spec, spec_path.parent)
    before = plan.inputs
    made_by_apply = trained_inputs(loaded.spec)
    for name in sorted(set(now) | set(before)):
        if name in made_by_apply and name not in before:
            continue  # e.g. the SentencePiece model a previous apply trained from this very spec
        if now.get(name) != before.get(name):
            raise FlanctlError(f"stale plan: input {name} changed since it was planned; {again}")
