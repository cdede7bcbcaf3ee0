"""Accelerator facts (for the plan and the trainer's MFU): memory per device and peak dense bf16 FLOP/s.

Vendor datasheet numbers (dense, no sparsity). The CPU numbers are rough: memory is this
host's RAM when it can be read, and the FLOP/s is a nominal figure for the plan's time
estimate only. It is below what one float32 matmul reaches on two modern cores (~2.3e11
measured), so the trainer does not use it: on CPU it measures the peak in-process
(`flanctl.train.throughput.measured_cpu_peak_flops`) and reports MFU relative to that.
"""

from __future__ import annotations

import os

GiB = 2**30

#: device kind -> bytes of memory per device (None: read from the host).
DEVICE_MEMORY: dict[str, int | None] = {
    "cpu": None,
    "h100": 80 * GiB,
    "h200": 141 * 10**9,
    "a100": 80 * GiB,
    "tpu-v4": 32 * GiB,
    "tpu-v5e": 16 * GiB,
    "tpu-v5p": 95 * GiB,
}

#: device kind -> peak dense bf16 FLOP/s per device.
DEVICE_PEAK_FLOPS: dict[str, float] = {
    "cpu": 1e11,  # nominal, for plan estimates; training MFU on CPU uses a measured matmul peak
    "h100": 989e12,
    "h200": 989e12,
    "a100": 312e12,
    "tpu-v4": 275e12,
    "tpu-v5e": 197e12,
    "tpu-v5p": 459e12,
}

CPU_DEFAULT_MEMORY = 24 * GiB


def host_memory_bytes() -> int:
    """This host's physical RAM, or 24 GiB when the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return CPU_DEFAULT_MEMORY


def device_memory_bytes(kind: str) -> int:
    """Memory of one device of `kind` in bytes."""
    value = DEVICE_MEMORY[kind]
    return host_memory_bytes() if value is None else value


def device_peak_flops(kind: str) -> float:
    """Peak FLOP/s of one device of `kind`."""
    return DEVICE_PEAK_FLOPS[kind]
