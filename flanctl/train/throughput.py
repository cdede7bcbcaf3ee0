"""Tokens per second and model FLOP/s utilisation (MFU = 6 * N * tokens/s / peak FLOP/s).

Peak dense bf16 FLOP/s per device come from vendor sheets; the CPU figure is a nominal
number for a few cores, so CPU MFU is only a relative measure.
"""

from __future__ import annotations

from flanctl.catalog.devices import DEVICE_PEAK_FLOPS as PEAK_FLOPS
from flanctl.plan import Plan


def peak_flops(plan: Plan) -> float:
    """Peak FLOP/s of the whole job: the plan's device figure (its device table) times devices."""
    dist = plan.spec.distribution
    planned = ((plan.compute or {}).get("time") or {}).get("device_peak_flops")
    per_device = float(planned or PEAK_FLOPS.get(dist.device, 1e11))
    return per_device * dist.mesh.data * dist.mesh.model


def mfu(params: int, tokens_per_s: float, peak: float) -> float:
    """Model FLOP/s utilisation with the 6N rule (forward 2N, backward 4N per token)."""
    return 6.0 * params * tokens_per_s / peak if peak > 0 else 0.0
