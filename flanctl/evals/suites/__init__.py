"""The eval suites, one module each, and the registry: spec name -> suite class (or group of
suites) and its catalog facts.

To add a suite: write `flanctl/evals/suites/<name>.py` with a `Suite` subclass (loading,
extraction, aggregation, and the options it takes in `from_options`), and add one line to
`REGISTRY`. Its facts (sizes, shots, chance, paper scores) live in `flanctl.catalog.suites`
so that `plan` can size it without importing this room; a test checks that the registry,
the catalog and the spec schema's `SuiteName` list the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from flanctl.catalog.suites import HEADLINE_SUITES, SUITES as FACTS, SuiteFacts
from flanctl.errors import FlanctlError
from flanctl.evals.suites.base import Suite
from flanctl.evals.suites.bbh import BBH, BBHCoT
from flanctl.evals.suites.builtin import Builtin, BuiltinCoT
from flanctl.evals.suites.mgsm import MGSM
from flanctl.evals.suites.mmlu import MMLU, MMLUCoT
from flanctl.evals.suites.tydiqa import TyDiQA


@dataclass(frozen=True)
class SuiteEntry:
    """One runnable suite: its class, and its facts from the catalog."""

    name: str
    cls: type[Suite]

    @property
    def facts(self) -> SuiteFacts:
        return FACTS[self.name]

    @property
    def members(self) -> tuple[str, ...]:
        return (self.name,)

    def create(self, options: dict[str, Any] | None = None) -> Suite:
        return self.cls.from_options(options or {})


@dataclass(frozen=True)
class SuiteGroup:
    """A name that stands for several suites, run one after the other and combined."""

    name: str
    members: tuple[str, ...]

    @property
    def facts(self) -> SuiteFacts:
        return FACTS[self.name]


def _suite(cls: type[Suite]) -> SuiteEntry:
    return SuiteEntry(cls.name, cls)


#: Spec name -> suite or group, in the order `--help` lists them.
REGISTRY: dict[str, SuiteEntry | SuiteGroup] = {
    entry.name: entry
    for entry in (
        _suite(MMLU),
        _suite(MMLUCoT),
        _suite(BBH),
        _suite(BBHCoT),
        _suite(TyDiQA),
        _suite(MGSM),
        _suite(Builtin),
        _suite(BuiltinCoT),
        # The paper's six held-out evaluations, the ones its normalized average is taken over.
        SuiteGroup("flan-held-out", HEADLINE_SUITES),
    )
}

SUITE_NAMES: tuple[str, ...] = tuple(REGISTRY)
#: The six suites of the paper's normalized average (what `flan-held-out` runs).
HELD_OUT_SIX: tuple[str, ...] = REGISTRY["flan-held-out"].members


def lookup(name: str) -> SuiteEntry | SuiteGroup:
    """The registry entry of `name`, or a one-line error listing the names there are."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise FlanctlError(f"unknown suite {name!r}; choose from {', '.join(SUITE_NAMES)}") from None


def expand(names: Iterable[str]) -> list[str]:
    """Suite names with groups replaced by their members, each suite once, in order."""
    out: list[str] = []
    for name in names:
        for member in lookup(name).members:
            if member not in out:
                out.append(member)
    return out


def make_suite(name: str, **options: Any) -> Suite:
    """A fresh suite object (suites keep per-run state such as the prompt source); `options`
    are the run options (`method`, `cot_prompts`, `split`, `builtin_tasks`, ...), each suite
    reading those it takes."""
    entry = lookup(name)
    if isinstance(entry, SuiteGroup):
        raise FlanctlError(f"{name} is a group of suites ({', '.join(entry.members)}); build its members one by one")
    return entry.create(options)
