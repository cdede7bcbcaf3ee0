"""Tokens per second and model FLOP/s utilisation (MFU = 6 * N * tokens/s / peak FLOP/s).

Peak dense bf16 FLOP/s per device come from vendor sheets (`flanctl.catalog.devices`). A CPU
has no such figure that means anything here (cores, vector units and clocks vary, and the
catalog's nominal 1e11 is below what one float32 matmul reaches on two cores), so on the "cpu"
device the trainer's peak is *measured*: the best FLOP/s of a float32 matmul on the Keras
backend, once per process (`measured_cpu_peak_flops`). CPU MFU is therefore the model's
FLOP/s relative to what one large matmul achieves on this host, not to a hardware peak.
The plan's time estimate keeps the catalog's nominal figure (it runs without ML frameworks).
"""

from __future__ import annotations

import functools
import time

from flanctl.catalog.devices import DEVICE_PEAK_FLOPS as PEAK_FLOPS
from flanctl.plan import Plan

#: Side of the square float32 matmul that measures a CPU's peak (2 GFLOP: ~10 ms on 2 cores).
CPU_PEAK_MATMUL = 1024


@functools.cache
def measured_cpu_peak_flops(n: int = CPU_PEAK_MATMUL, repeats: int = 5) -> float:
    """Best FLOP/s of one float32 `n x n @ n x n` matmul on the Keras backend in this process
    (measured on first use, then cached): the CPU "peak" that CPU MFU is relative to."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32))
    b = keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # compile / warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # the copy back makes it synchronous
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / max(best, 1e-9)


def peak_flops(plan: Plan) -> float:
    """Peak FLOP/s of the whole job. Accelerators: the plan's device figure (its device table)
    times devices. CPU: this process's measured matmul rate times processes (virtual CPU
    devices share the host's cores, so they add nothing)."""
    dist = plan.spec.distribution
    if dist.device == "cpu":
        return measured_cpu_peak_flops() * dist.processes.count
    planned = ((plan.compute or {}).get("time") or {}).get("device_peak_flops")
    per_device = float(planned or PEAK_FLOPS.get(dist.device, 1e11))
    return per_device * dist.mesh.data * dist.mesh.model


def mfu(params: int, tokens_per_s: float, peak: float) -> float:
    """Model FLOP/s utilisation with the 6N rule (forward 2N, backward 4N per token)."""
    return 6.0 * params * tokens_per_s / peak if peak > 0 else 0.0
