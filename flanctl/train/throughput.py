"""Tokens per second and model FLOP/s utilisation (MFU = 6 * N * tokens/s / peak FLOP/s).

Peak dense bf16 FLOP/s per device come from vendor sheets; the CPU figure is a nominal
number for a few cores, so CPU MFU is only a relative measure.
"""

from __future__ import annotations

from flanctl.catalog.devices import DEVICE_PEAK_FLOPS as PEAK_FLOPS


def peak_flops(plan: dict) -> float:
    """Peak FLOP/s of the whole job: the plan's figure when it has one, else our table."""
    compute = plan.get("compute") or {}
    for key in ("peak_flops", "peak_flops_total"):
        if compute.get(key):
            return float(compute[key])
    dist = plan.get("spec", {}).get("distribution", {})
    mesh = dist.get("mesh") or {}
    devices = int(mesh.get("data", 1)) * int(mesh.get("model", 1))
    planned = (compute.get("time") or {}).get("device_peak_flops")  # the plan room's device table
    per_device = float(planned or PEAK_FLOPS.get(dist.get("device", "cpu"), 1e11))
    return per_device * devices


def mfu(params: int, tokens_per_s: float, peak: float) -> float:
    """Model FLOP/s utilisation with the 6N rule (forward 2N, backward 4N per token)."""
    return 6.0 * params * tokens_per_s / peak if peak > 0 else 0.0
