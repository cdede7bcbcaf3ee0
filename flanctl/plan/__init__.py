"""Spec -> Plan as pure functions (no ML imports): counts, compute, memory, mixture, evals, diff.

`Plan` (flanctl.plan.document) is the typed plan document and the only reader and writer of
`plan.json`; `make_plan` builds it from a loaded spec; `check_fresh` tells whether it is stale.
"""

from flanctl.plan.document import DEFAULT_PLAN_PATH, Plan, ResolvedModel, load_plan, plan_hash, save_plan
from flanctl.plan.freshness import check_fresh
from flanctl.plan.make import make_plan, resolve_model

__all__ = ["DEFAULT_PLAN_PATH", "Plan", "ResolvedModel", "check_fresh", "load_plan", "make_plan", "plan_hash", "resolve_model", "save_plan"]
