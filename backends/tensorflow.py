"""TensorFlow backend: `tf.distribute` strategies.

TPUStrategy when a TPU is attached, MultiWorkerMirroredStrategy for several processes
(TF_CONFIG set by the launcher), MirroredStrategy over several local GPUs, and the default
strategy otherwise. The model and optimizer are built inside `placement.scope()`.

Checkpoint quirk: variables created under a strategy are mirrored; reading them with
`numpy()` returns the replica-0 value, which is what the npz checkpoint stores.
"""

from __future__ import annotations

from flanctl.backends import LayoutRules, Placement
from flanctl.errors import FlanctlError


def prepare_environment(distribution: dict) -> None:
    """Nothing to set before TensorFlow starts."""


def discover_devices() -> list[str]:
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices()]


def _tpu_strategy():
    """A TPUStrategy when a TPU is reachable, else None."""
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None
    return tf.distribute.TPUStrategy(resolver)


def _summer(strategy, count: int):
    """`sum_over_processes` for the placement: identity for one worker, else a collective sum."""
    if count == 1:
        return lambda value: value

    def over_workers(value: float) -> float:
        import tensorflow as tf

        # Every replica contributes value / (replicas on its worker), so the SUM over all
        # replicas is the sum of one value per worker.
        local = max(1, len(strategy.extended.worker_devices))
        per_replica = strategy.run(lambda: tf.constant(float(value) / local, tf.float64))
        return float(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))

    return over_workers


def setup(distribution: dict, layout_rules: LayoutRules = None) -> Placement:
    import tensorflow as tf

    procs = distribution.get("processes") or {}
    count = int(procs.get("count", 1))
    mesh_spec = distribution.get("mesh") or {}
    data, model = int(mesh_spec.get("data", 1)), int(mesh_spec.get("model", 1))
    if model > 1:
        raise FlanctlError(
            "distribution.mesh.model: model parallelism needs backend jax; tensorflow runs data-parallel only "
            "(set mesh.model: 1 or backend: jax)"
        )
    gpus = tf.config.list_logical_devices("GPU")
    if distribution.get("device", "cpu").startswith("tpu"):
        strategy = _tpu_strategy()
        if strategy is None:
            raise FlanctlError("distribution.device: a TPU was asked for but none is reachable from TensorFlow")
    elif count > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if data > 1 and data != replicas:
        raise FlanctlError(
            f"distribution.mesh.data: {data} replicas asked for, but TensorFlow found {replicas}; "
            "set mesh.data to the number of GPUs/TPU cores"
        )
    resolver = getattr(strategy, "cluster_resolver", None)
    task_id = (getattr(resolver, "task_id", None) or 0) if resolver is not None else 0
    return Placement(
        backend="tensorflow",
        process_index=int(task_id),
        process_count=count,
        devices=[d.name for d in tf.config.list_logical_devices()],
        mesh=(max(data, replicas), 1),
        sharded=False,
        scope=strategy.scope,
        sum_over_processes=_summer(strategy, count),
        handle=strategy,
    )


def checkpoint_format(placement: Placement) -> str:
    return "npz"
