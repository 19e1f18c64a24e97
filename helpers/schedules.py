"""Learning-rate and momentum schedules, the plateau rule and the LR range test.

Where Keras ships the schedule, it is Keras': step decay is
``keras.optimizers.schedules.PiecewiseConstantDecay`` and cosine with
warm-up is ``CosineDecay`` (with ``warmup_steps``/``warmup_target``), built
by :func:`make_schedule`; tests pin their values, update by update, to the
schedules this module used to define. The ones below are ours because Keras
has no equivalent; each is written with ``keras.ops`` only, so it runs
inside a compiled train step under the TensorFlow, JAX and torch backends,
and is registered with Keras under the ``cifar_lab`` package so a saved
model or optimizer that uses one loads again. Steps are optimizer updates
counted from 0: the rate at step ``s`` is the one used by the ``s+1``-th
update (Keras evaluates a schedule at ``optimizer.iterations`` before
incrementing it).

The schedules, and the notebooks whose studies use them:

* ``constant`` (01, 02) -- the baseline: a float rate.
* ``step`` (02, 03, 05, 06) -- piecewise constant, by epoch or by
  iteration, with the optional short warm-up He et al. used for ResNet-110
  (Keras' ``PiecewiseConstantDecay``).
* ``plateau`` (02, 04) -- :func:`make_plateau_callback`: Keras'
  ReduceLROnPlateau on the validation loss, the student's rule (factor 0.1,
  patience 10).
* ``cosine`` (02, 07) -- linear warm-up, then a half cosine (Keras'
  ``CosineDecay``).
* ``clr`` (05) -- :class:`CyclicalLearningRate`: Smith (2017) triangular,
  triangular2 and exp_range, the reference formula verbatim.
* ``onecycle`` (05) -- :class:`OneCycleLearningRate` and
  :class:`OneCycleMomentum`: Smith (2018), one cycle, momentum cycled
  inversely, then an annihilation phase. Keras' SGD bakes ``momentum`` into
  the compiled step as a Python float, so a momentum schedule needs
  :class:`ScheduledMomentumSGD`.
* :func:`lr_find` (05) -- the LR range test, on an :class:`ExponentialRamp`.

:func:`make_schedule` turns a schedule name and the run's length into the
optimizer arguments and callbacks; :func:`learning_rate_at` reads any of them
at a given step (for plots and run records).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Iterable, Iterator, Sequence

import keras
import numpy as np
from keras import ops

from helpers.experiment import SCHEDULES
from helpers.range_reading import RangeTestReading, read_range_test  # noqa: F401 (re-exported)

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule

_register = keras.saving.register_keras_serializable(package="cifar_lab")

# The names make_schedule accepts (defined with the configuration, which checks them without Keras).
SCHEDULE_NAMES = SCHEDULES
CLR_MODES = ("triangular", "triangular2", "exp_range")


# --------------------------------------------------------------------------
# Validation helpers


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return value


def _non_negative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
    return value


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0. Received: {name}={value!r}")
    return int(value)


def _fraction(name: str, value: Any, *, upper: float = 1.0) -> float:
    value = _positive_float(name, value)
    if value > upper:
        raise ValueError(
            f"`{name}` must be in (0, {upper}]. Received: {name}={value!r}"
        )
    return value


def _float_step(step: Any):
    # float32 holds every integer up to 2**24 (16.7M updates) exactly, far
    # beyond any CIFAR run, so step arithmetic in float32 loses nothing.
    return ops.cast(step, "float32")


def _piecewise_linear(step, knots: Sequence[tuple[float, float]]):
    """Linear interpolation through ``knots`` (x ascending), flat outside them.

    Knots are Python numbers, so the segments unroll at trace time into a few
    ``ops.where`` calls; a zero-length segment is a jump.
    """
    step = _float_step(step)
    value = ops.full_like(step, knots[0][1])
    for (x0, y0), (x1, y1) in zip(knots[:-1], knots[1:]):
        if x1 <= x0:
            value = ops.where(step >= x1, ops.full_like(step, y1), value)
            continue
        fraction = ops.clip((step - x0) / (x1 - x0), 0.0, 1.0)
        value = ops.where(step >= x0, y0 + (y1 - y0) * fraction, value)
    return value


def _half_cosine(step, value, start: tuple[float, float], end: tuple[float, float]):
    """``value`` with the segment from ``start`` to ``end`` replaced by a half cosine.

    From ``start = (x0, y0)`` to ``end = (x1, y1)`` the result is
    ``y1 + (y0 - y1) * (1 + cos(pi * t)) / 2`` with ``t = (step - x0) / (x1 - x0)``
    (PyTorch's ``anneal_strategy="cos"``); from ``x1`` on it is ``y1``.
    """
    step = _float_step(step)
    (x0, y0), (x1, y1) = start, end
    fraction = ops.clip((step - x0) / max(x1 - x0, 1.0), 0.0, 1.0)
    # (1 + cos(pi t)) / 2 written as cos(pi t / 2)^2: no cancellation in float32 near t = 1.
    falling = y1 + (y0 - y1) * ops.square(ops.cos(0.5 * math.pi * fraction))
    return ops.where(step >= x0, falling, value)


# --------------------------------------------------------------------------
# Schedules Keras does not ship. Step decay and cosine with warm-up are
# Keras' own (PiecewiseConstantDecay, CosineDecay), built in make_schedule.


# Ours: Keras has no cyclical schedule (CosineDecayRestarts jumps back to the peak, never ramps).
@_register
class CyclicalLearningRate(LearningRateSchedule):
    """Smith's (2017) cyclical learning rate, the reference formula.

    With ``cycle = floor(1 + step / (2 * step_size))`` and
    ``x = |step / step_size - 2 * cycle + 1|``::

        rate = base + (max - base) * max(0, 1 - x) * scale

    where ``scale`` is 1 (``triangular``), ``1 / 2**(cycle - 1)``
    (``triangular2``: the amplitude halves every cycle) or ``gamma**step``
    (``exp_range``). A cycle is ``2 * step_size`` updates; the rate is
    ``base`` at step 0 and at every multiple of ``2 * step_size``, and peaks
    at odd multiples of ``step_size``. This is the formula of the paper
    (arXiv 1506.01186, section 3.1) and of its reference implementation
    (bckenstler/CLR).

    Args:
        base_learning_rate: Lower bound of the cycle (>= 0).
        max_learning_rate: Upper bound (> base).
        step_size: Updates per half cycle; the paper advises 2-10 epochs'
            worth.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: Per-update amplitude decay for ``exp_range``, in (0, 1].

    Raises:
        ValueError: On an unknown mode or an out-of-range value.

    Used in: 05_cyclical_lr
    """

    def __init__(
        self,
        base_learning_rate: float,
        max_learning_rate: float,
        step_size: int,
        mode: str = "triangular",
        gamma: float = 1.0,
    ):
        self.base_learning_rate = _non_negative_float("base_learning_rate", base_learning_rate)
        self.max_learning_rate = _positive_float("max_learning_rate", max_learning_rate)
        if self.max_learning_rate <= self.base_learning_rate:
            raise ValueError(
                "`max_learning_rate` must exceed `base_learning_rate`. Received: "
                f"base_learning_rate={base_learning_rate}, max_learning_rate={max_learning_rate}"
            )
        self.step_size = _positive_int("step_size", step_size)
        if mode not in CLR_MODES:
            raise ValueError(f"`mode` must be one of {CLR_MODES}. Received: mode={mode!r}")
        self.mode = mode
        self.gamma = _fraction("gamma", gamma)

    def __call__(self, step):
        step = _float_step(step)
        cycle = ops.floor(1.0 + step / (2.0 * self.step_size))
        x = ops.abs(step / self.step_size - 2.0 * cycle + 1.0)
        if self.mode == "triangular":
            scale = ops.ones_like(step)
        elif self.mode == "triangular2":
            scale = ops.power(2.0, 1.0 - cycle)
        else:
            # gamma**step via exp(step * log(gamma)) with the log taken in
            # float64: 0.9999 rounded to float32 and raised to the 6000th
            # power is off by 1e-4 relative; this is exact to float32.
            scale = ops.exp(step * math.log(self.gamma))
        amplitude = self.max_learning_rate - self.base_learning_rate
        rate = self.base_learning_rate + amplitude * ops.maximum(0.0, 1.0 - x) * scale
        return ops.cast(rate, "float32")

    def get_config(self) -> dict:
        return {
            "base_learning_rate": self.base_learning_rate,
            "max_learning_rate": self.max_learning_rate,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
        }


def _one_cycle_steps(total_steps: int, pct_start: float) -> tuple[int, int, int]:
    """Peak, trough and end step of a one-cycle run."""
    peak_step = max(1, round(pct_start * total_steps))
    # The last update is step total_steps - 1; ending the annihilation there
    # means the final update really runs at the final rate.
    return peak_step, 2 * peak_step, max(total_steps - 1, 2 * peak_step)


# Ours: Keras has no piecewise-linear schedule to build one-cycle's three phases from.
@_register
class OneCycleLearningRate(LearningRateSchedule):
    """Smith's (2018) one-cycle rate: up, down, then annihilation.

    Piecewise linear through four points (``p = round(pct_start *
    total_steps)``):

    * step 0: ``max_learning_rate / div_factor`` (the initial rate),
    * step ``p``: ``max_learning_rate``,
    * step ``2p``: the initial rate again (a symmetric triangle),
    * step ``total_steps - 1`` (the last update): the initial rate divided by
      ``final_div_factor``.

    Smith's rule is one cycle shorter than the run and, for the remaining
    updates, a rate "several orders of magnitude" below the initial one; the
    phases here are those of PyTorch's ``OneCycleLR(three_phase=True,
    anneal_strategy="linear")`` with the same defaults.

    With ``fall="cosine"`` there are two phases instead: the same linear rise
    to the peak at step ``p``, then one half cosine from the peak straight
    down to the final rate at the last update (the shape of the usual
    hand-written Keras one-cycle, and the fall of PyTorch's two-phase
    ``OneCycleLR(anneal_strategy="cos")``).

    Args:
        max_learning_rate: The peak rate (from :func:`lr_find`).
        total_steps: Updates in the whole run.
        pct_start: Fraction of the run spent rising, in (0, 0.5]; the fall
            takes as long, the annihilation the rest.
        div_factor: Peak / initial rate.
        final_div_factor: Initial / final rate.
        fall: ``"linear"`` (three phases, as above) or ``"cosine"`` (two).

    Used in: 05_cyclical_lr
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        fall: str = "linear",
    ):
        self.fall = _fall(fall)
        self.max_learning_rate = _positive_float("max_learning_rate", max_learning_rate)
        self.total_steps = _positive_int("total_steps", total_steps)
        self.pct_start = _fraction("pct_start", pct_start, upper=0.5)
        self.div_factor = _positive_float("div_factor", div_factor)
        self.final_div_factor = _positive_float("final_div_factor", final_div_factor)
        if self.div_factor < 1 or self.final_div_factor < 1:
            raise ValueError(
                "`div_factor` and `final_div_factor` must be >= 1. Received: "
                f"div_factor={div_factor}, final_div_factor={final_div_factor}"
            )

    @property
    def initial_learning_rate(self) -> float:
        return self.max_learning_rate / self.div_factor

    @property
    def final_learning_rate(self) -> float:
        return self.initial_learning_rate / self.final_div_factor

    @property
    def phase_steps(self) -> tuple[int, int, int]:
        """(peak step, step back at the initial rate, last step)."""
        return _one_cycle_steps(self.total_steps, self.pct_start)

    def __call__(self, step):
        peak, trough, end = self.phase_steps
        if self.fall == "cosine":
            rising = _piecewise_linear(step, [(0.0, self.initial_learning_rate),
                                              (float(peak), self.max_learning_rate)])
            value = _half_cosine(step, rising, (float(peak), self.max_learning_rate),
                                 (float(self.total_steps - 1), self.final_learning_rate))
            return ops.cast(value, "float32")
        knots = [
            (0.0, self.initial_learning_rate),
            (float(peak), self.max_learning_rate),
            (float(trough), self.initial_learning_rate),
            (float(end), self.final_learning_rate),
        ]
        return ops.cast(_piecewise_linear(step, knots), "float32")

    def get_config(self) -> dict:
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "fall": self.fall,
        }


def _fall(fall: Any) -> str:
    if fall not in ONE_CYCLE_FALLS:
        raise ValueError(f"`fall` must be one of {ONE_CYCLE_FALLS}. Received: fall={fall!r}")
    return fall


ONE_CYCLE_FALLS = ("linear", "cosine")


# Ours: Keras schedules only learning rates; this one drives ScheduledMomentumSGD's momentum.
@_register
class OneCycleMomentum(LearningRateSchedule):
    """Momentum cycled inversely to :class:`OneCycleLearningRate`.

    ``max_momentum`` at step 0, down linearly to ``min_momentum`` at the rate's
    peak, back up to ``max_momentum`` when the rate is back at its initial
    value, then held there through the annihilation. With ``fall="cosine"``
    it climbs back along a half cosine over the rate's whole fall instead. Smith (2018) found that
    a falling momentum while the rate rises keeps the effective step size
    ``rate / (1 - momentum)`` from growing too fast (0.95 -> 0.85 -> 0.95).

    It is a ``LearningRateSchedule`` only so Keras can call and serialise it;
    pass it as ``momentum`` to :class:`ScheduledMomentumSGD`.

    Args:
        total_steps: Updates in the whole run (as for the rate).
        pct_start: As for the rate.
        max_momentum: Momentum at the start and the end.
        min_momentum: Momentum at the rate's peak.
        fall: As for the rate.

    Used in: 05_cyclical_lr
    """

    def __init__(
        self,
        total_steps: int,
        pct_start: float = 0.3,
        max_momentum: float = 0.95,
        min_momentum: float = 0.85,
        fall: str = "linear",
    ):
        self.fall = _fall(fall)
        self.total_steps = _positive_int("total_steps", total_steps)
        self.pct_start = _fraction("pct_start", pct_start, upper=0.5)
        self.max_momentum = _fraction("max_momentum", max_momentum)
        self.min_momentum = _non_negative_float("min_momentum", min_momentum)
        if self.min_momentum > self.max_momentum:
            raise ValueError(
                "`min_momentum` must not exceed `max_momentum`. Received: "
                f"min_momentum={min_momentum}, max_momentum={max_momentum}"
            )

    def __call__(self, step):
        peak, trough, end = _one_cycle_steps(self.total_steps, self.pct_start)
        if self.fall == "cosine":
            falling = _piecewise_linear(step, [(0.0, self.max_momentum), (float(peak), self.min_momentum)])
            value = _half_cosine(step, falling, (float(peak), self.min_momentum),
                                 (float(self.total_steps - 1), self.max_momentum))
            return ops.cast(value, "float32")
        knots = [
            (0.0, self.max_momentum),
            (float(peak), self.min_momentum),
            (float(trough), self.max_momentum),
            (float(end), self.max_momentum),
        ]
        return ops.cast(_piecewise_linear(step, knots), "float32")

    def get_config(self) -> dict:
        return {
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "max_momentum": self.max_momentum,
            "min_momentum": self.min_momentum,
            "fall": self.fall,
        }


# Ours: Keras' ExponentialDecay(min, num_steps - 1, max / min) is this formula but takes the power
# in float32 (1.3e-6 relative, ~20 ulps, off over lr_find's default range): that would move the
# suggested rates, and with them the run ids of 05_cyclical_lr's arms.
@_register
class ExponentialRamp(LearningRateSchedule):
    """Rate growing geometrically from a minimum to a maximum (the LR range test).

    ``rate(step) = min * (max / min) ** (step / (num_steps - 1))``: ``min`` at
    step 0, ``max`` at step ``num_steps - 1``, the same ratio between any two
    consecutive steps.

    Args:
        min_learning_rate: Rate at step 0 (> 0).
        max_learning_rate: Rate at step ``num_steps - 1`` (> min).
        num_steps: Length of the ramp (>= 2).

    Used in: 05_cyclical_lr
    """

    def __init__(self, min_learning_rate: float, max_learning_rate: float, num_steps: int):
        self.min_learning_rate = _positive_float("min_learning_rate", min_learning_rate)
        self.max_learning_rate = _positive_float("max_learning_rate", max_learning_rate)
        if self.max_learning_rate <= self.min_learning_rate:
            raise ValueError(
                "`max_learning_rate` must exceed `min_learning_rate`. Received: "
                f"min_learning_rate={min_learning_rate}, max_learning_rate={max_learning_rate}"
            )
        self.num_steps = _positive_int("num_steps", num_steps)
        if self.num_steps < 2:
            raise ValueError(f"`num_steps` must be at least 2. Received: num_steps={num_steps}")

    def __call__(self, step):
        step = _float_step(step)
        log_ratio = math.log(self.max_learning_rate / self.min_learning_rate)
        exponent = log_ratio * step / (self.num_steps - 1)
        return ops.cast(self.min_learning_rate * ops.exp(exponent), "float32")

    def get_config(self) -> dict:
        return {
            "min_learning_rate": self.min_learning_rate,
            "max_learning_rate": self.max_learning_rate,
            "num_steps": self.num_steps,
        }


def learning_rate_at(schedule: Any, step: int) -> float:
    """The rate (or momentum) a schedule gives at one update step.

    Args:
        schedule: A number, a ``LearningRateSchedule`` (momentum schedules
            included) or the :class:`TrainingSchedule` from
            :func:`make_schedule` (its ``learning_rate``; for ``plateau`` that
            is the starting rate, since later rates depend on the run).
        step: Update count from 0.

    Returns:
        The value as a Python float.

    Raises:
        ValueError: For anything else, or a negative step.

    Used in: 06_sparse_gates (through helpers.findings.weight_decay_shrink)
    """
    step = _non_negative_int("step", step)
    if isinstance(schedule, TrainingSchedule):
        schedule = schedule.learning_rate
    if isinstance(schedule, LearningRateSchedule):
        return float(ops.convert_to_numpy(schedule(step)))
    if isinstance(schedule, (int, float, np.number)) and not isinstance(schedule, bool):
        return float(schedule)
    raise ValueError(
        "`schedule` must be a number, a LearningRateSchedule or a TrainingSchedule. "
        f"Received: schedule={schedule!r}"
    )


# --------------------------------------------------------------------------
# SGD whose momentum follows a schedule


# Ours: Keras' SGD bakes `momentum` into the traced step as a float, so it cannot follow a schedule.
@_register
class ScheduledMomentumSGD(keras.optimizers.SGD):
    """SGD (optionally Nesterov) whose momentum may follow a schedule.

    Keras' ``SGD`` reads ``self.momentum`` as a Python float while tracing
    its train step, so changing it later (from a callback, say) has no effect
    on a compiled step. Here, when ``momentum`` is a schedule it is evaluated
    at ``self.iterations`` inside ``update_step`` with ``keras.ops``, the same
    way Keras evaluates a learning-rate schedule, so every update uses the
    momentum of its own step. With a float it behaves exactly like
    ``keras.optimizers.SGD``.

    Update (as Keras' SGD)::

        velocity = momentum * velocity - learning_rate * gradient
        variable += velocity                                  # classical
        variable += momentum * velocity - learning_rate * gradient  # nesterov

    Args:
        learning_rate: A float or a ``LearningRateSchedule``.
        momentum: A float in [0, 1] or a schedule mapping step -> momentum
            (e.g. :class:`OneCycleMomentum`).
        nesterov: Whether to use Nesterov momentum.
        weight_decay: Decoupled weight decay, as in Keras' optimizers.
        **kwargs: Any other ``keras.optimizers.Optimizer`` argument.

    Raises:
        ValueError: If ``momentum`` is neither a float in [0, 1] nor a
            schedule.

    Used in: every SGD run (compilation.KernelDecaySGD); momentum schedule in 05_cyclical_lr
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.01,
        momentum: float | LearningRateSchedule = 0.0,
        nesterov: bool = False,
        weight_decay: float | None = None,
        **kwargs,
    ):
        if isinstance(momentum, LearningRateSchedule):
            schedule = momentum
            momentum = 0.0
        elif (
            isinstance(momentum, (int, float, np.number))
            and not isinstance(momentum, bool)
            and 0.0 <= float(momentum) <= 1.0
        ):
            schedule = None
            momentum = float(momentum)
        else:
            raise ValueError(
                "`momentum` must be a float in [0, 1] or a LearningRateSchedule. "
                f"Received: momentum={momentum!r}"
            )
        super().__init__(
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            **kwargs,
        )
        if schedule is not None:
            # A schedule object is truthy against SGD.build's `momentum != 0`
            # test, so the velocity slots get created.
            self.momentum = schedule

    @property
    def has_momentum_schedule(self) -> bool:
        return isinstance(self.momentum, LearningRateSchedule)

    def _momentum_tensor(self, dtype):
        if self.has_momentum_schedule:
            return ops.cast(self.momentum(self.iterations), dtype)
        return ops.cast(self.momentum, dtype)

    def momentum_at(self, step: int | None = None) -> float:
        """The momentum used by update ``step`` (default: the next update).

        Args:
            step: Update count from 0; None for ``self.iterations``.

        Returns:
            The momentum as a Python float.
        """
        if step is None:
            step = int(ops.convert_to_numpy(self.iterations))
        if self.has_momentum_schedule:
            return learning_rate_at(self.momentum, step)
        return float(self.momentum)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if not self.momentums:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        momentum = self._momentum_tensor(variable.dtype)
        velocity = self.momentums[self._get_variable_index(variable)]
        self.assign(
            velocity,
            ops.subtract(ops.multiply(velocity, momentum), ops.multiply(gradient, learning_rate)),
        )
        if self.nesterov:
            self.assign_add(
                variable,
                ops.subtract(
                    ops.multiply(velocity, momentum), ops.multiply(gradient, learning_rate)
                ),
            )
        else:
            self.assign_add(variable, velocity)

    def get_config(self) -> dict:
        config = super().get_config()
        if self.has_momentum_schedule:
            config["momentum"] = keras.optimizers.schedules.serialize(self.momentum)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("momentum"), dict):
            config["momentum"] = keras.optimizers.schedules.deserialize(
                config["momentum"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)


# --------------------------------------------------------------------------
# ReduceLROnPlateau


def _optimizer_with_learning_rate(optimizer):
    # A mixed-precision LossScaleOptimizer keeps the rate on its inner optimizer.
    return getattr(optimizer, "inner_optimizer", optimizer)


# Keras' own callback, subclassed only to refuse a scheduled optimizer before training. Its counters
# are restored on resume by helpers.training (keras.callbacks.BackupAndRestore does not keep them).
class ReduceLearningRateOnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau that refuses, clearly, a scheduled optimizer.

    Keras' callback assigns the optimizer's learning-rate variable, which
    only exists when the optimizer was built with a float rate; with a
    schedule it would fail mid-training with a TypeError. This subclass checks
    at the start of training (and at each epoch end, for callers who drive it
    by hand) and raises a ValueError that says what to do.

    Used in: 02_lr_schedules, 04_dropout
    """

    def _check_optimizer(self) -> None:
        model = getattr(self, "model", None)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                "The plateau callback needs a compiled model with an optimizer. "
                f"Received: model={model!r}"
            )
        rate = getattr(_optimizer_with_learning_rate(optimizer), "_learning_rate", None)
        if not isinstance(rate, keras.Variable):
            raise ValueError(
                "ReduceLROnPlateau can only change a float learning rate: build the "
                "optimizer with learning_rate=<float>, not a schedule. "
                f"Received: learning_rate={rate!r}"
            )

    def on_train_begin(self, logs=None):
        self._check_optimizer()
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._check_optimizer()
        super().on_epoch_end(epoch, logs)


def make_plateau_callback(
    factor: float = 0.1,
    patience: int = 10,
    min_learning_rate: float = 0.0,
    monitor: str = "val_loss",
    min_delta: float = 1e-4,
    cooldown: int = 0,
    verbose: int = 0,
) -> ReduceLearningRateOnPlateau:
    """ReduceLROnPlateau on the validation loss (the student's factor 0.1, patience 10).

    After ``patience`` epochs in a row without the monitored value improving
    by more than ``min_delta``, the rate is multiplied by ``factor``, never
    going below ``min_learning_rate``. Plateaus are judged on the validation
    split, never on the test set.

    Args:
        factor: Multiplier in (0, 1).
        patience: Epochs without improvement before a reduction.
        min_learning_rate: Floor for the rate.
        monitor: Metric in the epoch logs; ``"val_loss"`` by default.
        min_delta: Smallest change that counts as an improvement.
        cooldown: Epochs to wait after a reduction before counting again.
        verbose: 1 to print each reduction.

    Returns:
        The callback. The optimizer must be built with a float learning rate.

    Raises:
        ValueError: On out-of-range arguments; at training start, when the
            optimizer's learning rate is a schedule.

    Used in: 02_lr_schedules, 04_dropout
    """
    factor = _positive_float("factor", factor)
    if factor >= 1.0:
        raise ValueError(f"`factor` must be in (0, 1). Received: factor={factor}")
    patience = _positive_int("patience", patience)
    min_learning_rate = _non_negative_float("min_learning_rate", min_learning_rate)
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"`monitor` must be a metric name. Received: monitor={monitor!r}")
    return ReduceLearningRateOnPlateau(
        monitor=monitor,
        factor=factor,
        patience=patience,
        min_lr=min_learning_rate,
        min_delta=_non_negative_float("min_delta", min_delta),
        cooldown=_non_negative_int("cooldown", cooldown),
        verbose=verbose,
    )


# --------------------------------------------------------------------------
# Factory


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingSchedule:
    """What :func:`make_schedule` returns: everything the optimizer and fit need.

    Attributes:
        name: The schedule name.
        learning_rate: A float or a ``LearningRateSchedule`` for the
            optimizer's ``learning_rate``.
        momentum: None (use the run's fixed momentum) or a schedule for
            :class:`ScheduledMomentumSGD`'s ``momentum``. Optimizers without
            momentum (Adam) ignore it.
        callbacks: Callbacks to pass to ``fit`` (the plateau rule). Each
            callback is stateful: make a new schedule for every run.
        options: Every option with its resolved value, defaults included
            (JSON-friendly, for run records).
        steps_per_epoch: Updates per epoch the schedule was built for.
        num_epochs: Epochs the schedule was built for.

    Used in: helpers.compilation, helpers.training (every run), findings.weight_decay_shrink (06)
    """

    name: str
    learning_rate: float | LearningRateSchedule
    momentum: LearningRateSchedule | None
    callbacks: list
    options: dict
    steps_per_epoch: int
    num_epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.num_epochs

    def describe(self) -> str:
        """One line naming the schedule and every resolved option."""
        options = ", ".join(f"{key}={_short(value)}" for key, value in self.options.items())
        return (
            f"{self.name} schedule over {self.num_epochs} epochs x {self.steps_per_epoch} "
            f"steps ({self.total_steps} updates): {options}"
        )


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


# Defaults, and why. Each default scales with the run's length so a 10-epoch
# "quick" run and a 200-epoch "full" run get the same shape.
#
# step: /10 at 50% and 75% of the epochs -- He et al. divide at 32k and 48k
#   of 64k updates, exactly these fractions.
# plateau: factor 0.1, patience 10 -- the student's recipe; floor at
#   learning_rate / 1000, i.e. at most three reductions (one more than He et
#   al.'s schedule uses), because after that the run has stopped improving.
# cosine: warm-up of one epoch (He et al.'s ResNet-110 warm-up was ~400
#   updates, one epoch at batch 128) but at most 5% of the run so a short
#   run spends its budget decaying; floor 0 as in SGDR (Loshchilov & Hutter).
# clr: `learning_rate` is the maximum (what lr_find suggests); base = max/4
#   (CLR paper section 3.3: "set base_lr to 1/3 or 1/4 of max_lr"); a half
#   cycle of about 4 epochs (the paper: 2-10 epochs), rounded so the run is a
#   whole number of cycles -- the paper advises stopping at a cycle's end,
#   when the rate is back at base. exp_range's gamma defaults to
#   0.1**(1/total_steps): the amplitude falls to a tenth by the end (the
#   reference example's 0.99994 does the same over ~40k updates).
# onecycle: `learning_rate` is the peak; pct_start 0.3 (PyTorch's
#   three-phase default, inside Smith's 30-45% rising); div_factor 25 (start
#   at max/25, the fastai/PyTorch default, close to the 0.1-3.0 span of the
#   super-convergence runs); final_div_factor 1e4 ("several orders of
#   magnitude" below the start, Smith 2018 section 4.1); momentum 0.95 ->
#   0.85 -> 0.95 (Smith 2018).
_CLR_HALF_CYCLE_EPOCHS = 4


def _default_step_boundary_epochs(num_epochs: int) -> list[int]:
    epochs = sorted({int(fraction * num_epochs) for fraction in (0.5, 0.75)})
    return [e for e in epochs if 0 < e < num_epochs]


def _default_clr_step_size(steps_per_epoch: int, num_epochs: int) -> int:
    num_cycles = max(1, round(num_epochs / (2 * _CLR_HALF_CYCLE_EPOCHS)))
    return max(1, (steps_per_epoch * num_epochs) // (2 * num_cycles))


def _take_options(name: str, options: dict, defaults: dict) -> dict:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        received = ", ".join(f"{key}={options[key]!r}" for key in unknown)
        raise ValueError(
            f"Unknown option(s) for schedule {name!r}; expected some of "
            f"{sorted(defaults)}. Received: {received}"
        )
    return {**defaults, **options}


def _step_boundaries(
    learning_rate: float,
    steps_per_epoch: int,
    *,
    boundary_epochs: Sequence[int] | None,
    boundary_steps: Sequence[int] | None,
    factor: float,
    values: Sequence[float] | None,
) -> tuple[list[int], list[float]]:
    """Step decay's boundaries (in updates) and rates, checked.

    ``values[i]`` is the rate from update ``boundaries[i-1]`` (inclusive) up
    to ``boundaries[i]``; by default each boundary multiplies by ``factor``.
    """
    if (boundary_epochs is None) == (boundary_steps is None):
        raise ValueError(
            "Give exactly one of `boundary_epochs` and `boundary_steps`. "
            f"Received: boundary_epochs={boundary_epochs}, boundary_steps={boundary_steps}"
        )
    if boundary_epochs is not None:
        epochs = [_positive_int("boundary_epochs", e) for e in boundary_epochs]
        boundaries = [e * steps_per_epoch for e in epochs]
    else:
        boundaries = [_positive_int("boundary_steps", s) for s in boundary_steps]
    if any(b1 <= b0 for b0, b1 in zip(boundaries, boundaries[1:])):
        raise ValueError(
            f"The boundaries must be strictly increasing. Received: boundaries={boundaries}"
        )
    if values is None:
        factor = _positive_float("factor", factor)
        if factor >= 1.0:
            raise ValueError(f"`factor` must be in (0, 1). Received: factor={factor}")
        values = [learning_rate * factor**i for i in range(len(boundaries) + 1)]
    else:
        values = [_positive_float("values", v) for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                "`values` must hold one more rate than there are boundaries. "
                f"Received: boundaries={boundaries}, values={values}"
            )
        if not math.isclose(values[0], learning_rate):
            raise ValueError(
                "`values[0]` must equal `learning_rate`. "
                f"Received: learning_rate={learning_rate}, values={values}"
            )
    return boundaries, values


def _step_decay(
    boundaries: Sequence[int],
    values: Sequence[float],
    warmup_steps: int,
    warmup_learning_rate: float,
) -> LearningRateSchedule:
    """Keras' PiecewiseConstantDecay giving ``values`` between ``boundaries``, after a warm-up.

    The rate is ``warmup_learning_rate`` for ``step < warmup_steps``, then
    ``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]``. Keras
    switches one update later (``values[i+1]`` for ``step > boundaries[i]``),
    so each change is given to it at ``boundary - 1``: for whole steps
    ``step > b - 1`` is ``step >= b``. A test pins the values to the
    StepDecay this replaced, update by update.
    """

    def rate_at(step: int) -> float:
        if step < warmup_steps:
            return warmup_learning_rate
        return values[sum(step >= boundary for boundary in boundaries)]

    changes = sorted({*boundaries, *([warmup_steps] if warmup_steps else [])})
    keras_values = [rate_at(0)] + [rate_at(change) for change in changes]
    if not changes:
        # Keras needs one boundary; one with the same rate on both sides changes nothing.
        changes, keras_values = [1], keras_values * 2
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [change - 1 for change in changes], keras_values
    )


def _cosine_decay(
    learning_rate: float,
    total_steps: int,
    *,
    warmup_steps: int,
    min_learning_rate: float,
    warmup_start_learning_rate: float,
) -> LearningRateSchedule:
    """Keras' CosineDecay: linear warm-up, then a half cosine to a floor.

    For ``step < warmup_steps`` the rate rises linearly from
    ``warmup_start_learning_rate`` towards ``learning_rate``; afterwards it is
    ``min + (learning_rate - min) * (1 + cos(pi * p)) / 2`` with
    ``p = (step - warmup_steps) / (total_steps - warmup_steps)`` clipped to
    [0, 1]. Keras writes the floor as ``alpha = min / learning_rate``. A test
    pins the values to the WarmupCosineDecay this replaced: bit for bit with
    the default floor and start of 0, within 2 float32 ulps otherwise.
    """
    warmup_steps = _non_negative_int("warmup_steps", warmup_steps)
    if warmup_steps >= total_steps:
        raise ValueError(
            "`warmup_steps` must be smaller than the run's updates. "
            f"Received: warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    min_learning_rate = _non_negative_float("min_learning_rate", min_learning_rate)
    if min_learning_rate > learning_rate:
        raise ValueError(
            "`min_learning_rate` must not exceed `learning_rate`. "
            f"Received: min_learning_rate={min_learning_rate}, learning_rate={learning_rate}"
        )
    warmup_start_learning_rate = _non_negative_float(
        "warmup_start_learning_rate", warmup_start_learning_rate
    )
    alpha = min_learning_rate / learning_rate
    if not warmup_steps:
        return keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        warmup_start_learning_rate,
        total_steps - warmup_steps,
        alpha=alpha,
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )


def make_schedule(
    name: str,
    *,
    learning_rate: float,
    steps_per_epoch: int,
    num_epochs: int,
    **options: Any,
) -> TrainingSchedule:
    """Builds a named schedule for a run of ``num_epochs`` x ``steps_per_epoch`` updates.

    ``learning_rate`` is the run's main rate: the constant rate, the rate
    before the first step-decay boundary or plateau reduction, the cosine
    peak, and the maximum of the cyclical and one-cycle schedules.

    Options (all optional; defaults scale with the run, see the module
    source for the reasons):

    * ``constant``: none.
    * ``step``: ``boundary_epochs`` (default 50% and 75% of the epochs) or
      ``boundary_steps`` (iterations; e.g. ``(32000, 48000)`` for He et al.),
      ``factor`` (0.1), ``values`` (explicit rates), ``warmup_steps`` (0),
      ``warmup_learning_rate`` (``learning_rate / 10``).
    * ``plateau``: ``factor`` (0.1), ``patience`` (10), ``min_learning_rate``
      (``learning_rate / 1000``), ``monitor`` (``"val_loss"``),
      ``min_delta`` (1e-4), ``cooldown`` (0).
    * ``cosine``: ``warmup_steps`` (min(one epoch, 5% of the run)),
      ``min_learning_rate`` (0), ``warmup_start_learning_rate`` (0).
    * ``clr``: ``base_learning_rate`` (``learning_rate / 4``), ``step_size``
      (about 4 epochs, a whole number of cycles), ``mode``
      (``"triangular"``), ``gamma`` (1, or ``0.1**(1/total_steps)`` for
      ``exp_range``).
    * ``onecycle``: ``pct_start`` (0.3), ``div_factor`` (25),
      ``final_div_factor`` (1e4), ``cycle_momentum`` (True),
      ``max_momentum`` (0.95), ``min_momentum`` (0.85), ``fall``
      (``"linear"``: three phases; ``"cosine"``: a half cosine from the peak
      to the final rate).

    Args:
        name: One of ``constant``, ``step``, ``plateau``, ``cosine``,
            ``clr``, ``onecycle``.
        learning_rate: The main rate (> 0).
        steps_per_epoch: Optimizer updates per epoch.
        num_epochs: Epochs in the run.
        **options: Schedule options as above.

    Returns:
        A :class:`TrainingSchedule`.

    Raises:
        ValueError: On an unknown name or option, or an out-of-range value.

    Used in: 01_vgg_gradients through 07_cifar100 (every run, 05's LR range test), 06's findings
    """
    if name not in SCHEDULE_NAMES:
        raise ValueError(
            f"Unknown schedule; expected one of {SCHEDULE_NAMES}. Received: name={name!r}"
        )
    learning_rate = _positive_float("learning_rate", learning_rate)
    steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
    num_epochs = _positive_int("num_epochs", num_epochs)
    total_steps = steps_per_epoch * num_epochs
    momentum = None
    callbacks: list = []

    if name == "constant":
        resolved = _take_options(name, options, {})
        rate: float | LearningRateSchedule = learning_rate
    elif name == "step":
        resolved = _take_options(
            name,
            options,
            {
                "boundary_epochs": None,
                "boundary_steps": None,
                "factor": 0.1,
                "values": None,
                "warmup_steps": 0,
                "warmup_learning_rate": None,
            },
        )
        if resolved["boundary_epochs"] is None and resolved["boundary_steps"] is None:
            resolved["boundary_epochs"] = _default_step_boundary_epochs(num_epochs)
        boundaries, values = _step_boundaries(
            learning_rate,
            steps_per_epoch,
            boundary_epochs=resolved["boundary_epochs"],
            boundary_steps=resolved["boundary_steps"],
            factor=resolved["factor"],
            values=resolved["values"],
        )
        warmup_steps = _non_negative_int("warmup_steps", resolved["warmup_steps"])
        warmup_learning_rate = _positive_float(
            "warmup_learning_rate",
            values[0] / 10.0 if resolved["warmup_learning_rate"] is None
            else resolved["warmup_learning_rate"],
        )
        rate = _step_decay(boundaries, values, warmup_steps, warmup_learning_rate)
        resolved["warmup_learning_rate"] = warmup_learning_rate if warmup_steps else None
        resolved["values"] = values
    elif name == "plateau":
        resolved = _take_options(
            name,
            options,
            {
                "factor": 0.1,
                "patience": 10,
                "min_learning_rate": learning_rate / 1000.0,
                "monitor": "val_loss",
                "min_delta": 1e-4,
                "cooldown": 0,
            },
        )
        callbacks.append(make_plateau_callback(**resolved))
        rate = learning_rate
    elif name == "cosine":
        resolved = _take_options(
            name,
            options,
            {
                "warmup_steps": min(steps_per_epoch, round(0.05 * total_steps)),
                "min_learning_rate": 0.0,
                "warmup_start_learning_rate": 0.0,
            },
        )
        rate = _cosine_decay(learning_rate, total_steps, **resolved)
    elif name == "clr":
        resolved = _take_options(
            name,
            options,
            {
                "base_learning_rate": learning_rate / 4.0,
                "step_size": _default_clr_step_size(steps_per_epoch, num_epochs),
                "mode": "triangular",
                "gamma": None,
            },
        )
        if resolved["gamma"] is None:
            exp_range = resolved["mode"] == "exp_range"
            resolved["gamma"] = 0.1 ** (1.0 / total_steps) if exp_range else 1.0
        rate = CyclicalLearningRate(max_learning_rate=learning_rate, **resolved)
    else:  # onecycle
        resolved = _take_options(
            name,
            options,
            {
                "pct_start": 0.3,
                "div_factor": 25.0,
                "final_div_factor": 1e4,
                "cycle_momentum": True,
                "max_momentum": 0.95,
                "min_momentum": 0.85,
                "fall": "linear",
            },
        )
        rate = OneCycleLearningRate(
            learning_rate,
            total_steps,
            pct_start=resolved["pct_start"],
            div_factor=resolved["div_factor"],
            final_div_factor=resolved["final_div_factor"],
            fall=resolved["fall"],
        )
        if not isinstance(resolved["cycle_momentum"], bool):
            raise ValueError(
                "`cycle_momentum` must be True or False. "
                f"Received: cycle_momentum={resolved['cycle_momentum']!r}"
            )
        if resolved["cycle_momentum"]:
            momentum = OneCycleMomentum(
                total_steps,
                pct_start=resolved["pct_start"],
                max_momentum=resolved["max_momentum"],
                min_momentum=resolved["min_momentum"],
                fall=resolved["fall"],
            )

    options_record = {"learning_rate": learning_rate, **resolved}
    return TrainingSchedule(
        name=name,
        learning_rate=rate,
        momentum=momentum,
        callbacks=callbacks,
        options=options_record,
        steps_per_epoch=steps_per_epoch,
        num_epochs=num_epochs,
    )


# --------------------------------------------------------------------------
# LR range test


@dataclasses.dataclass(frozen=True, eq=False)
class LrFindResult:
    """The LR range test's record.

    Attributes:
        learning_rates: Rate of each recorded update (ascending, geometric).
        losses: Training loss of each update's batch, measured before the
            update.
        smoothed_losses: Bias-corrected exponential moving average of
            ``losses``.
        suggested_max_learning_rate: The rate where the smoothed loss stops
            falling, its minimum before it first climbs back (Smith's
            reading, :func:`read_range_test`).
        suggested_base_learning_rate: ``suggested_max_learning_rate / 4``.
        stopped_early: True when the loss diverged before the last iteration.

    Used in: 05_cyclical_lr
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggested_max_learning_rate: float
    suggested_base_learning_rate: float
    stopped_early: bool

    def to_dict(self) -> dict:
        """JSON-friendly copy (lists of floats)."""
        return {
            "learning_rates": [float(v) for v in self.learning_rates],
            "losses": [float(v) for v in self.losses],
            "smoothed_losses": [float(v) for v in self.smoothed_losses],
            "suggested_max_learning_rate": self.suggested_max_learning_rate,
            "suggested_base_learning_rate": self.suggested_base_learning_rate,
            "stopped_early": self.stopped_early,
        }


def _repeating_batches(dataset: Iterable) -> Iterator:
    """Yields the dataset's batches forever, restarting it when it ends."""

    def fresh_iterator():
        # NumPy batches run under every backend; tf.data tensors would not.
        if hasattr(dataset, "as_numpy_iterator"):
            return dataset.as_numpy_iterator()
        return iter(dataset)

    num_yielded = 0
    while True:
        yielded_this_pass = False
        for batch in fresh_iterator():
            yielded_this_pass = True
            num_yielded += 1
            yield batch
        if not yielded_this_pass:
            raise ValueError(
                "`dataset` yielded no batches"
                + (" on a second pass; pass a re-iterable dataset (not a one-shot "
                   "iterator) or one that repeats" if num_yielded else "")
                + f". Received: dataset={dataset!r} after {num_yielded} batches"
            )


def _unpack_batch(batch):
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch
    raise ValueError(
        "`dataset` must yield (x, y) batches. "
        f"Received: a batch of type {type(batch).__name__}"
        + (f" with {len(batch)} items" if isinstance(batch, (tuple, list)) else "")
    )


def _working_copy(model):
    """A clone holding the model's weights, or the model itself if it cannot be cloned."""
    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone, True
    except (ValueError, TypeError, NotImplementedError) as error:
        warnings.warn(
            f"lr_find could not clone the model ({error}); it trains the model itself, "
            "restores its weights afterwards, and leaves it compiled for the range "
            "test: compile it again before training.",
            stacklevel=3,
        )
        return model, False


def lr_find(
    model,
    dataset: Iterable,
    *,
    loss: Any,
    optimizer=None,
    min_learning_rate: float = 1e-5,
    max_learning_rate: float = 10.0,
    num_iterations: int = 100,
    smoothing: float = 0.98,
    divergence_factor: float = 4.0,
) -> LrFindResult:
    """The LR range test (Smith 2017; fastai's exponential variant).

    Trains a copy of ``model`` for up to ``num_iterations`` updates, one batch
    each, with the rate growing geometrically from ``min_learning_rate`` to
    ``max_learning_rate``, and records every batch's loss and its
    bias-corrected exponential moving average
    ``avg_i = smoothing * avg_{i-1} + (1 - smoothing) * loss_i``,
    ``smoothed_i = avg_i / (1 - smoothing**(i + 1))``. It stops early when
    the loss is not finite (that update is not recorded) or the smoothed loss
    exceeds ``divergence_factor`` times its best value (that update is
    recorded).

    Suggested rates are Smith's reading of the curve (:func:`read_range_test`):
    the maximum is the rate at the lowest smoothed loss, where the loss stops
    falling (not fastai's tenth of it, which is for a constant rate); the
    base is a quarter of that (CLR paper: "1/3 or 1/4 of max_lr").

    The caller's model is left untouched: a functional or sequential model is
    cloned (weights copied) and the clone is trained; a model that cannot be
    cloned is trained itself and its initial weights are restored afterwards
    (with a warning, since it is left compiled for the test).

    Args:
        model: A built Keras model.
        dataset: Re-iterable (x, y) batches: a ``tf.data.Dataset``, a
            ``keras.utils.PyDataset`` or a list; restarted when shorter than
            ``num_iterations``.
        loss: Loss for ``model.compile`` (name or object).
        optimizer: An optimizer whose configuration to use (its rate is
            replaced by the ramp; its state is not used); default
            ``SGD(momentum=0.9)``.
        min_learning_rate: First rate.
        max_learning_rate: Rate of the last iteration.
        num_iterations: Updates (>= 2).
        smoothing: Moving-average coefficient in [0, 1).
        divergence_factor: Stop when the smoothed loss exceeds this multiple
            of its best (> 1).

    Returns:
        An :class:`LrFindResult`.

    Raises:
        ValueError: On bad arguments, an unbuilt model, an empty dataset or
            non-(x, y) batches, or a loss that is not finite on the first
            batch.

    Used in: 05_cyclical_lr, ``python -m helpers lr-find``
    """
    ramp = ExponentialRamp(min_learning_rate, max_learning_rate, num_iterations)
    if (
        isinstance(smoothing, bool)
        or not isinstance(smoothing, (int, float))
        or not 0 <= smoothing < 1
    ):
        raise ValueError(f"`smoothing` must be in [0, 1). Received: smoothing={smoothing!r}")
    divergence_factor = _positive_float("divergence_factor", divergence_factor)
    if divergence_factor <= 1:
        raise ValueError(
            f"`divergence_factor` must exceed 1. Received: divergence_factor={divergence_factor}"
        )
    if not getattr(model, "built", False):
        raise ValueError(
            "lr_find needs a built model (call it on a batch or give it an Input). "
            f"Received: model.built={getattr(model, 'built', None)}"
        )
    if optimizer is None:
        range_optimizer = keras.optimizers.SGD(learning_rate=ramp, momentum=0.9)
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        config = {**optimizer.get_config(), "learning_rate": ramp}
        config.pop("name", None)
        range_optimizer = type(optimizer).from_config(config)
    else:
        raise ValueError(
            f"`optimizer` must be a keras optimizer or None. Received: optimizer={optimizer!r}"
        )

    working_model, is_clone = _working_copy(model)
    initial_weights = None if is_clone else model.get_weights()
    rates: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stopped_early = False
    try:
        working_model.compile(optimizer=range_optimizer, loss=loss)
        batches = _repeating_batches(dataset)
        average = 0.0
        best = math.inf
        for iteration in range(num_iterations):
            x, y = _unpack_batch(next(batches))
            rate = float(ops.convert_to_numpy(range_optimizer.learning_rate))
            logs = working_model.train_on_batch(x, y, return_dict=True)
            value = float(logs["loss"])
            if not math.isfinite(value):
                if iteration == 0:
                    raise ValueError(
                        "The loss is not finite on the first batch, at the lowest rate; "
                        f"check the model and loss. Received: loss={value}"
                    )
                stopped_early = True
                break
            average = smoothing * average + (1.0 - smoothing) * value
            smoothed_value = average / (1.0 - smoothing ** (iteration + 1))
            rates.append(rate)
            losses.append(value)
            smoothed.append(smoothed_value)
            best = min(best, smoothed_value)
            if smoothed_value > divergence_factor * best:
                stopped_early = iteration < num_iterations - 1
                break
    finally:
        if initial_weights is not None:
            model.set_weights(initial_weights)

    rates_array = np.asarray(rates, dtype=np.float64)
    smoothed_array = np.asarray(smoothed, dtype=np.float64)
    reading = read_range_test(rates_array, smoothed_array)
    return LrFindResult(
        learning_rates=rates_array,
        losses=np.asarray(losses, dtype=np.float64),
        smoothed_losses=smoothed_array,
        suggested_max_learning_rate=reading.max_learning_rate,
        suggested_base_learning_rate=reading.base_learning_rate,
        stopped_early=stopped_early,
    )
