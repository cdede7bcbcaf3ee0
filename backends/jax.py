"""JAX backend: `keras.distribution` over a DeviceMesh built from the spec's (data, model) axes.

- one device: no distribution at all (Keras's plain path is fastest);
- `model == 1`, `data > 1`: `DataParallel` (batch split, weights replicated);
- `model > 1`: `ModelParallel` with the models room's `layout_map(family, mesh)` and the batch
  sharded on `data`;
- several processes (TPU pods, GPU clusters, or CPU processes in tests):
  `keras.distribution.initialize(coordinator, count, process_id)` first; on CPU the
  collectives go over gloo.

Checkpoint quirk: sharded or multi-process arrays are not fully addressable from one
process, so those runs save with orbax (`checkpoint_format` says which).
"""

from __future__ import annotations

import os

from flanctl.backends import LayoutRules, Placement, process_id_from_env
from flanctl.errors import FlanctlError


def prepare_environment(distribution: dict) -> None:
    """Set what must be set before jax starts: virtual CPU devices for a CPU mesh.

    Called by the train room before `import keras`; a no-op once jax has started.
    """
    procs = distribution.get("processes") or {}
    per_process = int(procs.get("devices_per_process", 1))
    if distribution.get("device", "cpu") == "cpu" and per_process > 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={per_process}".strip()


def discover_devices() -> list[str]:
    import jax

    return [f"{d.platform}:{d.id}" for d in jax.devices()]


def _initialize_processes(distribution: dict) -> tuple[int, int]:
    """Start the multi-controller runtime when the spec asks for several processes."""
    import jax

    procs = distribution.get("processes") or {}
    count = int(procs.get("count", 1))
    if count == 1:
        return 0, 1
    coordinator = procs.get("coordinator")
    if not coordinator:
        raise FlanctlError("distribution.processes.coordinator: set host:port of process 0 when processes.count > 1")
    process_id = process_id_from_env(-1)
    if not 0 <= process_id < count:
        raise FlanctlError(
            f"distribution.processes: set FLANCTL_PROCESS_ID to this process's rank (0..{count - 1}) on every host"
        )
    if distribution.get("device", "cpu") == "cpu":
        # CPU processes need an explicit collectives transport for cross-process all-reduce.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras

    # Must run before anything touches a device (even jax.process_count() would).
    if not jax.distributed.is_initialized():
        keras.distribution.initialize(job_addresses=coordinator, num_processes=count, process_id=process_id)
    return jax.process_index(), jax.process_count()


def _barrier(name: str) -> None:
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _sum_over_processes(value: float) -> float:
    import jax
    import numpy as np

    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return float(np.sum(multihost_utils.process_allgather(np.asarray(value, np.float32))))


def setup(distribution: dict, layout_rules: LayoutRules = None) -> Placement:
    """Initialise processes, build the mesh and install the keras distribution.

    `layout_rules()` gives the model family's sharding rules ((variable path regex, axes) pairs);
    it is called only for a model axis above 1."""
    import keras

    process_index, process_count = _initialize_processes(distribution)
    mesh_spec = distribution.get("mesh") or {}
    data, model = int(mesh_spec.get("data", 1)), int(mesh_spec.get("model", 1))
    devices = keras.distribution.list_devices()
    if data * model == 1 and process_count == 1:
        devices = devices[:1]  # a one-device run on a host with more devices uses the first
    if data * model != len(devices):
        raise FlanctlError(
            f"distribution.mesh: data={data} x model={model} needs {data * model} devices, but jax sees "
            f"{len(devices)} ({', '.join(devices[:4])}{', ...' if len(devices) > 4 else ''}); "
            "change the mesh or processes.devices_per_process"
        )
    placement = Placement(
        backend="jax",
        process_index=process_index,
        process_count=process_count,
        devices=devices,
        mesh=(data, model),
        sharded=len(devices) > 1,
        barrier=_barrier,
        sum_over_processes=_sum_over_processes,
    )
    if len(devices) == 1:
        keras.distribution.set_distribution(None)
        return placement
    mesh = keras.distribution.DeviceMesh(shape=(data, model), axis_names=("data", "model"), devices=devices)
    if model == 1:
        dist = keras.distribution.DataParallel(device_mesh=mesh)
    else:
        if layout_rules is None:
            raise FlanctlError("distribution.mesh.model > 1 needs the model family's sharding rules; this family has none (use mesh.model: 1)")
        layout_map = keras.distribution.LayoutMap(mesh)
        for pattern, axes in layout_rules():
            layout_map[pattern] = axes
        dist = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="data")
    keras.distribution.set_distribution(dist)
    placement.handle = dist
    return placement


def checkpoint_format(placement: Placement) -> str:
    return "orbax" if placement.sharded or placement.process_count > 1 else "npz"
