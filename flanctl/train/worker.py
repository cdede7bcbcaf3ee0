"""Child-process entry of `run_training`: `python -m flanctl.train.worker PLAN_JSON RUN_DIR`.

Exit 0 on success, 1 with a one-line error otherwise (the parent reports it).
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from flanctl.errors import FlanctlError
    from flanctl.runs import RunDir
    from flanctl.train.job import prepare_backend

    from flanctl.runtime import quiet_tensorflow_import

    quiet_tensorflow_import()
    plan_path, run_root = argv
    plan = json.loads(open(plan_path).read())
    try:
        prepare_backend(plan)
        from flanctl.train.trainer import train

        train(plan, RunDir(run_root))
    except FlanctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
