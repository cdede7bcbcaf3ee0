"""Child-process entry of apply's train stage: `python -m flanctl.apply.worker PLAN_JSON RUN_DIR`.

Exit 0 on success, 130 when Ctrl-C stopped it (state.json says at which step), 1 with a
one-line error otherwise (the parent reports it).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from flanctl.apply.stages import periodic_eval
    from flanctl.errors import FlanctlError
    from flanctl.plan import Plan
    from flanctl.runs import RunDir
    from flanctl.runs.interrupts import EXIT_INTERRUPTED, Interrupted

    plan_path, run_root = argv
    try:
        plan = Plan.load(plan_path)
        run = RunDir(run_root)
        from flanctl.train import run_training

        run_training(plan, run, on_step=periodic_eval(plan, run))
    except Interrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except FlanctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
