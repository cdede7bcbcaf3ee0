"""One module per Keras backend: device discovery, multi-process start, placement, checkpoint quirks.

`get_backend(name)` returns the module for `distribution.backend`; every module offers the
same three functions, so the train room never branches on the backend name:

- `discover_devices() -> list[str]`: the devices this process can see, as short strings.
- `setup(distribution: dict, layout_rules=None) -> Placement`: start multi-process if asked,
  build the mesh / strategy, and return where the model and batches go; `layout_rules()` gives
  the model family's sharding rules when the mesh has a model axis. Call it after
  `KERAS_BACKEND` is set and before the model is built.
- `checkpoint_format(placement) -> "npz" | "orbax"`: how this backend's variables are saved.

The modules import their framework lazily, so `import flanctl.backends` stays cheap.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from flanctl.errors import FlanctlError

BACKENDS = ("jax", "tensorflow", "torch")

#: A model family's sharding rules, asked for only when the mesh has a model axis:
#: () -> ((variable path regex, axis name or None per dimension), ...).
LayoutRules = Callable[[], tuple[tuple[str, tuple], ...]] | None


@dataclass
class Placement:
    """Where a job runs: this process's rank, the mesh, and the scope to build the model in."""

    backend: str
    process_index: int = 0
    process_count: int = 1
    devices: list[str] = field(default_factory=list)
    mesh: tuple[int, int] = (1, 1)
    # True when variables are split across devices or processes (orbax checkpoints on jax).
    sharded: bool = False
    # Context manager the model and optimizer are created in (tf.distribute strategy scope).
    scope: Callable[[], Any] = contextlib.nullcontext
    # Blocks until every process reaches the same point (no-op with one process).
    barrier: Callable[[str], None] = lambda name: None
    # Sum of a number over all processes (identity with one process): the trainer divides
    # the loss by the target tokens of the whole global step, not of this process's share.
    sum_over_processes: Callable[[float], float] = lambda value: value
    # Replaces Keras's train_on_batch when the backend must step itself (torch DDP):
    # fn(model, features, targets, sample_weight) -> loss (float), where the weights are
    # already normalised by the global step's target tokens (the summed loss is the mean).
    train_step: Callable[..., float] | None = None
    # Backend object kept for later calls (the strategy, the keras distribution, ...).
    handle: Any = None

    @property
    def is_chief(self) -> bool:
        """Process 0 writes the shared files (metrics, state, export)."""
        return self.process_index == 0


def get_backend(name: str):
    """The backend module for `name` (jax, tensorflow or torch)."""
    if name not in BACKENDS:
        raise FlanctlError(f"distribution.backend: unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    module = name  # backends/jax.py etc.; absolute imports inside them still reach the real frameworks
    return importlib.import_module(f"flanctl.backends.{module}")


def process_id_from_env(default: int = 0) -> int:
    """This process's rank: FLANCTL_PROCESS_ID, else the launcher's usual variables."""
    import os

    for var in ("FLANCTL_PROCESS_ID", "JAX_PROCESS_ID", "RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        if os.environ.get(var, "").strip().isdigit():
            return int(os.environ[var])
    return default
