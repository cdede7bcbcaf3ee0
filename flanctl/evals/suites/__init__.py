"""The eval suites, one module each; `make_suite(name)` builds one by its spec name."""

from __future__ import annotations

from flanctl.errors import FlanctlError

SUITE_NAMES = ("mmlu", "mmlu-cot", "bbh", "bbh-cot", "tydiqa", "mgsm", "builtin", "flan-held-out")
#: The six suites of the paper's normalized average (`flan-held-out` runs these).
HELD_OUT_SIX = ("mmlu", "mmlu-cot", "bbh", "bbh-cot", "tydiqa", "mgsm")


def make_suite(name: str, **options):
    """A fresh suite object (suites keep per-run state such as the prompt source)."""
    if name in ("mmlu", "mmlu-cot"):
        from flanctl.evals.suites.mmlu import MMLU, MMLUCoT

        return (MMLU if name == "mmlu" else MMLUCoT)(**options)
    if name in ("bbh", "bbh-cot"):
        from flanctl.evals.suites.bbh import BBH, BBHCoT

        return (BBH if name == "bbh" else BBHCoT)()
    if name == "tydiqa":
        from flanctl.evals.suites.tydiqa import TyDiQA

        return TyDiQA()
    if name == "mgsm":
        from flanctl.evals.suites.mgsm import MGSM

        return MGSM()
    if name == "builtin":
        from flanctl.evals.suites.builtin import Builtin

        return Builtin(**options)
    raise FlanctlError(f"unknown suite {name!r}; choose from {', '.join(SUITE_NAMES)}")
