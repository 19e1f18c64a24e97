"""The experiment engine: one configuration in, one reproducible run record out.

``run(config)`` trains ``config.model`` on ``config.dataset`` with Keras'
``model.fit`` and returns a :class:`helpers.records.RunRecord`. Around the
fit it adds what a notebook series needs and ``fit`` does not:

* **A run cache.** A run's id hashes the configuration's id fields
  (:meth:`ExperimentConfig.config_hash`) and the *content* of the data it
  trains on. ``run`` on a configuration whose record says ``completed`` or
  ``diverged`` returns that record at once, without loading the data or
  building the model, so re-rendering the report retrains nothing.
* **Resume.** After every epoch the weights, the optimizer state (step
  count, momentum buffers, the current rate), the plateau rule's counters,
  the history and the diagnostics are checkpointed atomically. A run killed
  at any point (SIGKILL included) and started again continues after its last
  completed epoch: at most one epoch is lost and every epoch appears once in
  the record. The resumed part draws its data order and augmentation from a
  seed derived from (seed, epoch), recorded in ``record.sessions``: resumed
  runs are reproducible, though not bit-identical to an uninterrupted run.
* **Divergence.** A training loss that becomes NaN or infinite stops the run
  within ``steps_per_execution`` steps; the record says ``diverged`` with the
  epoch, keeps the history up to it, and ``run`` returns normally.
* **Diagnostics.** Each weight layer's gradient norm on a fixed batch (the
  first ``batch_size`` training images, not augmented, in training mode)
  before the first step and after every epoch, and for epsilon-ResNets every
  block's gate. Computed with ``model.stateless_call``, so diagnostics never
  change batch-norm statistics or random-number state: turning them off
  changes nothing else.
* **Progress.** A bar per epoch (tqdm, to stderr; a widget in Jupyter) or
  one line per epoch when stderr is not a terminal or ``CIFAR_LAB_PROGRESS``
  says ``lines`` (the report sets it), or nothing.
* **Determinism.** Seeds from ``config.seed``; with ``config.deterministic``
  TensorFlow's op determinism and an ordered input pipeline, so the same
  configuration on the same CPU gives the same numbers twice.
* **Distribution.** ``strategy="mirrored"`` and ``"multiworker"`` (see
  :func:`make_strategy`). ``batch_size`` is always the global batch, split
  evenly over replicas; the learning rate is used as given. When you change
  the global batch, scale the rate yourself (linear scaling rule, Goyal et
  al. 2017: rate proportional to the global batch, with a warm-up for large
  batches); the engine never rescales silently, so a record's rate is the
  rate that was used. Batch norm normalises over each replica's share of the
  batch, as in the papers' multi-GPU runs.

Loss and weight decay. The loss is the softmax cross-entropy of the logits
with optional label smoothing, computed from integer labels (no one-hot
tensors). Weight decay is applied by the optimizer to convolution and dense
kernels only, coupled (L2, as the papers) or decoupled (AdamW style), see
:class:`helpers.experiment.ExperimentConfig`; the recorded loss is therefore
always the pure data loss, comparable between runs with different decay.

Global state. ``run`` sets Keras' random seeds, the dtype policy and op
determinism for the duration of the run and restores the policy and the
determinism flag afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import re
import shutil
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from helpers import config as project_config
from helpers import environment
from helpers.experiment import CONFIG_SCHEMA_VERSION, ExperimentConfig, canonical_json
from helpers.records import (
    FINISHED_STATUSES,
    RECORD_FILE_NAME,
    RunRecord,
    list_records,
    load_record,
    write_json_atomic,
)

__all__ = [
    "run",
    "run_many",
    "resolve_run_id",
    "load_record",
    "list_records",
    "load_trained_model",
    "find_learning_rate",
    "make_strategy",
    "split_cpu_into_logical_devices",
    "RunRecord",
    "ExperimentConfig",
]

PROGRESS_ENV = "CIFAR_LAB_PROGRESS"
PROGRESS_MODES = ("bar", "lines", "none")
CHECKPOINT_POINTER = "checkpoint.json"
FINAL_WEIGHTS = "model.weights.h5"
_DATA_IDENTITY_FILE = ".data_identities.json"
# Steps per call into the compiled graph for steps_per_execution="auto" in
# runs that are not deterministic (deterministic runs take one step per call;
# see _compile). On a CPU a training step takes tens of milliseconds or more
# and the Python round trip (~1 ms) hardly matters, while a small value keeps
# the progress bar lively; on a GPU a CIFAR step can take a few milliseconds,
# so more steps per call save a real share of the time.
_AUTO_STEPS_PER_EXECUTION = {"cpu": 4, "gpu": 32}


# ---------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _to_float(value: Any) -> float:
    try:
        return float(np.asarray(value).reshape(-1)[0]) if np.ndim(value) else float(value)
    except (TypeError, ValueError):
        return math.nan


class _Reporter:
    """Writes the engine's messages and progress to stderr."""

    def __init__(self, mode: str, stream=None):
        self.mode = mode
        self.stream = stream if stream is not None else sys.stderr

    def log(self, message: str) -> None:
        if self.mode != "none":
            print(message, file=self.stream, flush=True)

    def note(self, message: str) -> None:
        self.log(f"note: {message}")


def _in_jupyter_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ipython = shell.get_ipython()
    except AttributeError:
        return False
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def resolve_progress(progress: bool | str | None) -> str:
    """Maps the ``progress`` argument of :func:`run` to "bar", "lines" or "none".

    True / None / "auto": the ``CIFAR_LAB_PROGRESS`` environment variable
    when set, else a bar in a Jupyter kernel or on a terminal, else lines.
    False is "none".
    """
    if progress is False:
        return "none"
    if progress in (True, None, "auto"):
        chosen = os.environ.get(PROGRESS_ENV, "").strip().lower()
        if chosen:
            if chosen not in PROGRESS_MODES:
                raise ValueError(
                    f"{PROGRESS_ENV} must be one of {list(PROGRESS_MODES)}. Received: {chosen!r}"
                )
            return chosen
        if _in_jupyter_kernel():
            return "bar"
        stream = sys.stderr
        return "bar" if hasattr(stream, "isatty") and stream.isatty() else "lines"
    if progress in PROGRESS_MODES:
        return progress
    raise ValueError(
        f"progress must be True, False, 'auto', 'bar', 'lines' or 'none'. Received: {progress!r}"
    )


# ---------------------------------------------------------------------------
# Data identity and run ids
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class _RunData:
    """The arrays one run trains on, with where they came from."""

    name: str
    source: str
    source_fingerprint: str | None
    num_classes: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _content_digest(data: _RunData) -> str:
    digest = hashlib.sha256()
    digest.update(f"{data.name}|{data.num_classes}".encode())
    for array in (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test):
        array = np.ascontiguousarray(array)
        digest.update(f"|{array.dtype.str}{array.shape}|".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:20]


def _as_run_data(data: Any, config: ExperimentConfig) -> _RunData:
    """Checks a caller's CifarData-like object against the configuration.

    The validation split is taken as given (its size must match the
    configuration); a ``train_size`` smaller than the data's training split
    takes the same stratified subset ``load_cifar`` would.
    """
    required = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    missing = [name for name in required if not hasattr(data, name)]
    if missing:
        raise ValueError(
            f"data must be a helpers.data.CifarData (or alike) with {list(required)}. "
            f"Received: an object of type {type(data).__name__} lacking {missing}"
        )
    name = getattr(data, "name", config.dataset)
    if name != config.dataset:
        raise ValueError(
            f"data holds {name!r} but the configuration says dataset={config.dataset!r}. "
            f"Received: data.name={name!r}"
        )
    num_classes = int(getattr(data, "num_classes", 0) or (10 if config.dataset == "cifar10" else 100))
    x_train, y_train = np.asarray(data.x_train), np.asarray(data.y_train)
    x_val, y_val = np.asarray(data.x_val), np.asarray(data.y_val)
    if x_val.shape[0] != config.validation_size:
        raise ValueError(
            f"data has a validation split of {x_val.shape[0]} images but the configuration "
            f"asks for validation_size={config.validation_size}; set validation_size to "
            f"{x_val.shape[0]} or load the data with the configuration's size. "
            f"Received: validation_size={config.validation_size}"
        )
    if config.train_size is not None and config.train_size != x_train.shape[0]:
        if config.train_size > x_train.shape[0]:
            raise ValueError(
                f"train_size={config.train_size} exceeds the {x_train.shape[0]} training "
                f"images of the data passed in. Received: train_size={config.train_size}"
            )
        from helpers.data import stratified_split

        chosen, _ = stratified_split(y_train, config.train_size, config.data_seed + 1)
        x_train, y_train = x_train[chosen], y_train[chosen]
    x_test, y_test = np.asarray(data.x_test), np.asarray(data.y_test)
    if config.test_size is not None and config.test_size != x_test.shape[0]:
        if config.test_size > x_test.shape[0]:
            raise ValueError(
                f"test_size={config.test_size} exceeds the {x_test.shape[0]} test images of "
                f"the data passed in. Received: test_size={config.test_size}"
            )
        from helpers.data import TEST_SUBSET_SEED, stratified_split

        chosen, _ = stratified_split(y_test, config.test_size, TEST_SUBSET_SEED)
        x_test, y_test = x_test[chosen], y_test[chosen]
    return _RunData(
        name=name,
        source=str(getattr(data, "source", "in-memory arrays")),
        source_fingerprint=getattr(data, "source_fingerprint", None),
        num_classes=num_classes,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
    )


def _load_run_data(config: ExperimentConfig) -> _RunData:
    from helpers.data import load_cifar

    loaded = load_cifar(
        config.dataset,
        data_dir=config.data_dir,
        validation_size=config.validation_size,
        train_size=config.train_size,
        test_size=config.test_size,
        seed=config.data_seed,
    )
    return _as_run_data(loaded, config)


class _DataIdentityMemo:
    """Remembers content digests of loaded splits, keyed by source fingerprint.

    Computing a content digest needs the decoded arrays; the source
    fingerprint (path, size, mtime and a content sample of the archive) does
    not. The memo lets a cache hit skip loading the data: the second and
    later ``run`` calls for a configuration cost a file ``stat``.
    """

    def __init__(self, runs_dir: Path):
        self.path = runs_dir / _DATA_IDENTITY_FILE

    @staticmethod
    def key(fingerprint: str, config: ExperimentConfig) -> str:
        return (f"{fingerprint}|val={config.validation_size}|train={config.train_size}"
                f"|test={config.test_size}|seed={config.data_seed}")

    def get(self, key: str) -> str | None:
        try:
            return json.loads(self.path.read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            return None

    def put(self, key: str, digest: str) -> None:
        try:
            entries = json.loads(self.path.read_text())
            if not isinstance(entries, dict):
                entries = {}
        except (OSError, ValueError):
            entries = {}
        entries[key] = digest
        try:
            write_json_atomic(self.path, entries)
        except OSError:
            pass  # a read-only runs directory only loses the shortcut


def _source_fingerprint(config: ExperimentConfig) -> str | None:
    """The data module's cheap source fingerprint, or None if unavailable."""
    try:
        from helpers import data as data_module

        source, _ = data_module.resolve_source(config.dataset, config.data_dir)
        return data_module.source_fingerprint(source, data_module.DATASETS[config.dataset])
    except (AttributeError, KeyError, OSError):
        return None


def _make_run_id(config: ExperimentConfig, data_digest: str) -> str:
    payload = {"schema": CONFIG_SCHEMA_VERSION, "config": config.id_fields(), "data": data_digest}
    digest = hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:12]
    model = re.sub(r"[^a-z0-9]+", "_", config.model.lower()).strip("_")[:40] or "model"
    return f"{model}-{config.dataset}-{digest}"


def resolve_run_id(
    config: ExperimentConfig,
    data: Any = None,
    runs_dir: str | os.PathLike | None = None,
) -> str:
    """The id ``run(config, data=data)`` would store its record under.

    The id is ``<model>-<dataset>-<12 hex digits>``, the digits hashing the
    configuration's id fields, the schema version and a digest of the exact
    pixels and labels of the train, validation and test splits used.

    Raises:
        helpers.data.CifarDataError: if the data cannot be found.

    Used in: every notebook (through ``run``) and the summary table.
    """
    runs_dir = Path(runs_dir) if runs_dir is not None else project_config.RUNS_DIR
    run_id, _ = _resolve_identity(config, data, runs_dir)
    return run_id


# Content digests of caller-supplied data objects, per subset: a notebook that
# loads the data once and runs many configurations hashes it once per subset.
# (The arrays of a CifarData are treated as immutable, as the dataclass is.)
_SUPPLIED_DATA_DIGESTS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _resolve_identity(config: ExperimentConfig, data: Any, runs_dir: Path) -> tuple[str, _RunData | None]:
    if data is not None:
        run_data = _as_run_data(data, config)
        key = (config.train_size, config.data_seed, config.validation_size)
        try:
            digests = _SUPPLIED_DATA_DIGESTS.setdefault(data, {})
        except TypeError:  # not weak-referenceable: hash every time
            digests = {}
        if key not in digests:
            digests[key] = _content_digest(run_data)
        return _make_run_id(config, digests[key]), run_data
    fingerprint = _source_fingerprint(config)
    memo = _DataIdentityMemo(runs_dir)
    if fingerprint is not None:
        digest = memo.get(memo.key(fingerprint, config))
        if digest is not None:
            return _make_run_id(config, digest), None
    run_data = _load_run_data(config)
    digest = _content_digest(run_data)
    if run_data.source_fingerprint or fingerprint:
        memo.put(memo.key(run_data.source_fingerprint or fingerprint, config), digest)
    return _make_run_id(config, digest), run_data


# ---------------------------------------------------------------------------
# Environment description
# ---------------------------------------------------------------------------


def describe_environment() -> dict[str, Any]:
    """Git state, versions and hardware, as stored in every run record."""
    import keras
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except (ValueError, RuntimeError):
            details = {}
        gpus.append(details.get("device_name", device.name))
    return {
        # The report rewrites figures/ and report/ while it trains: those
        # outputs do not make the code that trained a run "dirty".
        "git": environment.git_state(exclude=environment.SERIES_OUTPUTS),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "hardware": environment.hardware(gpus),
    }


# ---------------------------------------------------------------------------
# Distribution
# ---------------------------------------------------------------------------

_STRATEGIES: dict[str, Any] = {}


def split_cpu_into_logical_devices(count: int) -> None:
    """Splits the CPU into ``count`` logical devices, for data parallelism tests.

    Must run before TensorFlow initialises its devices (before the first op).

    Raises:
        RuntimeError: if TensorFlow is already initialised.

    Used in: tests of the engine's mirrored strategy.
    """
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def _worker_task() -> tuple[str, int] | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        task = json.loads(raw).get("task", {})
        return str(task.get("type", "worker")), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError):
        return None


def _is_chief() -> bool:
    task = _worker_task()
    if task is None:
        return True
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    task_type, index = task
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and index == 0


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
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            strategy = tf.distribute.MirroredStrategy()
        else:
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif name == "multiworker":
        if _worker_task() is None:
            raise ValueError(
                "strategy='multiworker' needs the TF_CONFIG environment variable describing "
                "the cluster and this worker's task. Received: TF_CONFIG unset or unreadable"
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ValueError(f"Unknown strategy. Received: {name!r}")
    _STRATEGIES[name] = strategy
    return strategy


# ---------------------------------------------------------------------------
# Model, loss, optimizer
# ---------------------------------------------------------------------------


def _is_decayed_variable(variable) -> bool:
    # Kernels of convolutions and dense layers; biases, batch-norm scales and
    # offsets and gate parameters are left alone, as in the papers.
    return variable.trainable and str(variable.name).split("/")[-1].endswith("kernel")


def _layer_key(variable) -> str:
    path = str(getattr(variable, "path", variable.name))
    return path.rsplit("/", 1)[0] if "/" in path else path


_OPTIMIZER_CLASSES: dict[str, type] = {}


def _optimizer_class(kind: str) -> type:
    """SGD or Adam with weight decay restricted to kernels (built lazily)."""
    if kind in _OPTIMIZER_CLASSES:
        return _OPTIMIZER_CLASSES[kind]
    import keras
    from keras import ops

    from helpers.schedules import ScheduledMomentumSGD

    base = ScheduledMomentumSGD if kind == "sgd" else keras.optimizers.Adam

    class KernelDecayOptimizer(base):
        """Adds coupled (L2) or decoupled weight decay on kernels only.

        Coupled: the gradient of ``decay / 2 * ||w||^2`` (that is
        ``decay * w``) is added to a kernel's gradient after the gradients of
        all replicas were summed, so it counts once whatever the number of
        replicas. Decoupled: ``w -= learning_rate * decay * w`` before the
        update (AdamW / SGDW).
        """

        def __init__(self, *args, kernel_decay: float = 0.0, kernel_decay_mode: str = "coupled", **kwargs):
            super().__init__(*args, **kwargs)
            self.kernel_decay = float(kernel_decay)
            self.kernel_decay_mode = kernel_decay_mode
            self._decayed_indices = frozenset()

        def build(self, variables):
            was_built = self.built
            super().build(variables)
            if not was_built:
                self._decayed_indices = frozenset(
                    index for index, variable in enumerate(variables) if _is_decayed_variable(variable)
                )

        def update_step(self, gradient, variable, learning_rate):
            if self.kernel_decay and self._get_variable_index(variable) in self._decayed_indices:
                decay = ops.cast(self.kernel_decay, variable.dtype)
                if self.kernel_decay_mode == "coupled":
                    gradient = ops.add(ops.cast(gradient, variable.dtype), ops.multiply(variable, decay))
                else:
                    rate = ops.cast(learning_rate, variable.dtype)
                    self.assign_sub(variable, ops.multiply(variable, ops.multiply(rate, decay)))
            return super().update_step(gradient, variable, learning_rate)

        def get_config(self):
            config = super().get_config()
            config.update({"kernel_decay": self.kernel_decay, "kernel_decay_mode": self.kernel_decay_mode})
            return config

    KernelDecayOptimizer.__name__ = f"KernelDecay{base.__name__}"
    KernelDecayOptimizer.__qualname__ = KernelDecayOptimizer.__name__
    _OPTIMIZER_CLASSES[kind] = KernelDecayOptimizer
    return KernelDecayOptimizer


def _make_optimizer(config: ExperimentConfig, schedule, notes: list[str]):
    decay = {"kernel_decay": config.weight_decay, "kernel_decay_mode": config.weight_decay_mode}
    if config.optimizer == "sgd":
        momentum = schedule.momentum if schedule.momentum is not None else config.momentum
        return _optimizer_class("sgd")(
            learning_rate=schedule.learning_rate, momentum=momentum, nesterov=config.nesterov, **decay
        )
    if schedule.momentum is not None:
        notes.append(
            f"The {config.schedule} schedule cycles momentum; Adam has no momentum to cycle, "
            "so only its learning rate follows the schedule."
        )
    return _optimizer_class("adam")(learning_rate=schedule.learning_rate, **decay)


def _make_loss(label_smoothing: float):
    """Cross-entropy from logits and integer labels, with label smoothing.

    With smoothing ``e`` over ``K`` classes the target is ``(1 - e)`` on the
    label plus ``e / K`` everywhere, so the loss is
    ``(1 - e) * nll + e * mean_k(-log p_k)``: one log-softmax, no one-hot.
    """
    import keras
    from keras import ops

    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy")

    class SmoothedSparseCrossEntropy(keras.losses.Loss):
        def __init__(self, smoothing: float, name: str = "cross_entropy", **kwargs):
            super().__init__(name=name, **kwargs)
            self.smoothing = float(smoothing)

        def call(self, y_true, y_pred):
            log_probs = ops.log_softmax(y_pred, axis=-1)
            labels = ops.cast(ops.reshape(y_true, (-1, 1)), "int32")
            nll = -ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), axis=-1)
            uniform = -ops.mean(log_probs, axis=-1)
            return (1.0 - self.smoothing) * nll + self.smoothing * uniform

        def get_config(self):
            return {**super().get_config(), "smoothing": self.smoothing}

    return SmoothedSparseCrossEntropy(label_smoothing)


def _make_metrics(num_classes: int) -> list:
    import keras

    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes > 10:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    return metrics


def _build_model(config: ExperimentConfig, num_classes: int):
    from helpers.models import build_model

    return build_model(config.model, num_classes=num_classes, **dict(config.model_options))


def _output_names(model) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs):
        names = [f"output_{index}" for index in range(len(model.outputs))]
    # The main head ("logits") first: its metrics are the record's plain ones.
    if "logits" in names:
        names.remove("logits")
        names.insert(0, "logits")
    return names


@dataclasses.dataclass
class _Compiled:
    model: Any
    schedule: Any
    output_names: list[str]
    loss: Any
    loss_weights: dict[str, float] | None
    label_transform: Callable | None
    steps_per_execution: int
    notes: list[str]


def _compile(config: ExperimentConfig, num_classes: int, steps_per_epoch: int, strategy) -> _Compiled:
    from helpers.schedules import make_schedule

    notes: list[str] = []
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = _build_model(config, num_classes)
        schedule = make_schedule(
            config.schedule,
            learning_rate=config.learning_rate,
            steps_per_epoch=steps_per_epoch,
            num_epochs=config.num_epochs,
            **dict(config.schedule_options),
        )
        if config.schedule == "plateau" and config.validation_size == 0:
            monitor = schedule.options.get("monitor", "val_loss")
            if str(monitor).startswith("val_"):
                raise ValueError(
                    "The plateau schedule watches the validation loss, but validation_size=0 "
                    "disables validation. Set validation_size > 0. Received: validation_size=0"
                )
        optimizer = _make_optimizer(config, schedule, notes)
        loss = _make_loss(config.label_smoothing)
        output_names = _output_names(model)
        if len(output_names) == 1:
            compile_loss: Any = loss
            compile_metrics: Any = _make_metrics(num_classes)
            loss_weights = None
            label_transform = None
        else:
            hint = dict(getattr(model, "loss_weights_hint", None) or {})
            loss_weights = {name: float(hint.get(name, 1.0)) for name in output_names}
            compile_loss = {name: _make_loss(config.label_smoothing) for name in output_names}
            compile_metrics = {name: _make_metrics(num_classes) for name in output_names}
            if isinstance(model.output, dict):
                label_transform = lambda labels: {name: labels for name in output_names}  # noqa: E731
            else:
                label_transform = lambda labels: tuple(labels for _ in output_names)  # noqa: E731
        steps = config.steps_per_execution
        if steps == "auto":
            import tensorflow as tf

            kind = "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
            steps = _AUTO_STEPS_PER_EXECUTION[kind]
        steps = max(1, min(int(steps), steps_per_epoch))
        if config.deterministic and steps > 1:
            # Several steps per call run inside a tf.while_loop, and that was
            # not repeatable bit for bit: five engine runs of a reduced eps-8
            # gate arm (512 images, 4 steps per call) ended with five
            # different losses, while eight runs at one step per call agreed
            # exactly. Ungated nets happened to repeat; a gate decides
            # on a threshold, so a tiny difference there flips it and becomes
            # a different run. The Python round trip per step costs about a
            # millisecond on a step of tens of milliseconds or more.
            if config.steps_per_execution != "auto":
                notes.append(f"steps_per_execution {steps} -> 1: deterministic runs take one "
                             "step per call (several per call were not repeatable bit for bit).")
            steps = 1
        if strategy is not None and steps > 1:
            # Keras 3 runs several steps per call in a tf.while_loop whose
            # tf.cond around the step breaks under tf.distribute ("You must
            # feed a value for placeholder tensor", keras-team/keras#19246).
            notes.append(f"steps_per_execution {steps} -> 1 under tf.distribute (keras-team/keras#19246).")
            steps = 1
        model.compile(
            optimizer=optimizer,
            loss=compile_loss,
            loss_weights=loss_weights,
            metrics=compile_metrics,
            jit_compile=config.jit_compile,
            steps_per_execution=steps,
        )
        # Built now, inside the strategy scope, so its variables exist to be
        # restored from a checkpoint before the first step.
        model.optimizer.build(model.trainable_variables)
        if strategy is not None:
            # Keras builds metric and loss state from the first distributed
            # batch, reducing it with strategy.reduce, which fails under
            # MultiWorkerMirroredStrategy ("Attempt to convert a value
            # (PerReplica ...) to a Tensor"). Build that state here from a
            # plain batch of the right shape instead, and skip Keras' step.
            labels = np.zeros((1,), np.int32)
            model._symbolic_build(data_batch=(
                np.zeros((1, 32, 32, 3), np.float32),
                label_transform(labels) if label_transform is not None else labels,
            ))
            model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
        if config.strategy == "multiworker":
            _patch_multi_worker_log_reduction()
    return _Compiled(model, schedule, output_names, loss, loss_weights, label_transform, steps, notes)


_LOG_REDUCTION_PATCHED = False


def _patch_multi_worker_log_reduction() -> None:
    """Works around Keras 3 averaging scalar logs over workers along axis 0.

    Keras reduces each step's logs with ``strategy.reduce("MEAN", v,
    axis=0)`` under MultiWorkerMirroredStrategy, which fails for the scalar
    loss and metrics ("Invalid reduction dimension 0 for input with 0
    dimensions"). The intended result is the mean over replicas, i.e.
    ``axis=None``; this wraps Keras' helper to do that for scalars and
    leaves every other case to Keras.
    """
    global _LOG_REDUCTION_PATCHED
    if _LOG_REDUCTION_PATCHED:
        return
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer
    from keras.src import tree

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


def _history_key(key: str, output_names: list[str]) -> str:
    """Maps Keras' per-output metric names to the record's names.

    For a model with outputs ("logits", "side_logits"), Keras logs
    "logits_accuracy"; the record calls the main output's metrics plainly
    ("accuracy") and keeps the others prefixed. Losses keep their names
    ("loss" is the weighted total, "logits_loss" the main head's).
    """
    if len(output_names) < 2:
        return key
    prefix = ""
    if key.startswith("val_"):
        prefix, key = "val_", key[4:]
    main = output_names[0] + "_"
    if key.startswith(main) and not key.endswith("_loss"):
        key = key[len(main):]
    return prefix + key


# ---------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------


class _Diagnostics:
    """Gradient norms, gate states and gate responses on one fixed batch, side-effect free."""

    def __init__(self, compiled: _Compiled, images: np.ndarray, labels: np.ndarray,
                 record_gradients: bool, reporter: _Reporter):
        import tensorflow as tf

        self.model = compiled.model
        self.images = tf.constant(images)
        self.labels = tf.constant(labels)
        self.record_gradients = record_gradients
        self.reporter = reporter
        self.output_names = compiled.output_names
        self.loss = compiled.loss
        self.loss_weights = compiled.loss_weights
        variables = self.model.trainable_variables
        self.kernel_indices = [i for i, v in enumerate(variables) if _is_decayed_variable(v)]
        self.layer_names = [_layer_key(variables[i]) for i in self.kernel_indices]
        self._gradient_function = None
        self.gate_names: list[str] = []
        try:
            from helpers.models import gate_layer_names

            self.gate_names = list(gate_layer_names(self.model))
        except ImportError:
            self.gate_names = []

    def _data_loss(self, labels, outputs):
        if len(self.output_names) == 1:
            return self.loss(labels, outputs)
        if isinstance(outputs, dict):
            outputs = [outputs[name] for name in self.output_names]
        total = 0.0
        for name, output in zip(self.output_names, outputs):
            total = total + self.loss_weights[name] * self.loss(labels, output)
        return total

    def _build_gradient_function(self):
        import tensorflow as tf

        model = self.model
        kernel_indices = self.kernel_indices

        @tf.function
        def gradient_norms(images, labels):
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            with tf.GradientTape() as tape:
                tape.watch(trainable)
                outputs, _ = model.stateless_call(trainable, non_trainable, images, training=True)
                loss = tf.cast(self._data_loss(labels, outputs), tf.float32)
            gradients = tape.gradient(loss, [trainable[i] for i in kernel_indices])
            norms = [
                tf.zeros([]) if g is None else tf.norm(tf.cast(g, tf.float32)) for g in gradients
            ]
            return loss, tf.stack(norms)

        return gradient_norms

    def gradient_norms(self) -> dict[str, float]:
        if not self.record_gradients or not self.kernel_indices:
            return {}
        if self._gradient_function is None:
            self._gradient_function = self._build_gradient_function()
        _, norms = self._gradient_function(self.images, self.labels)
        values = np.asarray(norms, dtype=np.float64)
        return {name: float(value) for name, value in zip(self.layer_names, values)}

    def gate_states(self) -> dict[str, float]:
        if not self.gate_names:
            return {}
        from helpers.models import gate_states

        return {str(k): float(v) for k, v in gate_states(self.model, self.images).items()}

    def gate_states_in_training_mode(self) -> dict[str, float]:
        """The gates as ``fit`` sees them: batch norm on the batch's statistics.

        A training-mode call updates batch norm's moving statistics, so they
        are saved first and put back after: the run is left as it was.
        """
        if not self.gate_names:
            return {}
        from helpers.models import gate_states

        saved = [(variable, np.array(variable.numpy(), copy=True))
                 for variable in self.model.non_trainable_variables]
        try:
            states = gate_states(self.model, self.images, training=True)
        finally:
            for variable, value in saved:
                variable.assign(value)
        return {str(k): float(v) for k, v in states.items()}

    def gate_responses(self) -> dict[str, float]:
        if not self.gate_names:
            return {}
        from helpers.models import gate_responses

        return {str(k): float(v) for k, v in gate_responses(self.model, self.images).items()}

    def measure(self, diagnostics: dict[str, Any], epoch: int) -> None:
        """Appends this epoch's measurements to ``diagnostics`` (in place)."""
        norms = self.gradient_norms()
        if norms:
            store = diagnostics.setdefault("gradient_norms", {})
            for name, value in norms.items():
                store.setdefault(name, []).append(value)
            diagnostics.setdefault("gradient_norm_epochs", []).append(epoch)
        gates = self.gate_states()
        if gates:
            store = diagnostics.setdefault("gates", {})
            for name, value in gates.items():
                store.setdefault(name, []).append(value)
            diagnostics.setdefault("gate_epochs", []).append(epoch)
            diagnostics.setdefault("discarded_blocks", []).append(
                int(sum(1 for value in gates.values() if value == 0.0))
            )
            diagnostics["num_gated_blocks"] = len(gates)
            store = diagnostics.setdefault("gate_responses", {})
            for name, value in self.gate_responses().items():
                store.setdefault(name, []).append(value)
            training_gates = self.gate_states_in_training_mode()
            diagnostics.setdefault("discarded_blocks_training", []).append(
                int(sum(1 for value in training_gates.values() if value == 0.0))
            )


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

_CALLBACK_STATE_TYPES = (bool, int, float, str, type(None))


def _callback_state(callback) -> dict[str, Any]:
    state = {}
    for key, value in vars(callback).items():
        if key in ("model", "params", "validation_data") or callable(value):
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, _CALLBACK_STATE_TYPES):
            state[key] = value
    return state


def _encode_floats(value: Any) -> Any:
    """JSON cannot spell inf/NaN strictly; the checkpoint spells them out."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        return {key: _encode_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode_floats(item) for item in value]
    return value


def _decode_floats(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {key: _decode_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_floats(item) for item in value]
    return value


class _Checkpointer:
    """Writes and reads per-epoch checkpoints atomically.

    Each checkpoint is a directory ``ckpt-<epoch>`` (weights, optimizer
    variables, state JSON) written under a temporary name and renamed when
    complete; then ``checkpoint.json`` is replaced to point at it; only then
    are older directories removed. A kill at any moment leaves a pointer to a
    complete checkpoint (or no pointer at all).
    """

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.pointer = run_dir / CHECKPOINT_POINTER

    def latest(self) -> Path | None:
        try:
            name = json.loads(self.pointer.read_text())["directory"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        directory = self.run_dir / name
        return directory if (directory / "state.json").is_file() else None

    def save(self, model, epochs_completed: int, state: dict[str, Any]) -> None:
        import keras

        name = f"ckpt-{epochs_completed:04d}"
        final = self.run_dir / name
        temporary = self.run_dir / f".{name}.{os.getpid()}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        model.save_weights(temporary / "model.weights.h5")
        optimizer_values = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
        with open(temporary / "optimizer.npz", "wb") as handle:
            np.savez(handle, *optimizer_values)
        (temporary / "state.json").write_text(json.dumps(_encode_floats(state)))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        write_json_atomic(self.pointer, {"directory": name, "epochs_completed": epochs_completed})
        for old in self.run_dir.glob("ckpt-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def restore(directory: Path, model) -> dict[str, Any]:
        model.load_weights(directory / "model.weights.h5")
        with np.load(directory / "optimizer.npz") as archive:
            values = [archive[f"arr_{index}"] for index in range(len(archive.files))]
        variables = model.optimizer.variables
        if len(values) != len(variables):
            raise ValueError(
                f"{directory}: the checkpoint holds {len(values)} optimizer variables but the "
                f"optimizer has {len(variables)}; delete the run directory to start over. "
                f"Received: {len(values)} values"
            )
        for variable, value in zip(variables, values):
            if tuple(variable.shape) != tuple(value.shape):
                raise ValueError(
                    f"{directory}: optimizer variable {variable.path} has shape {variable.shape} "
                    f"but the checkpoint holds {value.shape}. Received: a checkpoint of another model"
                )
            variable.assign(value)
        return _decode_floats(json.loads((directory / "state.json").read_text()))

    def remove_all(self) -> None:
        for old in self.run_dir.glob("ckpt-*"):
            shutil.rmtree(old, ignore_errors=True)
        for old in self.run_dir.glob(".ckpt-*.tmp"):
            shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.pointer.unlink()


class _RunLock:
    """Stops two live processes from training the same run directory."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.held = False

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    owner = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    owner = 0
                if owner and owner != os.getpid() and _process_alive(owner):
                    raise RuntimeError(
                        f"{self.path.parent}: this run is being trained by process {owner}. "
                        "Wait for it, or stop that process; its checkpoints will be resumed."
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(str(os.getpid()))
            self.held = True
            return self
        raise RuntimeError(f"{self.path}: could not take the run lock.")

    def __exit__(self, *exc_info):
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.held = False


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) holds no lock.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# ---------------------------------------------------------------------------
# The training callback
# ---------------------------------------------------------------------------


def _make_engine_callback():
    import keras

    class EngineCallback(keras.callbacks.Callback):
        """Progress, NaN detection, history, diagnostics and checkpoints.

        Per call into the compiled graph (every ``steps_per_execution``
        steps) it does one float conversion and, with a bar, one bar update;
        everything else happens once per epoch.
        """

        def __init__(self, state: "_TrainingState"):
            super().__init__()
            self.state = state
            self.bar = None
            self.epoch_start = 0.0
            self.train_end = None
            self.epoch_learning_rate = math.nan
            self.epoch_momentum = None

        # -- progress ---------------------------------------------------------

        def _open_bar(self, epoch: int) -> None:
            state = self.state
            if state.reporter.mode != "bar":
                return
            if _in_jupyter_kernel():
                from tqdm.auto import tqdm
            else:
                from tqdm import tqdm
            self.bar = tqdm(
                total=state.steps_per_epoch,
                desc=f"epoch {epoch + 1}/{state.config.num_epochs}",
                unit="step",
                file=state.reporter.stream,
                leave=True,
                dynamic_ncols=True,
            )

        def on_epoch_begin(self, epoch, logs=None):
            state = self.state
            optimizer = state.inner_optimizer()
            self.epoch_learning_rate = _to_float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            self.epoch_momentum = None
            if state.compiled.schedule.momentum is not None and hasattr(optimizer, "momentum_at"):
                self.epoch_momentum = optimizer.momentum_at()
            self.train_end = None
            self._open_bar(epoch)
            self.epoch_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            # Across workers per-step logs are local: stopping one worker alone
            # would leave the others waiting in a collective, so multi-worker
            # runs decide on divergence at the epoch's end, on global logs.
            if (loss is not None and not self.state.multi_worker
                    and not math.isfinite(_to_float(loss))):
                self.state.diverged_epoch = self.state.current_epoch + 1
                self.model.stop_training = True
            if self.bar is not None:
                self.bar.update(min(batch + 1, self.bar.total) - self.bar.n)

        def on_test_begin(self, logs=None):
            if self.train_end is None:
                self.train_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            state = self.state
            logs = dict(logs or {})
            train_end = self.train_end if self.train_end is not None else now
            if not math.isfinite(_to_float(logs.get("loss", 0.0))) and state.diverged_epoch is None:
                state.diverged_epoch = epoch + 1
                self.model.stop_training = True
            entry = {"epoch": epoch + 1}
            for key, value in logs.items():
                if key == "learning_rate":
                    continue  # recorded at the epoch's start instead, below
                entry[_history_key(key, state.compiled.output_names)] = _to_float(value)
            entry["learning_rate"] = self.epoch_learning_rate
            if self.epoch_momentum is not None:
                entry["momentum"] = self.epoch_momentum
            entry["epoch_seconds"] = now - self.epoch_start
            entry["train_seconds"] = train_end - self.epoch_start
            state.append_history(entry)
            if self.bar is not None:
                self.bar.set_postfix_str(state.summary_line(entry, short=True), refresh=False)
                self.bar.close()
                self.bar = None
            else:
                state.reporter.log(state.summary_line(entry))
            state.end_of_epoch(epoch + 1)

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return EngineCallback


def _make_state_restorer():
    import keras

    class CallbackStateRestorer(keras.callbacks.Callback):
        """Puts saved counters back into the schedule's callbacks.

        Keras' ReduceLROnPlateau resets its patience counter and best value
        in ``on_train_begin``; this callback runs right after it and restores
        what the checkpoint saved.
        """

        def __init__(self, callbacks: list, states: list[dict[str, Any]] | None):
            super().__init__()
            self.targets = callbacks
            self.states = states

        def on_train_begin(self, logs=None):
            if not self.states:
                return
            for target, saved in zip(self.targets, self.states):
                for key, value in saved.items():
                    setattr(target, key, value)

    return CallbackStateRestorer


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class _TrainingState:
    config: ExperimentConfig
    run_id: str
    run_dir: Path
    record: RunRecord
    compiled: _Compiled
    diagnostics: _Diagnostics
    checkpointer: _Checkpointer
    reporter: _Reporter
    steps_per_epoch: int
    wall_offset: float
    session_start: float
    is_chief: bool
    multi_worker: bool = False
    current_epoch: int = 0
    diverged_epoch: int | None = None

    def inner_optimizer(self):
        optimizer = self.compiled.model.optimizer
        return getattr(optimizer, "inner_optimizer", optimizer)

    def wall_seconds(self) -> float:
        return self.wall_offset + (time.perf_counter() - self.session_start)

    def append_history(self, entry: dict[str, Any]) -> None:
        history = self.record.history
        length = len(history.get("epoch", []))
        for key in entry:
            if key not in history:
                history[key] = [math.nan] * length
        for key in history:
            history[key].append(entry.get(key, math.nan))

    def summary_line(self, entry: dict[str, Any], short: bool = False) -> str:
        parts = [] if short else [f"epoch {entry['epoch']}/{self.config.num_epochs}"]
        for key in ("loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy"):
            if key in entry:
                parts.append(f"{key} {entry[key]:.4f}")
        parts.append(f"lr {entry['learning_rate']:.3g}")
        if not short:
            parts.append(f"{entry['epoch_seconds']:.1f}s")
        return "  ".join(parts)

    def end_of_epoch(self, epochs_completed: int) -> None:
        self.current_epoch = epochs_completed
        diagnostics = self.record.diagnostics
        if self.diverged_epoch is None:
            self.diagnostics.measure(diagnostics, epochs_completed)
            self.checkpointer.save(self.compiled.model, epochs_completed, self.checkpoint_state())
        self.record.wall_seconds = self.wall_seconds()
        self.record.train_images_per_second = _images_per_second(self.record, self.config, self.steps_per_epoch)
        self.record.status = "running"
        _write_record(self.record, self.run_dir)

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "epochs_completed": self.current_epoch,
            "history": self.record.history,
            "diagnostics": self.record.diagnostics,
            "sessions": self.record.sessions,
            "wall_seconds": self.wall_seconds(),
            "created": self.record.created,
            "callback_states": [_callback_state(cb) for cb in self.compiled.schedule.callbacks],
        }


def _images_per_second(record: RunRecord, config: ExperimentConfig, steps_per_epoch: int) -> float | None:
    """Training images per second, leaving out each session's first epoch.

    A session's first epoch also traces (and with XLA compiles) the graph;
    when a session trained only one epoch, that epoch is all there is.
    """
    epochs = record.history.get("epoch", [])
    seconds = record.history.get("train_seconds", [])
    if not epochs:
        return None
    first_epochs = {session["start_epoch"] + 1 for session in record.sessions}
    chosen = [s for e, s in zip(epochs, seconds) if e not in first_epochs and s and math.isfinite(s)]
    if not chosen:
        chosen = [s for s in seconds if s and math.isfinite(s)]
    if not chosen:
        return None
    images = len(chosen) * steps_per_epoch * config.batch_size
    return images / sum(chosen)


def _write_record(record: RunRecord, run_dir: Path) -> None:
    record.save(run_dir / RECORD_FILE_NAME)


@contextlib.contextmanager
def _global_state(config: ExperimentConfig, seed: int):
    """Seeds, dtype policy and determinism for one run, restored afterwards."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_framework_config

    previous_policy = keras.config.dtype_policy()
    previous_determinism = tf_framework_config.is_op_determinism_enabled()
    policy = "float32"
    if config.mixed_precision is True:
        policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    elif isinstance(config.mixed_precision, str):
        policy = config.mixed_precision
    keras.utils.set_random_seed(seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if config.deterministic and not previous_determinism:
            tf_framework_config.disable_op_determinism()


def _session_seed(seed: int, start_epoch: int) -> int:
    if start_epoch == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{start_epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def run(
    config: ExperimentConfig,
    *,
    runs_dir: str | os.PathLike | None = None,
    data: Any = None,
    progress: bool | str | None = True,
    resume: bool = True,
) -> RunRecord:
    """Trains one configuration, or returns its cached record.

    Args:
        config: What to train.
        runs_dir: Where records and checkpoints live; defaults to
            ``helpers.config.RUNS_DIR``. The run writes
            ``<runs_dir>/<run_id>/record.json`` (after every epoch, status
            "running", and at the end), per-epoch checkpoints while training
            and ``model.weights.h5`` when it completes.
        data: Optional pre-loaded ``helpers.data.CifarData`` (or an object
            with the same split attributes, e.g. synthetic arrays in tests).
            Its validation split must have ``config.validation_size`` images;
            ``config.train_size`` selects a stratified subset of its training
            split. The run id then hashes these arrays, so the same arrays
            give the same id as loading them through the configuration.
        progress: True/"auto", "bar", "lines", or False/"none"; see
            :func:`resolve_progress`.
        resume: Continue from the last checkpoint of an unfinished run with
            the same id (True), or discard it and start over (False).

    Returns:
        The :class:`RunRecord`, status "completed" or "diverged". A cached
        finished record is returned without loading data or building a model.

    Raises:
        ValueError: for a configuration the model, schedule or data reject.
        helpers.data.CifarDataError: when the data cannot be found.
        KeyboardInterrupt: re-raised after the record was saved as
            "interrupted" (the next call resumes it). Other errors likewise
            mark the record "interrupted" and propagate; a diverging loss
            never raises.

    Used in: 01_vgg_gradients through 07_cifar100.
    """
    if not isinstance(config, ExperimentConfig):
        raise ValueError(f"config must be an ExperimentConfig. Received: {type(config).__name__}")
    started = time.perf_counter()
    reporter = _Reporter(resolve_progress(progress))
    runs_dir = Path(runs_dir) if runs_dir is not None else project_config.RUNS_DIR
    # A multi-worker strategy must exist before TensorFlow runs any op.
    strategy = make_strategy(config.strategy)
    run_id, run_data = _resolve_identity(config, data, runs_dir)
    chief = _is_chief()
    run_dir = runs_dir / run_id
    if not chief:
        task_type, index = _worker_task()
        run_dir = run_dir / f"{task_type}-{index}"

    cached = _cached_record(run_dir)
    if cached is not None and cached.config.id_fields() == config.id_fields():
        # The caller's label, data directory and steps per execution (none
        # of which changes the result) replace the stored ones in the copy
        # returned, so legends read what this notebook called the run.
        cached.config = config
        reporter.log(f"[{run_id}] cached: {cached.status}, {cached.epochs_completed} epochs "
                     f"({config.label})")
        return cached

    # After the cache lookup, which thus never imports TensorFlow.
    _check_names(config)
    with _RunLock(run_dir):
        if run_data is None:
            run_data = _load_run_data(config)
        return _train(config, run_id, run_dir, run_data, strategy, reporter, resume, chief, started)


def _check_names(config: ExperimentConfig) -> None:
    """Fails fast, before any data is loaded, on an unknown model or schedule."""
    from helpers.models import list_models
    from helpers.schedules import SCHEDULE_NAMES

    if config.model not in list_models():
        raise ValueError(
            f"Unknown model name. Allowed names: {', '.join(list_models())}. "
            f"Received: model={config.model!r}"
        )
    if config.schedule not in SCHEDULE_NAMES:
        raise ValueError(
            f"Unknown schedule. Allowed names: {', '.join(SCHEDULE_NAMES)}. "
            f"Received: schedule={config.schedule!r}"
        )


def _cached_record(run_dir: Path) -> RunRecord | None:
    path = run_dir / RECORD_FILE_NAME
    if not path.is_file():
        return None
    try:
        record = load_record(path)
    except (OSError, ValueError):
        return None
    return record if record.status in FINISHED_STATUSES else None


def _train(config, run_id, run_dir, run_data, strategy, reporter, resume, chief, started) -> RunRecord:
    from helpers.data import channel_stats
    from helpers.pipeline import make_dataset

    steps_per_epoch = run_data.x_train.shape[0] // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"The training split has {run_data.x_train.shape[0]} images, fewer than one batch of "
            f"{config.batch_size}. Received: batch_size={config.batch_size}"
        )
    checkpointer = _Checkpointer(run_dir)
    if not resume:
        checkpointer.remove_all()
    latest = checkpointer.latest() if resume else None
    saved_state = None
    start_epoch = 0
    if latest is not None:
        saved_state = _decode_floats(json.loads((latest / "state.json").read_text()))
        start_epoch = int(saved_state["epochs_completed"])
    seed = _session_seed(config.seed, start_epoch)

    with _global_state(config, seed) as policy:
        compiled = _compile(config, run_data.num_classes, steps_per_epoch, strategy)
        model = compiled.model
        if latest is not None:
            saved_state = _Checkpointer.restore(latest, model)

        record = RunRecord(
            run_id=run_id,
            status="running",
            config=config,
            created=(saved_state or {}).get("created") or _utc_now(),
            data={
                "dataset": run_data.name,
                "source": run_data.source,
                "source_fingerprint": run_data.source_fingerprint,
                "content_digest": _content_digest(run_data),
                "num_train": int(run_data.x_train.shape[0]),
                "num_validation": int(run_data.x_val.shape[0]),
                "num_test": int(run_data.x_test.shape[0]),
                "num_classes": run_data.num_classes,
                "steps_per_epoch": steps_per_epoch,
                "images_per_epoch": steps_per_epoch * config.batch_size,
            },
            environment={**describe_environment(), "dtype_policy": policy,
                         "replicas": getattr(strategy, "num_replicas_in_sync", 1),
                         "steps_per_execution": compiled.steps_per_execution},
            parameter_count=int(model.count_params()),
            schedule={"name": compiled.schedule.name, "options": compiled.schedule.options,
                      "description": compiled.schedule.describe()},
            notes=list(compiled.notes),
        )
        if saved_state is not None:
            record.history = saved_state["history"]
            record.diagnostics = saved_state["diagnostics"]
            record.sessions = saved_state["sessions"]
        record.sessions.append({"start_epoch": start_epoch, "seed": seed, "started": _utc_now(),
                                "pid": os.getpid()})

        mean, std = channel_stats(run_data.x_train)
        common = dict(mean=mean, std=std, deterministic=config.deterministic,
                      label_transform=compiled.label_transform)
        train_data = make_dataset(run_data.x_train, run_data.y_train, batch_size=config.batch_size,
                                  training=True, seed=seed, augment=config.augment,
                                  drop_remainder=True, **common)
        validation_data = None
        if run_data.x_val.shape[0]:
            validation_data = make_dataset(run_data.x_val, run_data.y_val,
                                           batch_size=config.batch_size, training=False, **common)
        test_data = make_dataset(run_data.x_test, run_data.y_test, batch_size=config.batch_size,
                                 training=False, **common)
        fixed_images = _normalised(run_data.x_train[: config.batch_size], mean, std)
        fixed_labels = run_data.y_train[: config.batch_size].astype(np.int32)
        diagnostics = _Diagnostics(compiled, fixed_images, fixed_labels,
                                   config.record_gradient_norms, reporter)

        state = _TrainingState(
            config=config, run_id=run_id, run_dir=run_dir, record=record, compiled=compiled,
            diagnostics=diagnostics, checkpointer=checkpointer, reporter=reporter,
            steps_per_epoch=steps_per_epoch,
            wall_offset=float((saved_state or {}).get("wall_seconds", 0.0)),
            session_start=started, is_chief=chief, current_epoch=start_epoch,
            multi_worker=config.strategy == "multiworker",
        )
        if start_epoch == 0:
            diagnostics.measure(record.diagnostics, 0)
        where = f"resuming after epoch {start_epoch}" if start_epoch else "training"
        reporter.log(
            f"[{run_id}] {where}: {config.label}; {record.data['num_train']} images, "
            f"{steps_per_epoch} steps/epoch, {record.parameter_count:,} parameters"
        )

        for note in record.notes:
            reporter.note(note)
        engine_callback = _make_engine_callback()(state)
        restorer = _make_state_restorer()(compiled.schedule.callbacks,
                                          (saved_state or {}).get("callback_states"))
        callbacks = [*compiled.schedule.callbacks, restorer, engine_callback]
        try:
            if start_epoch < config.num_epochs:
                model.fit(
                    train_data,
                    validation_data=validation_data,
                    epochs=config.num_epochs,
                    initial_epoch=start_epoch,
                    callbacks=callbacks,
                    verbose=0,
                    shuffle=False,  # the pipeline shuffles, seeded
                )
        except BaseException as error:  # noqa: BLE001 - recorded, then re-raised
            record.status = "interrupted"
            record.error = f"{type(error).__name__}: {error}"
            record.wall_seconds = state.wall_seconds()
            record.finished = _utc_now()
            _write_record(record, run_dir)
            reporter.log(f"[{run_id}] interrupted after epoch {state.current_epoch}: {record.error}")
            raise

        test_logs = model.evaluate(test_data, return_dict=True, verbose=0)
        record.test = {
            _history_key(key, compiled.output_names): _to_float(value)
            for key, value in test_logs.items()
        }
        record.test_predictions = _test_predictions(model, test_data, run_data.y_test, run_data.num_classes)
        if state.diverged_epoch is not None:
            record.status = "diverged"
            record.diverged_epoch = state.diverged_epoch
        else:
            record.status = "completed"
            model.save_weights(run_dir / FINAL_WEIGHTS)
        record.wall_seconds = state.wall_seconds()
        record.train_images_per_second = _images_per_second(record, config, steps_per_epoch)
        record.finished = _utc_now()
        _write_record(record, run_dir)
        checkpointer.remove_all()
        outcome = (f"diverged in epoch {record.diverged_epoch}" if record.status == "diverged"
                   else "completed")
        reporter.log(
            f"[{run_id}] {outcome}: test accuracy {record.test_metric('accuracy'):.4f}, "
            f"{record.wall_seconds:.0f}s"
        )
        return record


def _test_predictions(model, test_data, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Per-image test scores (top-1 and, beyond 10 classes, top-5), packed.

    The same test images as ``evaluate`` just scored, in the same order;
    kept so that two arms can be compared image by image
    (``helpers.intervals.difference_interval``).
    """
    from helpers.records import labels_digest, pack_bits

    outputs = model.predict(test_data.map(lambda images, _: images), verbose=0)
    if isinstance(outputs, dict):
        outputs = outputs["logits"]
    elif isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    logits = np.asarray(outputs, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    payload: dict[str, Any] = {"images": int(labels.shape[0]), "labels_digest": labels_digest(labels),
                               "accuracy": pack_bits(np.argmax(logits, axis=1) == labels)}
    if num_classes > 10:
        top5 = np.argpartition(-logits, 5, axis=1)[:, :5]
        payload["top5_accuracy"] = pack_bits((top5 == labels[:, None]).any(axis=1))
    return payload


def _normalised(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    # The same arithmetic as helpers.pipeline: (x / 255 - mean) / std.
    return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


def run_many(configs: Iterable[ExperimentConfig], **kwargs: Any) -> list[RunRecord]:
    """``run`` for each configuration in turn (cached ones return at once).

    Used in: notebooks comparing several configurations.
    """
    return [run(config, **kwargs) for config in configs]


# ---------------------------------------------------------------------------
# After training
# ---------------------------------------------------------------------------


def load_trained_model(record: RunRecord | str, runs_dir: str | os.PathLike | None = None):
    """Rebuilds a completed run's model and loads its final weights.

    Args:
        record: A :class:`RunRecord` or a run id.
        runs_dir: Where to look up a run id; defaults to the runs directory.

    Raises:
        FileNotFoundError: if the run has no final weights (it did not
            complete, or was trained elsewhere).

    Used in: 07_cifar100 (confusion matrices), 06_sparse_gates.
    """
    if not isinstance(record, RunRecord):
        record = load_record(record, runs_dir)
    run_dir = record.path.parent if record.path is not None else Path(
        runs_dir or project_config.RUNS_DIR) / record.run_id
    weights = run_dir / FINAL_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights}: no final weights for run {record.run_id} (status {record.status}). "
            "Only completed runs keep their weights."
        )
    model = _build_model(record.config, int(record.data.get("num_classes") or 10))
    model.load_weights(weights)
    return model


def find_learning_rate(
    config: ExperimentConfig,
    *,
    data: Any = None,
    min_learning_rate: float = 1e-5,
    max_learning_rate: float = 10.0,
    num_iterations: int = 100,
    progress: bool | str | None = True,
    **options: Any,
):
    """The LR range test (``helpers.schedules.lr_find``) for a configuration.

    Builds the configuration's model with its seed, optimizer kind, momentum
    and weight decay, and feeds it augmented training batches; the rate ramps
    geometrically from ``min_learning_rate`` to ``max_learning_rate``.

    Returns:
        The ``helpers.schedules.LrFindResult``.

    Used in: 05_cyclical_lr, ``python -m helpers lr-find``.
    """
    from helpers.data import channel_stats
    from helpers.pipeline import make_dataset
    from helpers.schedules import lr_find, make_schedule

    reporter = _Reporter(resolve_progress(progress))
    run_data = _as_run_data(data, config) if data is not None else _load_run_data(config)
    steps_per_epoch = max(1, run_data.x_train.shape[0] // config.batch_size)
    with _global_state(config, config.seed):
        model = _build_model(config, run_data.num_classes)
        schedule = make_schedule("constant", learning_rate=config.learning_rate,
                                 steps_per_epoch=steps_per_epoch, num_epochs=1)
        optimizer = _make_optimizer(config, schedule, [])
        mean, std = channel_stats(run_data.x_train)
        if len(model.outputs) > 1:
            raise ValueError(
                "find_learning_rate supports single-output models; build the model without its "
                f"side head. Received: model={config.model!r} with {len(model.outputs)} outputs"
            )
        dataset = make_dataset(run_data.x_train, run_data.y_train, batch_size=config.batch_size,
                               training=True, mean=mean, std=std, seed=config.seed,
                               augment=config.augment, deterministic=config.deterministic,
                               repeat=True, drop_remainder=True)
        reporter.log(f"lr-find: {config.label}, {num_iterations} iterations from "
                     f"{min_learning_rate:g} to {max_learning_rate:g}")
        return lr_find(model, dataset, loss=_make_loss(config.label_smoothing), optimizer=optimizer,
                       min_learning_rate=min_learning_rate, max_learning_rate=max_learning_rate,
                       num_iterations=num_iterations, **options)
