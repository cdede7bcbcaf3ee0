"""PyTorch backend: one device, or DDP-style data parallelism over several processes.

Several processes join a `torch.distributed` group (gloo on CPU, nccl on GPU) at the
spec's coordinator; the train loop then all-reduces gradients across the group after every
backward pass, as DistributedDataParallel does, without wrapping the Keras model. The
gradients are summed, not averaged: each rank's loss is already its tokens' share of the
global step's token mean (the trainer divides by the target tokens of all ranks).

Checkpoint quirk: Keras variables on torch are `torch.nn.Parameter`s; the npz checkpoint
stores their CPU copies, and every rank holds the same values, so rank 0 writes them.
"""

from __future__ import annotations

from flanctl.backends import LayoutRules, Placement, process_id_from_env
from flanctl.errors import FlanctlError


def prepare_environment(distribution: dict) -> None:
    """Nothing to set before torch starts."""


def discover_devices() -> list[str]:
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu:0"]


def _barrier(name: str) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def setup(distribution: dict, layout_rules: LayoutRules = None) -> Placement:
    import torch

    procs = distribution.get("processes") or {}
    count = int(procs.get("count", 1))
    mesh_spec = distribution.get("mesh") or {}
    if int(mesh_spec.get("model", 1)) > 1:
        raise FlanctlError(
            "distribution.mesh.model: model parallelism needs backend jax; torch runs one device per process "
            "(set mesh.model: 1 or backend: jax)"
        )
    rank = 0
    if count > 1:
        import torch.distributed as dist

        coordinator = procs.get("coordinator")
        if not coordinator:
            raise FlanctlError("distribution.processes.coordinator: set host:port of process 0 when processes.count > 1")
        rank = process_id_from_env(-1)
        if not 0 <= rank < count:
            raise FlanctlError(f"distribution.processes: set FLANCTL_PROCESS_ID to this process's rank (0..{count - 1})")
        if not dist.is_initialized():
            dist.init_process_group(
                "nccl" if torch.cuda.is_available() else "gloo",
                init_method=f"tcp://{coordinator}",
                rank=rank,
                world_size=count,
            )
    return Placement(
        backend="torch",
        process_index=rank,
        process_count=count,
        devices=discover_devices(),
        mesh=(count, 1),
        sharded=False,
        barrier=_barrier,
        train_step=ddp_train_step if count > 1 else None,
        sum_over_processes=_sum_over_processes,
    )


def ddp_train_step(model, features, targets, sample_weight) -> float:
    """Keras's torch train step with DDP's gradient all-reduce between backward and update.

    Each rank computes the summed, token-normalised loss of its shard (`sample_weight` is
    `loss_mask / global step tokens`); gradients and losses are summed over ranks, so every
    rank applies the gradient of the global token mean and the replicas stay identical.
    """
    import keras
    import torch

    x = {k: keras.ops.convert_to_tensor(v) for k, v in features.items()}
    y, w = keras.ops.convert_to_tensor(targets), keras.ops.convert_to_tensor(sample_weight)
    model.zero_grad()
    logits = model(x, training=True)
    loss = model.compute_loss(x=x, y=y, y_pred=logits, sample_weight=w, training=True)
    loss.backward()
    variables = model.trainable_weights
    grads = [v.value.grad if v.value.grad is not None else torch.zeros_like(v.value) for v in variables]
    all_reduce_sum(grads)
    with torch.no_grad():
        model.optimizer.apply(grads, variables)
    total = loss.detach().clone()
    all_reduce_sum([total])
    return float(total)


def all_reduce_sum(tensors) -> None:
    """Sum tensors in place across the process group (no-op without one)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)


def _sum_over_processes(value: float) -> float:
    import torch

    total = torch.tensor([float(value)], dtype=torch.float64)
    all_reduce_sum([total])
    return float(total[0])


def checkpoint_format(placement: Placement) -> str:
    return "npz"
