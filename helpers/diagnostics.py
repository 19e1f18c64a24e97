"""Measurements on one fixed batch that never change the run: gradient norms and gates.

Each weight layer's gradient norm on a fixed batch (``batch_size`` training
images chosen class-stratified by ``helpers.training.measurement_indices``,
the same in every run; not augmented; in training mode) before the first step and
after every epoch, and for epsilon-ResNets every block's gate and largest
residual response (for an epsilon-ResNet built without gates, epsilon 0,
the largest residual responses alone, in inference and training mode: what
a gate would have compared with epsilon). Computed with ``model.stateless_call`` (and, for the
training-mode gates, with batch norm's statistics put back afterwards), so
diagnostics never change batch-norm statistics or random-number state:
turning them off changes nothing else.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from helpers.compilation import CompiledModel, is_decayed_variable, layer_key
from helpers.models import ADD_SUFFIX, GATE_SUFFIX, gate_layer_names, residual_add_layer_names

# ---------------------------------------------------------------------------
# Gate probes
# ---------------------------------------------------------------------------

# Probe models reading each block's residual F, cached per model and kind
# (at the gates, at the additions) so that a call per epoch does not rebuild
# them; weak keys let the models be collected.
_PROBES: "dict[str, weakref.WeakKeyDictionary[keras.Model, keras.Model]]" = {
    "gate": weakref.WeakKeyDictionary(), "add": weakref.WeakKeyDictionary()}


def _residuals(model: keras.Model, images, training: bool, kind: str) -> list:
    """(layer name, that block's residual F on ``images``) per block.

    ``kind="gate"``: F is each `EpsilonGate`'s input. ``kind="add"``: F is
    each ``<block>_add`` addition's second input (the first is the
    shortcut), which is F itself only in a net without gates.
    """
    names = gate_layer_names(model) if kind == "gate" else residual_add_layer_names(model)
    if not names:
        return []
    probe = _PROBES[kind].get(model)
    if probe is None:
        tensors = [model.get_layer(name).input if kind == "gate" else model.get_layer(name).input[1]
                   for name in names]
        probe = keras.Model(model.input, tensors, name=f"{model.name}_{kind}_probe")
        _PROBES[kind][model] = probe
    residuals = probe(ops.convert_to_tensor(images, dtype="float32"), training=training)
    if len(names) == 1 and not isinstance(residuals, (list, tuple)):
        residuals = [residuals]
    return list(zip(names, residuals))


def _largest_responses(pairs, suffix: str) -> dict[str, float]:
    return {name[: -len(suffix)]: float(ops.convert_to_numpy(ops.max(ops.abs(ops.cast(residual, "float32")))))
            for name, residual in pairs}


def block_responses(model: keras.Model, images, training: bool = False) -> dict[str, float]:
    """Returns each block's largest residual response ``max |F|`` on one batch, read at its addition.

    For nets without gates (an epsilon-ResNet with epsilon 0): F is the
    addition's second input. The same block names as :func:`gate_responses`
    (``"stage2_block3"``); empty for nets without ``<block>_add`` layers.
    ``training=True`` updates batch norm's moving statistics: save and restore
    them around the call (`Diagnostics` does).

    Used in: 06_sparse_gates
    """
    return _largest_responses(_residuals(model, images, training, "add"), ADD_SUFFIX)


def gate_states(model: keras.Model, images, training: bool = False) -> dict[str, float]:
    """Returns each gated block's gate value (0.0 = discarded, 1.0 = kept) on one batch.

    The gate is a property of a mini-batch (it looks at the largest
    ``|F|`` over the whole batch), so pass a fixed batch of the size used
    in training to make epochs comparable.

    Args:
        model: A model built with ``epsilon > 0``.
        images: One batch of normalised images, ``[N, 32, 32, 3]``.
        training: Run batch norm (and dropout) in training mode, as the
            gates see it during ``fit``. Note that this also updates batch
            norm's moving statistics, as any training-mode call does; the
            default (inference mode) leaves the model unchanged.

    Returns:
        ``{block name: gate}``, where the block name is the gate layer's name
        without ``"_gate"`` (e.g. ``"stage2_block3"``); empty without gates.

    Used in: 06_sparse_gates
    """
    states = {}
    for gate_name, residual in _residuals(model, images, training, "gate"):
        gate = model.get_layer(gate_name).gate_value(residual)
        states[gate_name[: -len(GATE_SUFFIX)]] = float(ops.convert_to_numpy(gate))
    return states


def gate_responses(model: keras.Model, images, training: bool = False) -> dict[str, float]:
    """Returns each gated block's largest residual response ``max |F|`` on one batch.

    This is the number each gate compares with epsilon: a block is discarded
    exactly when its largest response is at most epsilon, so the margin
    ``max |F| - epsilon`` says how far a block is from being discarded (or
    kept). Same arguments and block names as :func:`gate_states`.

    Used in: 06_sparse_gates
    """
    return _largest_responses(_residuals(model, images, training, "gate"), GATE_SUFFIX)


# ---------------------------------------------------------------------------
# The per-epoch measurements of a run
# ---------------------------------------------------------------------------


class Diagnostics:
    """Gradient norms, gate states and gate responses on one fixed batch.

    Args:
        compiled: The compiled model (its loss and loss weights give the
            gradient).
        images: The fixed batch, normalised as the pipeline does.
        labels: Its integer labels.
        record_gradients: Measure gradient norms (gates are measured whenever
            the model has gates).
        record_block_responses: For a net without gates, measure each
            block's largest residual response in inference and training mode
            (``helpers.records.measures_block_responses`` says which runs do).
    """

    def __init__(self, compiled: CompiledModel, images: np.ndarray, labels: np.ndarray,
                 record_gradients: bool, record_block_responses: bool = False):
        self.model = compiled.model
        self.images = tf.constant(images)
        self.labels = tf.constant(labels)
        self.record_gradients = record_gradients
        self.output_names = compiled.output_names
        self.loss = compiled.loss
        self.loss_weights = compiled.loss_weights
        variables = self.model.trainable_variables
        self.kernel_indices = [i for i, v in enumerate(variables) if is_decayed_variable(v)]
        self.layer_names = [layer_key(variables[i]) for i in self.kernel_indices]
        self._gradient_function = None
        self.gate_names = list(gate_layer_names(self.model))
        self.record_block_responses = bool(record_block_responses) and not self.gate_names

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
        """{layer: norm of its kernel's gradient}; empty when not recorded."""
        if not self.record_gradients or not self.kernel_indices:
            return {}
        if self._gradient_function is None:
            self._gradient_function = self._build_gradient_function()
        _, norms = self._gradient_function(self.images, self.labels)
        values = np.asarray(norms, dtype=np.float64)
        return {name: float(value) for name, value in zip(self.layer_names, values)}

    def gate_states(self) -> dict[str, float]:
        """{block: gate} in inference mode; empty without gates."""
        if not self.gate_names:
            return {}
        return {str(k): float(v) for k, v in gate_states(self.model, self.images).items()}

    def _in_training_mode(self, function):
        # A training-mode call updates batch norm's moving statistics, so they
        # are saved first and put back after: the run is left as it was.
        saved = [(variable, np.array(variable.numpy(), copy=True))
                 for variable in self.model.non_trainable_variables]
        try:
            return function(self.model, self.images, training=True)
        finally:
            for variable, value in saved:
                variable.assign(value)

    def gate_states_in_training_mode(self) -> dict[str, float]:
        """The gates as ``fit`` sees them: batch norm on the batch's statistics."""
        if not self.gate_names:
            return {}
        return {str(k): float(v) for k, v in self._in_training_mode(gate_states).items()}

    def block_responses(self) -> tuple[dict[str, float], dict[str, float]]:
        """({block: largest |F|} in inference mode, the same in training mode); empty when not recorded."""
        if not self.record_block_responses:
            return {}, {}
        inference = block_responses(self.model, self.images)
        return inference, self._in_training_mode(block_responses)

    def gate_responses(self) -> dict[str, float]:
        """{block: largest |F|}, the number each gate compares with epsilon."""
        if not self.gate_names:
            return {}
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
        inference, training_mode = self.block_responses()
        if inference:
            diagnostics.setdefault("block_response_epochs", []).append(epoch)
            for key, values in (("block_responses", inference), ("block_responses_training", training_mode)):
                store = diagnostics.setdefault(key, {})
                for name, value in values.items():
                    store.setdefault(name, []).append(value)
