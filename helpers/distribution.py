"""tf.distribute for the engine: strategies, and two work-arounds Keras 3 needs.

``batch_size`` is always the global batch, split evenly over replicas; the
learning rate is used as given. When you change the global batch, scale the
rate yourself (linear scaling rule, Goyal et al. 2017: rate proportional to
the global batch, with a warm-up for large batches); the engine never
rescales silently, so a record's rate is the rate that was used. Batch norm
normalises over each replica's share of the batch, as in the papers'
multi-GPU runs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from helpers import config as project_config
from helpers.runs import worker_task

_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


def split_cpu_into_logical_devices(count: int) -> None:
    """Splits the CPU into ``count`` logical devices, for data parallelism tests.

    Must run before TensorFlow initialises its devices (before the first op).

    Raises:
        RuntimeError: if TensorFlow is already initialised.

    Used in: tests of the engine's mirrored strategy.
    """
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def make_strategy(name: str | None):
    """The tf.distribute strategy for ``ExperimentConfig.strategy``.

    * None: no strategy (the default one-device placement).
    * "mirrored": ``MirroredStrategy`` over all visible GPUs; without GPUs,
      over every logical CPU device (one, unless the CPU was split with
      :func:`split_cpu_into_logical_devices`).
    * "multiworker": ``MultiWorkerMirroredStrategy`` configured from the
      ``TF_CONFIG`` environment variable; every worker runs the same
      ``run(config)``, the chief writes the record. It must be created before
      TensorFlow runs any op in the process, so call ``run`` first thing.

    Strategies are created once per process and reused.

    Raises:
        ValueError: for "multiworker" without ``TF_CONFIG``.

    Used in: the engine's distributed runs (tests, and the full profile on
    multi-GPU machines).
    """
    if name is None:
        return None
    if name in _STRATEGIES:
        return _STRATEGIES[name]
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            strategy = tf.distribute.MirroredStrategy()
        else:
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif name == "multiworker":
        if worker_task() is None:
            raise ValueError(
                f"strategy='multiworker' needs the {project_config.TF_CONFIG_ENV} environment variable "
                f"describing the cluster and this worker's task. Received: {project_config.TF_CONFIG_ENV} "
                "unset or unreadable"
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ValueError(f"Unknown strategy. Received: {name!r}")
    _STRATEGIES[name] = strategy
    return strategy


def build_metric_state_outside_replicas(model, label_transform) -> None:
    """Builds a compiled model's metric and loss state from a plain batch.

    Keras builds that state from the first distributed batch, reducing it
    with ``strategy.reduce``, which fails under MultiWorkerMirroredStrategy
    ("Attempt to convert a value (PerReplica ...) to a Tensor"). Building it
    here from a plain batch of the right shape, and skipping Keras' own
    build, avoids that. Call inside the strategy's scope, after ``compile``.
    """
    labels = np.zeros((1,), np.int32)
    model._symbolic_build(data_batch=(
        np.zeros((1, 32, 32, 3), np.float32),
        label_transform(labels) if label_transform is not None else labels,
    ))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


_LOG_REDUCTION_PATCHED = False


def patch_multi_worker_log_reduction() -> None:
    """Works around Keras 3 averaging scalar logs over workers along axis 0.

    Keras reduces each step's logs with ``strategy.reduce("MEAN", v,
    axis=0)`` under MultiWorkerMirroredStrategy, which fails for the scalar
    loss and metrics ("Invalid reduction dimension 0 for input with 0
    dimensions"). The intended result is the mean over replicas, i.e.
    ``axis=None``; this wraps Keras' helper to do that for scalars and
    leaves every other case to Keras. Applied once per process.
    """
    global _LOG_REDUCTION_PATCHED
    if _LOG_REDUCTION_PATCHED:
        return
    # Keras' private modules, imported only by the runs that need the patch:
    # a Keras release that moves them breaks multi-worker runs, not every run.
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    original = tensorflow_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tensorflow_trainer._collective_all_reduce_multi_worker(strategy):
            def is_scalar(value) -> bool:
                components = getattr(value, "values", None)  # a PerReplica
                if isinstance(components, tuple):
                    return all(len(component.shape) == 0 for component in components)
                return len(getattr(value, "shape", (None,))) == 0

            def reduce_one(value):
                if is_scalar(value):
                    return strategy.reduce("MEAN", value, axis=None)
                return original(value, strategy, reduction)

            return tree.map_structure(reduce_one, values)
        return original(values, strategy, reduction)

    tensorflow_trainer.reduce_per_replica = reduce_per_replica
    _LOG_REDUCTION_PATCHED = True
