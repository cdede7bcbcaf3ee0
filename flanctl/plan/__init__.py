"""Spec -> Plan as pure functions (no ML imports): counts, compute, memory, mixture, evals, diff."""

from flanctl.plan.document import DEFAULT_PLAN_PATH, check_fresh, load_plan, make_plan, plan_hash, save_plan

__all__ = ["DEFAULT_PLAN_PATH", "check_fresh", "load_plan", "make_plan", "plan_hash", "save_plan"]
