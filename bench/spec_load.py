"""Speed of the spec layer: import cost and load_spec cost, as ratios to references measured
in the same run (so the numbers mean the same on any machine).

    .venv/bin/python bench/spec_load.py

- import: `import flanctl.spec` (loader, checks, schema helpers) in a fresh interpreter vs
  importing only the pydantic schema `flanctl.spec.models` with yaml (the floor: pydantic must
  build the models) and vs a bare interpreter; median of RUNS runs.
- load: `load_spec(spec)` (extends + validation + cross-field checks + positions) vs
  `yaml.safe_load` + `Spec.model_validate` of the same merged data (no positions, no checks).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 9


def _fresh(code: str) -> float:
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _per_call(fn, n: int = 50) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main() -> None:
    bare = _fresh("pass")
    deps = _fresh("import yaml, flanctl.spec.models")
    spec_import = _fresh("import flanctl.spec; import flanctl.spec.schema")
    print(f"import: bare {bare * 1e3:.0f} ms, yaml+schema models {deps * 1e3:.0f} ms, flanctl.spec {spec_import * 1e3:.0f} ms")
    print(f"import ratio flanctl.spec / (yaml+schema models) = {spec_import / deps:.2f}")

    import yaml

    from flanctl.spec import Spec, load_spec

    spec_path = ROOT / "specs" / "flan_palm.yaml"
    if not spec_path.exists():
        spec_path = ROOT / "tests" / "malformed" / "bases" / "tiny_model.yaml"
    merged = load_spec(spec_path).data

    def reference():
        Spec.model_validate({**yaml.safe_load(yaml.safe_dump(merged)), "name": "x"})

    ours = _per_call(lambda: load_spec(spec_path))
    ref = _per_call(reference)
    print(f"load_spec({spec_path.relative_to(ROOT)}): {ours * 1e3:.2f} ms; safe_load+validate: {ref * 1e3:.2f} ms; ratio {ours / ref:.2f}")
    heavy = [m for m in ("keras", "jax", "tensorflow", "torch", "grain", "datasets", "numpy") if m in sys.modules]
    print(f"heavy modules imported: {heavy or 'none'}")


if __name__ == "__main__":
    main()
