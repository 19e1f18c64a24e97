"""A configuration's model, compiled for training: optimizer, loss, metrics, steps per call.

Loss and weight decay. The loss is the softmax cross-entropy of the logits
with optional label smoothing, computed from integer labels (no one-hot
tensors). Weight decay is applied by the optimizer to convolution and dense
kernels only, coupled (L2, as the papers) or decoupled (AdamW style), see
:class:`helpers.experiment.ExperimentConfig`; the recorded loss is therefore
always the pure data loss, comparable between runs with different decay.

Models with a side head (``eps_resnet*``) get one loss per output, weighted
by the model's ``loss_weights_hint``; the record calls the main output's
metrics plainly (:func:`history_key`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable

import keras
import tensorflow as tf
from keras import ops

from helpers import distribution
from helpers.experiment import ExperimentConfig
from helpers.models import build_model
from helpers.schedules import ScheduledMomentumSGD, make_schedule

# Steps per call into the compiled graph for steps_per_execution="auto" in
# runs that are not deterministic (deterministic runs take one step per call;
# see compile_model). On a CPU a training step takes tens of milliseconds or
# more and the Python round trip (~1 ms) hardly matters, while a small value
# keeps the progress bar lively; on a GPU a CIFAR step can take a few
# milliseconds, so more steps per call save a real share of the time.
AUTO_STEPS_PER_EXECUTION = {"cpu": 4, "gpu": 32}


def is_decayed_variable(variable) -> bool:
    """Kernels of convolutions and dense layers; biases, batch-norm scales and
    offsets and gate parameters are left alone, as in the papers."""
    return variable.trainable and str(variable.name).split("/")[-1].endswith("kernel")


def layer_key(variable) -> str:
    """The layer a variable belongs to, by its path ("stage1_block1_conv1")."""
    path = str(getattr(variable, "path", variable.name))
    return path.rsplit("/", 1)[0] if "/" in path else path


# -- optimizer ---------------------------------------------------------------


class KernelDecay:
    """Adds coupled (L2) or decoupled weight decay on kernels only to an optimizer.

    Coupled: the gradient of ``decay / 2 * ||w||^2`` (that is ``decay * w``)
    is added to a kernel's gradient after the gradients of all replicas were
    summed, so it counts once whatever the number of replicas. Decoupled:
    ``w -= learning_rate * decay * w`` before the update (AdamW / SGDW).
    Mixed into :class:`KernelDecaySGD` and :class:`KernelDecayAdam`.
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
                index for index, variable in enumerate(variables) if is_decayed_variable(variable)
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


class KernelDecaySGD(KernelDecay, ScheduledMomentumSGD):
    """SGD with heavy-ball (or Nesterov) momentum that a schedule may cycle, and kernel decay."""


class KernelDecayAdam(KernelDecay, keras.optimizers.Adam):
    """Adam with kernel decay (decoupled: AdamW)."""


OPTIMIZER_CLASSES = {"sgd": KernelDecaySGD, "adam": KernelDecayAdam}


def make_optimizer(config: ExperimentConfig, schedule, notes: list[str]):
    """The configuration's optimizer driven by ``schedule``; remarks are appended to ``notes``."""
    decay = {"kernel_decay": config.weight_decay, "kernel_decay_mode": config.weight_decay_mode}
    if config.optimizer == "sgd":
        momentum = schedule.momentum if schedule.momentum is not None else config.momentum
        return KernelDecaySGD(learning_rate=schedule.learning_rate, momentum=momentum,
                              nesterov=config.nesterov, **decay)
    if schedule.momentum is not None:
        notes.append(
            f"The {config.schedule} schedule cycles momentum; Adam has no momentum to cycle, "
            "so only its learning rate follows the schedule."
        )
    return KernelDecayAdam(learning_rate=schedule.learning_rate, **decay)


# -- loss and metrics ----------------------------------------------------------


class SmoothedSparseCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits and integer labels, with label smoothing.

    With smoothing ``e`` over ``K`` classes the target is ``(1 - e)`` on the
    label plus ``e / K`` everywhere, so the loss is
    ``(1 - e) * nll + e * mean_k(-log p_k)``: one log-softmax, no one-hot.
    """

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


def make_loss(label_smoothing: float) -> keras.losses.Loss:
    """The training loss: Keras' sparse cross-entropy, or the smoothed one above."""
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy")
    return SmoothedSparseCrossEntropy(label_smoothing)


def make_metrics(num_classes: int) -> list:
    """Accuracy, and top-5 accuracy beyond 10 classes."""
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes > 10:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    return metrics


# -- the compiled model ---------------------------------------------------------


def build_config_model(config: ExperimentConfig, num_classes: int) -> keras.Model:
    """The configuration's (uncompiled) model."""
    return build_model(config.model, num_classes=num_classes, **dict(config.model_options))


def output_names(model) -> list[str]:
    """The model's output names, the main head ("logits") first."""
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs):
        names = [f"output_{index}" for index in range(len(model.outputs))]
    # The main head first: its metrics are the record's plain ones.
    if "logits" in names:
        names.remove("logits")
        names.insert(0, "logits")
    return names


def history_key(key: str, names: list[str]) -> str:
    """Maps Keras' per-output metric names to the record's names.

    For a model with outputs ("logits", "side_logits"), Keras logs
    "logits_accuracy"; the record calls the main output's metrics plainly
    ("accuracy") and keeps the others prefixed. Losses keep their names
    ("loss" is the weighted total, "logits_loss" the main head's).
    """
    if len(names) < 2:
        return key
    prefix = ""
    if key.startswith("val_"):
        prefix, key = "val_", key[4:]
    main = names[0] + "_"
    if key.startswith(main) and not key.endswith("_loss"):
        key = key[len(main):]
    return prefix + key


@dataclasses.dataclass
class CompiledModel:
    """A compiled model and what the training loop needs to know about it."""

    model: keras.Model
    schedule: Any
    output_names: list[str]
    loss: keras.losses.Loss
    loss_weights: dict[str, float] | None
    label_transform: Callable | None
    steps_per_execution: int
    notes: list[str]


def _steps_per_execution(config: ExperimentConfig, steps_per_epoch: int, strategy, notes: list[str]) -> int:
    steps = config.steps_per_execution
    if steps == "auto":
        steps = AUTO_STEPS_PER_EXECUTION["gpu" if tf.config.list_logical_devices("GPU") else "cpu"]
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
    return steps


def compile_model(config: ExperimentConfig, num_classes: int, steps_per_epoch: int,
                  strategy=None) -> CompiledModel:
    """Builds and compiles the configuration's model, optimizer, loss and metrics.

    Inside ``strategy``'s scope when one is given. The optimizer is built
    too, so its variables exist to be restored from a checkpoint before the
    first step.

    Raises:
        ValueError: for options the model or schedule reject, and for the
            plateau schedule without a validation split.

    Used in: helpers.training, benchmarks/throughput.py
    """
    notes: list[str] = []
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = build_config_model(config, num_classes)
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
        optimizer = make_optimizer(config, schedule, notes)
        loss = make_loss(config.label_smoothing)
        names = output_names(model)
        if len(names) == 1:
            compile_loss: Any = loss
            compile_metrics: Any = make_metrics(num_classes)
            loss_weights = None
            label_transform = None
        else:
            hint = dict(getattr(model, "loss_weights_hint", None) or {})
            loss_weights = {name: float(hint.get(name, 1.0)) for name in names}
            compile_loss = {name: make_loss(config.label_smoothing) for name in names}
            compile_metrics = {name: make_metrics(num_classes) for name in names}
            if isinstance(model.output, dict):
                label_transform = lambda labels: {name: labels for name in names}  # noqa: E731
            else:
                label_transform = lambda labels: tuple(labels for _ in names)  # noqa: E731
        steps = _steps_per_execution(config, steps_per_epoch, strategy, notes)
        model.compile(
            optimizer=optimizer,
            loss=compile_loss,
            loss_weights=loss_weights,
            metrics=compile_metrics,
            jit_compile=config.jit_compile,
            steps_per_execution=steps,
        )
        model.optimizer.build(model.trainable_variables)
        if strategy is not None:
            distribution.build_metric_state_outside_replicas(model, label_transform)
        if config.strategy == "multiworker":
            distribution.patch_multi_worker_log_reduction()
    return CompiledModel(model, schedule, names, loss, loss_weights, label_transform, steps, notes)
