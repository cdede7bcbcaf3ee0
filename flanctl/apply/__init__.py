"""The apply room: runs a Plan, data -> train -> eval, and is the only place that orchestrates
the other rooms. `apply_plan(plan, console)` does it all; `Stages` says what runs (tests swap
in their own trainer or none)."""

from flanctl.apply.run import apply_plan
from flanctl.apply.stages import Stages, default_stages

__all__ = ["Stages", "apply_plan", "default_stages"]
