"""The training loop: one configuration's ``model.fit``, checkpointed, diagnosed, recorded.

Around ``fit`` it adds what a notebook series needs and ``fit`` does not:

* **Resume.** After every epoch the weights, the optimizer state (step
  count, momentum buffers, the current rate), the plateau rule's counters,
  the history and the diagnostics are checkpointed (:mod:`helpers.checkpoints`).
  A run killed at any point (SIGKILL included) and started again continues
  after its last completed epoch: at most one epoch is lost and every epoch
  appears once in the record. The resumed part draws its data order and
  augmentation from a seed derived from (seed, epoch), recorded in
  ``record.sessions``: resumed runs are reproducible, though not
  bit-identical to an uninterrupted run.
* **Divergence.** A training loss that becomes NaN or infinite stops the run
  within ``steps_per_execution`` steps; the record says ``diverged`` with the
  epoch, keeps the history up to it, and training returns normally.
* **Diagnostics** (:mod:`helpers.diagnostics`) before the first step and
  after every epoch.
* **Progress** (:mod:`helpers.progress`): a bar or a line per epoch.
* **Determinism.** Seeds from ``config.seed``; with ``config.deterministic``
  TensorFlow's op determinism and an ordered input pipeline, so the same
  configuration on the same CPU gives the same numbers twice.

Global state. Training sets Keras' random seeds, the dtype policy and op
determinism for the duration of the run and restores the policy and the
determinism flag afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_framework_config

from helpers import config as project_config
from helpers import environment, model_registry
from helpers.checkpoints import Checkpointer, callback_state
from helpers.compilation import (
    CompiledModel,
    build_config_model,
    compile_model,
    history_key,
    make_loss,
    make_optimizer,
)
from helpers.diagnostics import Diagnostics
from helpers.experiment import ExperimentConfig
from helpers.pipeline import make_dataset, make_splits
from helpers.progress import Reporter, resolve_progress
from helpers.data import stratified_split
from helpers.records import (MEASUREMENT_VERSION, RECORD_FILE_NAME, RunRecord, checkpoint_must_restart,
                             labels_digest, load_record, measures_block_responses, pack_bits,
                             pack_classes)
from helpers.runs import RunData, as_run_data, content_digest, load_run_data
from helpers.schedules import lr_find, make_schedule

FINAL_WEIGHTS = "model.weights.h5"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _to_float(value: Any) -> float:
    try:
        return float(np.asarray(value).reshape(-1)[0]) if np.ndim(value) else float(value)
    except (TypeError, ValueError):
        return math.nan


@contextlib.contextmanager
def global_state(config: ExperimentConfig, seed: int):
    """Seeds, dtype policy and determinism for one run, restored afterwards; yields the policy."""
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


def session_seed(seed: int, start_epoch: int) -> int:
    """The data-order seed of a session that starts after ``start_epoch`` epochs."""
    if start_epoch == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{start_epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# ---------------------------------------------------------------------------
# The state of one training session, and the callbacks that keep it
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class TrainingState:
    """What the fit callback updates: the record, the epoch, divergence, timing."""

    config: ExperimentConfig
    run_id: str
    run_dir: Path
    record: RunRecord
    compiled: CompiledModel
    diagnostics: Diagnostics
    checkpointer: Checkpointer
    reporter: Reporter
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
        if self.diverged_epoch is None:
            self.diagnostics.measure(self.record.diagnostics, epochs_completed)
            self.checkpointer.save(self.compiled.model, epochs_completed, self.checkpoint_state())
        self.record.wall_seconds = self.wall_seconds()
        self.record.train_images_per_second = images_per_second(self.record, self.config, self.steps_per_epoch)
        self.record.status = "running"
        self.record.save(self.run_dir / RECORD_FILE_NAME)

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "measurement_version": MEASUREMENT_VERSION,
            "epochs_completed": self.current_epoch,
            "history": self.record.history,
            "diagnostics": self.record.diagnostics,
            "sessions": self.record.sessions,
            "wall_seconds": self.wall_seconds(),
            "created": self.record.created,
            "callback_states": [callback_state(cb) for cb in self.compiled.schedule.callbacks],
        }


class EngineCallback(keras.callbacks.Callback):
    """Progress, NaN detection, history, diagnostics and checkpoints.

    Per call into the compiled graph (every ``steps_per_execution`` steps) it
    does one float conversion and, with a bar, one bar update; everything
    else happens once per epoch.
    """

    def __init__(self, state: TrainingState):
        super().__init__()
        self.state = state
        self.bar = None
        self.epoch_start = 0.0
        self.train_end = None
        self.epoch_learning_rate = math.nan
        self.epoch_momentum = None

    def on_epoch_begin(self, epoch, logs=None):
        state = self.state
        optimizer = state.inner_optimizer()
        self.epoch_learning_rate = _to_float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        self.epoch_momentum = None
        if state.compiled.schedule.momentum is not None and hasattr(optimizer, "momentum_at"):
            self.epoch_momentum = optimizer.momentum_at()
        self.train_end = None
        self.bar = state.reporter.bar(state.steps_per_epoch, f"epoch {epoch + 1}/{state.config.num_epochs}")
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
            entry[history_key(key, state.compiled.output_names)] = _to_float(value)
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


class TrainingSetEvaluation(keras.callbacks.Callback):
    """Adds ``train_eval_loss`` and ``train_eval_accuracy`` to each epoch's logs:
    a fixed subset of training images, un-augmented, evaluated in inference
    mode (dropout off, batch norm on its moving statistics) with the weights
    at the epoch's end. Listed before :class:`EngineCallback`, which records
    the logs; a schedule's callbacks (ReduceLROnPlateau) come before it and
    never see these keys."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        values = self.model.evaluate(self.dataset, return_dict=True, verbose=0)
        for key, value in values.items():
            if key in ("loss", "accuracy"):
                logs[f"train_eval_{key}"] = value


class CallbackStateRestorer(keras.callbacks.Callback):
    """Puts saved counters back into the schedule's callbacks.

    Keras' ReduceLROnPlateau resets its patience counter and best value in
    ``on_train_begin``; this callback runs right after it and restores what
    the checkpoint saved.
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


def images_per_second(record: RunRecord, config: ExperimentConfig, steps_per_epoch: int) -> float | None:
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


def predict_logits(model, dataset) -> np.ndarray:
    """The main head's logits for every image of an (images, labels) pipeline, in order.

    A gated net's side head is left out: its outputs are a dict or list with
    the main logits first.

    Used in: every run's per-image test scores and stored validation predictions,
    helpers.evaluation (07_cifar100, for records without stored predictions)
    """
    outputs = model.predict(dataset.map(lambda images, _: images), verbose=0)
    if isinstance(outputs, dict):
        outputs = outputs["logits"]
    elif isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return np.asarray(outputs, dtype=np.float32)


def test_predictions(model, test_data, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Per-image test scores (top-1 and, beyond 10 classes, top-5), packed.

    The same test images as ``evaluate`` just scored, in the same order;
    kept so that two arms can be compared image by image
    (``helpers.intervals.difference_interval``).
    """
    logits = predict_logits(model, test_data)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    payload: dict[str, Any] = {"images": int(labels.shape[0]), "labels_digest": labels_digest(labels),
                               "accuracy": pack_bits(np.argmax(logits, axis=1) == labels)}
    if num_classes > 10:
        top5 = np.argpartition(-logits, 5, axis=1)[:, :5]
        payload["top5_accuracy"] = pack_bits((top5 == labels[:, None]).any(axis=1))
    return payload



# The seed of the training images the measurements use: one fixed set for
# every run, so arms and seeds are measured on the same images.
MEASUREMENT_SEED = 0


def measurement_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """``count`` training-set indices, class-stratified and seeded, for measurements.

    The images the diagnostics (gradient norms, gates: one batch) and
    ``train_eval_size`` are measured on. Not the first ``count``: copies of
    CIFAR stored sorted by class would give one or two classes. The same
    labels give the same indices in every run (``MEASUREMENT_SEED``).

    Used in: train
    """
    count = min(int(count), int(np.asarray(labels).shape[0]))
    return stratified_split(np.asarray(labels), count, MEASUREMENT_SEED)[0]


def _normalised(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    # The same arithmetic as helpers.pipeline: (x / 255 - mean) / std.
    return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------


def train(config: ExperimentConfig, run_data: RunData, *, run_id: str, run_dir: Path, strategy,
          reporter: Reporter, resume: bool = True, is_chief: bool = True,
          started: float | None = None) -> RunRecord:
    """Trains ``config`` on ``run_data`` in ``run_dir``, resuming its last whole checkpoint.

    The caller holds the run's lock (``helpers.checkpoints.RunLock``).

    Returns:
        The record, status "completed" or "diverged".

    Raises:
        ValueError: for a configuration the model, schedule or data reject.
        KeyboardInterrupt: re-raised after the record was saved as
            "interrupted" (the next call resumes it); other errors likewise.

    Used in: helpers.engine.run
    """
    started = time.perf_counter() if started is None else started
    steps_per_epoch = run_data.x_train.shape[0] // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"The training split has {run_data.x_train.shape[0]} images, fewer than one batch of "
            f"{config.batch_size}. Received: batch_size={config.batch_size}"
        )
    checkpointer = Checkpointer(run_dir, warn=reporter.warn)
    if not resume:
        checkpointer.remove_all()
    latest = checkpointer.latest() if resume else None
    if latest is not None and checkpoint_must_restart(config, latest.state.get("measurement_version", 1)):
        version = latest.state.get("measurement_version", 1)
        what = ("measured on the first training images" if version < 2
                else "holds no residual responses of its blocks from before training")
        reporter.warn(f"[{run_id}] the checkpoint after epoch {latest.epochs_completed} {what} (measurement "
                      f"version {version}); training from the start instead of resuming.")
        checkpointer.remove_all()
        latest = None
    saved_state = latest.state if latest is not None else {}
    start_epoch = latest.epochs_completed if latest is not None else 0
    seed = session_seed(config.seed, start_epoch)

    with global_state(config, seed) as policy:
        compiled = compile_model(config, run_data.num_classes, steps_per_epoch, strategy)
        model = compiled.model
        if latest is not None:
            Checkpointer.restore(latest, model)
        record = _new_record(config, run_id, run_data, steps_per_epoch, compiled, policy, strategy,
                             saved_state)
        record.sessions.append({"start_epoch": start_epoch, "seed": seed, "started": _utc_now(),
                                "pid": os.getpid()})

        pipelines = make_splits(run_data, batch_size=config.batch_size, seed=seed, augment=config.augment,
                                deterministic=config.deterministic, label_transform=compiled.label_transform)
        train_data, validation_data, test_data = pipelines.train, pipelines.validation, pipelines.test
        if config.train_eval_size:
            chosen = measurement_indices(run_data.y_train, config.train_eval_size)
            train_eval_data = make_dataset(run_data.x_train[chosen], run_data.y_train[chosen], training=False,
                                           batch_size=config.batch_size, mean=pipelines.mean, std=pipelines.std,
                                           deterministic=config.deterministic,
                                           label_transform=compiled.label_transform)
        probe = measurement_indices(run_data.y_train, config.batch_size)
        fixed_images = _normalised(run_data.x_train[probe], pipelines.mean, pipelines.std)
        fixed_labels = run_data.y_train[probe].astype(np.int32)
        diagnostics = Diagnostics(compiled, fixed_images, fixed_labels, config.record_gradient_norms,
                                  record_block_responses=measures_block_responses(config))

        state = TrainingState(
            config=config, run_id=run_id, run_dir=run_dir, record=record, compiled=compiled,
            diagnostics=diagnostics, checkpointer=checkpointer, reporter=reporter,
            steps_per_epoch=steps_per_epoch, wall_offset=float(saved_state.get("wall_seconds", 0.0)),
            session_start=started, is_chief=is_chief, current_epoch=start_epoch,
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
        restorer = CallbackStateRestorer(compiled.schedule.callbacks, saved_state.get("callback_states"))
        callbacks = [*compiled.schedule.callbacks, restorer]
        if config.train_eval_size:
            callbacks.append(TrainingSetEvaluation(train_eval_data))
        callbacks.append(EngineCallback(state))
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
            record.save(run_dir / RECORD_FILE_NAME)
            reporter.log(f"[{run_id}] interrupted after epoch {state.current_epoch}: {record.error}")
            raise

        test_logs = model.evaluate(test_data, return_dict=True, verbose=0)
        record.test = {history_key(key, compiled.output_names): _to_float(value)
                       for key, value in test_logs.items()}
        record.test_predictions = test_predictions(model, test_data, run_data.y_test, run_data.num_classes)
        # The validation classes too, so the report's confusion matrices need no weights.
        if validation_data is not None:
            record.validation_predictions = pack_classes(
                predict_logits(model, validation_data).argmax(axis=1), run_data.y_val, run_data.num_classes)
        if state.diverged_epoch is not None:
            record.status = "diverged"
            record.diverged_epoch = state.diverged_epoch
        else:
            record.status = "completed"
            model.save_weights(run_dir / FINAL_WEIGHTS)
        record.wall_seconds = state.wall_seconds()
        record.train_images_per_second = images_per_second(record, config, steps_per_epoch)
        record.finished = _utc_now()
        record.save(run_dir / RECORD_FILE_NAME)
        checkpointer.remove_all()
        outcome = (f"diverged in epoch {record.diverged_epoch}" if record.status == "diverged"
                   else "completed")
        reporter.log(
            f"[{run_id}] {outcome}: test accuracy {record.test_metric('accuracy'):.4f}, "
            f"{record.wall_seconds:.0f}s"
        )
        return record


def _new_record(config, run_id, run_data: RunData, steps_per_epoch: int, compiled: CompiledModel,
                policy: str, strategy, saved_state: dict[str, Any]) -> RunRecord:
    """The session's record: fresh, or carrying a checkpoint's history and diagnostics on."""
    record = RunRecord(
        run_id=run_id,
        status="running",
        config=config,
        created=saved_state.get("created") or _utc_now(),
        data={
            "dataset": run_data.name,
            "source": run_data.source,
            "source_fingerprint": run_data.source_fingerprint,
            "content_digest": content_digest(run_data),
            "num_train": int(run_data.x_train.shape[0]),
            "num_validation": int(run_data.x_val.shape[0]),
            "num_test": int(run_data.x_test.shape[0]),
            "num_classes": run_data.num_classes,
            "steps_per_epoch": steps_per_epoch,
            "images_per_epoch": steps_per_epoch * config.batch_size,
        },
        environment={**environment.describe_environment(), "dtype_policy": policy,
                     "replicas": getattr(strategy, "num_replicas_in_sync", 1),
                     "steps_per_execution": compiled.steps_per_execution},
        parameter_count=int(compiled.model.count_params()),
        schedule={"name": compiled.schedule.name, "options": compiled.schedule.options,
                  "description": compiled.schedule.describe()},
        notes=list(compiled.notes),
    )
    if saved_state:
        record.history = saved_state["history"]
        record.diagnostics = saved_state["diagnostics"]
        record.sessions = saved_state["sessions"]
    return record


# ---------------------------------------------------------------------------
# After training, and the LR range test
# ---------------------------------------------------------------------------


def load_trained_model(record: RunRecord | str, runs_dir: str | os.PathLike | None = None):
    """Rebuilds a completed run's model and loads its final weights.

    Args:
        record: A :class:`RunRecord` or a run id.
        runs_dir: Where to look up a run id; defaults to the runs directory.

    Raises:
        FileNotFoundError: if the run has no final weights (it did not
            complete, or was trained elsewhere).

    Used in: 07_cifar100 (confusion matrices, through helpers.evaluation).
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
    model = build_config_model(record.config, int(record.data.get("num_classes") or 10))
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
    model_registry.check_model(config.model, config.model_options)  # before the data is read
    reporter = Reporter(resolve_progress(progress))
    run_data = as_run_data(data, config) if data is not None else load_run_data(config)
    steps_per_epoch = max(1, run_data.x_train.shape[0] // config.batch_size)
    with global_state(config, config.seed):
        model = build_config_model(config, run_data.num_classes)
        schedule = make_schedule("constant", learning_rate=config.learning_rate,
                                 steps_per_epoch=steps_per_epoch, num_epochs=1)
        optimizer = make_optimizer(config, schedule, [])
        if len(model.outputs) > 1:
            raise ValueError(
                "find_learning_rate supports single-output models; build the model without its "
                f"side head. Received: model={config.model!r} with {len(model.outputs)} outputs"
            )
        dataset = make_splits(run_data, batch_size=config.batch_size, splits=("train",), seed=config.seed,
                              augment=config.augment, deterministic=config.deterministic,
                              repeat_train=True).train
        reporter.log(f"lr-find: {config.label}, {num_iterations} iterations from "
                     f"{min_learning_rate:g} to {max_learning_rate:g}")
        return lr_find(model, dataset, loss=make_loss(config.label_smoothing), optimizer=optimizer,
                       min_learning_rate=min_learning_rate, max_learning_rate=max_learning_rate,
                       num_iterations=num_iterations, **options)
