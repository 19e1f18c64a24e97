"""Tests for helpers.schedules: values at hand-computed steps, serialisation,
the momentum-scheduled SGD, the plateau callback and the LR range test."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from helpers import schedules  # noqa: E402
from helpers.schedules import learning_rate_at  # noqa: E402


def values_at(schedule, steps):
    return [learning_rate_at(schedule, step) for step in steps]


def approx(expected):
    return pytest.approx(expected, rel=1e-5, abs=1e-9)


# --------------------------------------------------------------------------
# Schedule values


def make_run(name, learning_rate=0.1, steps_per_epoch=10, num_epochs=8, **options):
    return schedules.make_schedule(
        name, learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
        num_epochs=num_epochs, **options
    )


def test_step_decay_by_epoch():
    schedule = make_run("step", boundary_epochs=[2, 3], num_epochs=5)
    assert isinstance(schedule.learning_rate, keras.optimizers.schedules.PiecewiseConstantDecay)
    steps = [0, 19, 20, 29, 30, 1000]
    assert values_at(schedule, steps) == approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_step_decay_explicit_values():
    schedule = make_run("step", boundary_steps=[5, 8], values=[0.1, 0.02, 0.004])
    assert values_at(schedule, [4, 5, 7, 8]) == approx([0.1, 0.02, 0.02, 0.004])


def test_he_et_al_boundaries_at_32k_and_48k():
    schedule = make_run(
        "step", steps_per_epoch=391, num_epochs=164, boundary_steps=[32_000, 48_000]
    )
    steps = [0, 31_999, 32_000, 47_999, 48_000, 63_999]
    assert values_at(schedule, steps) == approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_resnet110_warmup_at_one_hundredth():
    schedule = make_run(
        "step", steps_per_epoch=391, num_epochs=164, boundary_steps=[32_000, 48_000],
        warmup_steps=400,
    )
    steps = [0, 399, 400, 31_999, 32_000]
    assert values_at(schedule, steps) == approx([0.01, 0.01, 0.1, 0.1, 0.01])
    custom = make_run("step", boundary_steps=[100], warmup_steps=10, warmup_learning_rate=0.02)
    assert values_at(custom, [9, 10, 100]) == approx([0.02, 0.1, 0.01])


def test_cosine_with_warmup_endpoints_and_midpoints():
    schedule = make_run("cosine", num_epochs=11, warmup_steps=10, min_learning_rate=0.001)
    assert isinstance(schedule.learning_rate, keras.optimizers.schedules.CosineDecay)
    quarter = 0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi / 4))
    steps = [0, 5, 10, 35, 60, 110, 500]
    expected = [0.0, 0.05, 0.1, quarter, 0.0505, 0.001, 0.001]
    assert values_at(schedule, steps) == approx(expected)


def test_cosine_without_warmup_starts_at_peak():
    schedule = make_run("cosine", learning_rate=0.2, num_epochs=10, warmup_steps=0)
    assert values_at(schedule, [0, 50, 100]) == approx([0.2, 0.1, 0.0])


# --------------------------------------------------------------------------
# Keras' schedules against the ones they replaced
#
# Until Keras' PiecewiseConstantDecay and CosineDecay replaced them, step
# decay and cosine were this module's StepDecay and WarmupCosineDecay
# (helpers/schedules.py at commit 9007fd4). Their __call__ bodies are kept
# here verbatim, fed what make_schedule fed them, so that every recorded run
# is shown to get the same rate at every update from the Keras schedule.


def previous_step_decay(step, boundaries, values, warmup_steps, warmup_learning_rate):
    """StepDecay.__call__ as it was."""
    step = keras.ops.cast(step, "float32")
    values = keras.ops.convert_to_tensor(values, dtype="float32")
    if boundaries:
        boundaries = keras.ops.convert_to_tensor(boundaries, dtype="float32")
        index = keras.ops.sum(keras.ops.cast(keras.ops.greater_equal(step, boundaries), "int32"))
    else:
        index = keras.ops.convert_to_tensor(0, dtype="int32")
    rate = keras.ops.take(values, index)
    if warmup_steps:
        rate = keras.ops.where(step < warmup_steps, warmup_learning_rate, rate)
    return keras.ops.cast(rate, "float32")


def previous_warmup_cosine(
    step, learning_rate, total_steps, warmup_steps, min_learning_rate, warmup_start_learning_rate
):
    """WarmupCosineDecay.__call__ as it was."""
    step = keras.ops.cast(step, "float32")
    decay_steps = float(total_steps - warmup_steps)
    progress = keras.ops.clip((step - warmup_steps) / decay_steps, 0.0, 1.0)
    cosine = 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
    rate = min_learning_rate + (learning_rate - min_learning_rate) * cosine
    if warmup_steps:
        warmup = warmup_start_learning_rate + (learning_rate - warmup_start_learning_rate) * (
            step / warmup_steps
        )
        rate = keras.ops.where(step < warmup_steps, warmup, rate)
    return keras.ops.cast(rate, "float32")


def checked_steps(total_steps, events):
    """Steps 0-100, 40 across the run, each event (and the end) +-2, and far past the end."""
    steps = set(range(min(total_steps, 100) + 1))
    steps |= set(range(0, total_steps, max(1, total_steps // 40)))
    steps |= {e + d for e in [*events, total_steps] for d in (-2, -1, 0, 1, 2) if e + d >= 0}
    steps.add(3 * total_steps)
    return sorted(steps)


def float32_values(function, steps):
    # int64 steps, the dtype of optimizer.iterations that the optimizer passes.
    return np.array(
        [keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(s, dtype="int64")))
         for s in steps],
        dtype=np.float32,
    )


def ulps_apart(a, b):
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


STEP_RUNS = [
    dict(steps_per_epoch=10, num_epochs=8),  # the defaults: /10 at 50% and 75%
    dict(steps_per_epoch=10, num_epochs=1),  # no boundary at all
    dict(steps_per_epoch=7, num_epochs=2),
    dict(steps_per_epoch=391, num_epochs=164, boundary_steps=[32_000, 48_000], warmup_steps=400),
    dict(steps_per_epoch=5, num_epochs=10, boundary_steps=[3, 8], warmup_steps=5,
         warmup_learning_rate=0.02),  # warm-up past the first boundary
    dict(steps_per_epoch=10, num_epochs=1, warmup_steps=3),
    dict(steps_per_epoch=13, num_epochs=40, boundary_epochs=[10, 20, 30], factor=0.2,
         learning_rate=0.3),
    dict(steps_per_epoch=10, num_epochs=10, boundary_steps=[5, 8], values=[0.1, 0.02, 0.004]),
]


@pytest.mark.parametrize("run", STEP_RUNS, ids=str)
def test_keras_step_decay_equals_the_step_decay_it_replaced(run):
    schedule = make_run("step", **run)
    options = schedule.options
    if options["boundary_steps"] is not None:
        boundaries = list(options["boundary_steps"])
    else:
        boundaries = [e * schedule.steps_per_epoch for e in options["boundary_epochs"]]
    warmup_steps = options["warmup_steps"]
    warmup_learning_rate = options["warmup_learning_rate"] or options["values"][0] / 10.0
    steps = checked_steps(schedule.total_steps, [*boundaries, warmup_steps])
    previous = float32_values(
        lambda s: previous_step_decay(s, boundaries, options["values"], warmup_steps,
                                      warmup_learning_rate),
        steps,
    )
    np.testing.assert_array_equal(float32_values(schedule.learning_rate, steps), previous)
    # learning_rate_at (Python int steps) reads the same values.
    assert values_at(schedule, steps[:20]) == [float(v) for v in previous[:20]]


COSINE_RUNS = [
    dict(steps_per_epoch=10, num_epochs=8),  # the defaults: warm-up of 5% of the run
    dict(steps_per_epoch=10, num_epochs=100),  # warm-up of one epoch
    dict(steps_per_epoch=391, num_epochs=200),
    dict(steps_per_epoch=97, num_epochs=30, learning_rate=0.05),
    dict(steps_per_epoch=10, num_epochs=10, warmup_steps=0, learning_rate=0.2),
    dict(steps_per_epoch=3, num_epochs=7, warmup_steps=20, learning_rate=1.0),
    dict(steps_per_epoch=10, num_epochs=11, warmup_steps=10, min_learning_rate=0.001),
    dict(steps_per_epoch=50, num_epochs=30, learning_rate=0.4, warmup_start_learning_rate=0.01,
         min_learning_rate=1e-4),
]


@pytest.mark.parametrize("run", COSINE_RUNS, ids=str)
def test_keras_cosine_decay_equals_the_warmup_cosine_it_replaced(run):
    schedule = make_run("cosine", **run)
    options = schedule.options
    warmup_steps = options["warmup_steps"]
    steps = checked_steps(schedule.total_steps, [warmup_steps])
    previous = float32_values(
        lambda s: previous_warmup_cosine(
            s, options["learning_rate"], schedule.total_steps, warmup_steps,
            float(options["min_learning_rate"]), float(options["warmup_start_learning_rate"]),
        ),
        steps,
    )
    keras_values = float32_values(schedule.learning_rate, steps)
    if options["min_learning_rate"] == 0 and options["warmup_start_learning_rate"] == 0:
        # Every run recorded so far uses these defaults: bit for bit.
        np.testing.assert_array_equal(keras_values, previous)
    else:
        # Keras scales a floor of alpha * peak and subtracts in float32: 2 ulps at most.
        assert ulps_apart(keras_values, previous).max() <= 2


def reference_clr(step, base, maximum, step_size, mode, gamma):
    """bckenstler/CLR's clr(), transcribed (numpy, one step)."""
    cycle = np.floor(1 + step / (2 * step_size))
    x = np.abs(step / step_size - 2 * cycle + 1)
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = 1 / (2.0 ** (cycle - 1))
    else:
        scale = gamma**step
    return base + (maximum - base) * np.maximum(0, 1 - x) * scale


def test_clr_triangular_hand_values():
    # The paper's example: base 0.001, max 0.006, step size 2000.
    schedule = schedules.CyclicalLearningRate(0.001, 0.006, step_size=2000)
    steps = [0, 1000, 2000, 3000, 4000, 6000, 8000]
    expected = [0.001, 0.0035, 0.006, 0.0035, 0.001, 0.006, 0.001]
    assert values_at(schedule, steps) == approx(expected)


def test_clr_triangular2_halves_the_amplitude_each_cycle():
    schedule = schedules.CyclicalLearningRate(0.001, 0.006, 2000, mode="triangular2")
    steps = [2000, 5000, 6000, 10_000]
    expected = [0.006, 0.001 + 0.005 * 0.5 * 0.5, 0.0035, 0.001 + 0.005 * 0.25]
    assert values_at(schedule, steps) == approx(expected)


def test_clr_exp_range_hand_values():
    schedule = schedules.CyclicalLearningRate(
        0.001, 0.006, 2000, mode="exp_range", gamma=0.9999
    )
    steps = [0, 1000, 2000, 6000]
    expected = [
        0.001,
        0.001 + 0.005 * 0.5 * 0.9999**1000,
        0.001 + 0.005 * 0.9999**2000,
        0.001 + 0.005 * 0.9999**6000,
    ]
    assert values_at(schedule, steps) == approx(expected)


@pytest.mark.parametrize("mode", schedules.CLR_MODES)
def test_clr_matches_reference_formula(mode):
    schedule = schedules.CyclicalLearningRate(0.01, 0.1, step_size=7, mode=mode, gamma=0.99)
    steps = list(range(0, 60, 3))
    expected = [reference_clr(s, 0.01, 0.1, 7, mode, 0.99) for s in steps]
    assert values_at(schedule, steps) == approx(expected)


def test_one_cycle_endpoints_and_peak():
    schedule = schedules.OneCycleLearningRate(0.1, total_steps=1000)
    assert schedule.phase_steps == (300, 600, 999)
    initial, final = 0.1 / 25, 0.1 / 25 / 1e4
    steps = [0, 150, 300, 450, 600, 800, 999, 5000]
    expected = [
        initial,
        (initial + 0.1) / 2,
        0.1,
        (initial + 0.1) / 2,
        initial,
        initial - (initial - final) * 200 / 399,
        final,
        final,
    ]
    assert values_at(schedule, steps) == approx(expected)
    rates = values_at(schedule, range(1000))
    assert int(np.argmax(rates)) == 300
    assert max(rates) == approx(0.1)


def test_one_cycle_momentum_is_inverse():
    momentum = schedules.OneCycleMomentum(total_steps=1000)
    steps = [0, 150, 300, 450, 600, 800, 999]
    assert values_at(momentum, steps) == approx([0.95, 0.9, 0.85, 0.9, 0.95, 0.95, 0.95])


def test_one_cycle_cosine_fall_is_the_hand_written_scripts_shape():
    """fall="cosine" with pct_start 0.3, div 25 and final div 400 is
    benchmarks/handwritten_resnet20.py's rate: linear to the peak over 30% of
    the steps from peak/25, then a half cosine down to peak/1e4."""
    peak, steps_total = 0.4, 1000
    schedule = schedules.OneCycleLearningRate(peak, steps_total, pct_start=0.3, div_factor=25.0,
                                              final_div_factor=400.0, fall="cosine")
    warmup = 300

    def script(step):  # the script's formula, but its cosine ends on the last update (as the
        # schedule's fall does) where the script's ends one update after the run
        if step < warmup:
            low = peak / 25.0
            return low + (peak - low) * step / warmup
        progress = (step - warmup) / (steps_total - 1 - warmup)
        return peak / 1e4 + 0.5 * (peak - peak / 1e4) * (1 + math.cos(math.pi * progress))

    steps = [0, 1, 150, 299, 300, 301, 500, 650, 800, 998, 999, 5000]
    # Absolute 1e-7 (peak / 4e6): float32 resolves the last updates' rates no better.
    expected = [script(min(s, 999)) for s in steps]
    assert values_at(schedule, steps) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    rates = values_at(schedule, range(steps_total))
    assert int(np.argmax(rates)) == 300 and all(b <= a for a, b in zip(rates[300:], rates[301:]))
    momentum = schedules.OneCycleMomentum(steps_total, pct_start=0.3, fall="cosine")
    climbed = 0.85 + 0.1 * (1 - math.cos(math.pi * 350 / 699)) / 2  # back up along the rate's fall
    assert values_at(momentum, [0, 150, 300, 650, 999]) == approx([0.95, 0.9, 0.85, climbed, 0.95])
    # The default fall is unchanged: three linear phases.
    assert schedules.OneCycleLearningRate(peak, steps_total).get_config()["fall"] == "linear"


def test_exponential_ramp_is_geometric():
    ramp = schedules.ExponentialRamp(1e-4, 1.0, num_steps=5)
    assert values_at(ramp, range(5)) == approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


# --------------------------------------------------------------------------
# Serialisation


ALL_SCHEDULES = [
    schedules.CyclicalLearningRate(0.01, 0.1, 100, mode="exp_range", gamma=0.999),
    schedules.OneCycleLearningRate(0.2, 1000, pct_start=0.25),
    schedules.OneCycleMomentum(1000, pct_start=0.25),
    schedules.OneCycleLearningRate(0.2, 1000, pct_start=0.25, fall="cosine"),
    schedules.OneCycleMomentum(1000, pct_start=0.25, fall="cosine"),
    schedules.ExponentialRamp(1e-5, 10.0, 100),
]


@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=lambda s: type(s).__name__)
def test_serialization_round_trip(schedule):
    serialized = keras.saving.serialize_keras_object(schedule)
    assert serialized["registered_name"] == f"cifar_lab>{type(schedule).__name__}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    steps = [0, 1, 99, 250, 400, 999, 32_000, 50_000]
    assert values_at(restored, steps) == values_at(schedule, steps)
    via_schedules = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert values_at(via_schedules, steps) == values_at(schedule, steps)


# --------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_run("step", boundary_steps=[10, 5]),
        lambda: make_run("step", boundary_steps=[10], values=[0.1]),
        lambda: make_run("step", boundary_steps=[10], values=[0.2, 0.02]),
        lambda: make_run("step", boundary_epochs=[2], boundary_steps=[20]),
        lambda: make_run("step", boundary_steps=[20], factor=1.5),
        lambda: make_run("step", boundary_steps=[20], warmup_steps=-1),
        lambda: make_run("cosine", warmup_steps=80),
        lambda: make_run("cosine", min_learning_rate=0.5),
        lambda: schedules.CyclicalLearningRate(0.1, 0.01, 100),
        lambda: schedules.CyclicalLearningRate(0.01, 0.1, 100, mode="sawtooth"),
        lambda: schedules.CyclicalLearningRate(0.01, 0.1, 0),
        lambda: schedules.OneCycleLearningRate(0.1, 100, pct_start=0.7),
        lambda: schedules.OneCycleMomentum(100, max_momentum=0.8, min_momentum=0.9),
        lambda: schedules.OneCycleLearningRate(0.1, 100, fall="cos"),
        lambda: schedules.OneCycleMomentum(100, fall="exponential"),
        lambda: schedules.ExponentialRamp(1.0, 0.1, 10),
        lambda: schedules.ScheduledMomentumSGD(momentum="high"),
        lambda: schedules.ScheduledMomentumSGD(momentum=1.5),
        lambda: schedules.make_plateau_callback(factor=2.0),
        lambda: learning_rate_at("0.1", 0),
    ],
)
def test_bad_input_raises_value_error_with_received(build):
    with pytest.raises(ValueError, match=r"Received: .+"):
        build()


def test_make_schedule_rejects_unknown_name_and_option():
    with pytest.raises(ValueError, match=r"Received: name='bogus'$"):
        schedules.make_schedule("bogus", learning_rate=0.1, steps_per_epoch=10, num_epochs=5)
    with pytest.raises(ValueError, match=r"Received: patience=3$"):
        schedules.make_schedule(
            "cosine", learning_rate=0.1, steps_per_epoch=10, num_epochs=5, patience=3
        )
    with pytest.raises(ValueError, match=r"Received: steps_per_epoch=0$"):
        schedules.make_schedule("constant", learning_rate=0.1, steps_per_epoch=0, num_epochs=5)


# --------------------------------------------------------------------------
# Factory


def test_make_schedule_constant_and_plateau_use_a_float():
    constant = make_run("constant")
    assert constant.learning_rate == 0.1 and constant.momentum is None
    assert constant.callbacks == []
    plateau = make_run("plateau")
    assert plateau.learning_rate == 0.1
    (callback,) = plateau.callbacks
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.factor, callback.patience, callback.monitor) == (0.1, 10, "val_loss")
    assert callback.min_lr == pytest.approx(1e-4)


def test_make_schedule_step_defaults_at_half_and_three_quarters():
    schedule = make_run("step")
    assert schedule.options["boundary_epochs"] == [4, 6]
    assert values_at(schedule, [39, 40, 60]) == approx([0.1, 0.01, 0.001])
    he = schedules.make_schedule(
        "step",
        learning_rate=0.1,
        steps_per_epoch=391,
        num_epochs=164,
        boundary_steps=[32_000, 48_000],
        warmup_steps=400,
    )
    assert values_at(he, [0, 400, 32_000, 48_000]) == approx([0.01, 0.1, 0.01, 0.001])


def test_step_and_cosine_records_are_unchanged_by_the_keras_schedules():
    # What run records hold (record.schedule), as the schedules Keras replaced wrote it.
    he = make_run("step", steps_per_epoch=391, num_epochs=164, boundary_steps=[32_000, 48_000],
                  warmup_steps=400)
    assert he.options == {
        "learning_rate": 0.1, "boundary_epochs": None, "boundary_steps": [32_000, 48_000],
        "factor": 0.1, "values": [0.1, 0.1 * 0.1, 0.1 * 0.1**2], "warmup_steps": 400,
        "warmup_learning_rate": 0.01,
    }
    assert he.describe() == (
        "step schedule over 164 epochs x 391 steps (64124 updates): learning_rate=0.1, "
        "boundary_epochs=None, boundary_steps=[32000, 48000], factor=0.1, "
        "values=[0.1, 0.01, 0.001], warmup_steps=400, warmup_learning_rate=0.01"
    )
    assert make_run("step").describe() == (
        "step schedule over 8 epochs x 10 steps (80 updates): learning_rate=0.1, "
        "boundary_epochs=[4, 6], boundary_steps=None, factor=0.1, values=[0.1, 0.01, 0.001], "
        "warmup_steps=0, warmup_learning_rate=None"
    )
    assert make_run("cosine").describe() == (
        "cosine schedule over 8 epochs x 10 steps (80 updates): learning_rate=0.1, "
        "warmup_steps=4, min_learning_rate=0, warmup_start_learning_rate=0"
    )


def test_make_schedule_cosine_default_warmup():
    # min(one epoch = 10, 5% of 80 = 4) updates.
    schedule = make_run("cosine")
    assert schedule.options["warmup_steps"] == 4
    assert values_at(schedule, [0, 2, 4, 80]) == approx([0.0, 0.05, 0.1, 0.0])
    long_run = schedules.make_schedule(
        "cosine", learning_rate=0.1, steps_per_epoch=10, num_epochs=100
    )
    assert long_run.options["warmup_steps"] == 10


def test_make_schedule_clr_defaults():
    # 16 epochs: two cycles with a half cycle of exactly 4 epochs.
    schedule = schedules.make_schedule(
        "clr", learning_rate=0.1, steps_per_epoch=10, num_epochs=16
    )
    assert schedule.options["step_size"] == 40
    assert schedule.options["base_learning_rate"] == pytest.approx(0.025)
    assert values_at(schedule, [0, 40, 80, 120, 160]) == approx([0.025, 0.1, 0.025, 0.1, 0.025])
    # 10 epochs: one whole cycle, so training still ends at the base rate.
    ten = schedules.make_schedule("clr", learning_rate=0.1, steps_per_epoch=10, num_epochs=10)
    assert ten.options["step_size"] == 50
    exp_range = make_run("clr", mode="exp_range")
    assert exp_range.options["gamma"] ** 80 == pytest.approx(0.1)


def test_make_schedule_onecycle_has_momentum_schedule():
    schedule = make_run("onecycle")
    assert isinstance(schedule.learning_rate, schedules.OneCycleLearningRate)
    assert isinstance(schedule.momentum, schedules.OneCycleMomentum)
    assert learning_rate_at(schedule, 24) == approx(0.1)  # round(0.3 * 80)
    assert learning_rate_at(schedule.momentum, 24) == approx(0.85)
    assert make_run("onecycle", cycle_momentum=False).momentum is None
    description = schedule.describe()
    assert description.startswith("onecycle schedule over 8 epochs x 10 steps")
    assert "pct_start=0.3" in description and "div_factor=25" in description
    json.dumps(schedule.options)


# --------------------------------------------------------------------------
# ScheduledMomentumSGD


def run_sgd(optimizer, gradient, num_steps, initial=(1.0, -2.0)):
    variable = keras.Variable(np.array(initial, dtype="float32"))
    for _ in range(num_steps):
        optimizer.apply([keras.ops.convert_to_tensor(gradient)], [variable])
    return keras.ops.convert_to_numpy(variable)


def manual_sgd(momenta, learning_rate, gradient, nesterov=False, initial=(1.0, -2.0)):
    weights = np.array(initial, dtype=np.float64)
    velocity = np.zeros_like(weights)
    for momentum in momenta:
        velocity = momentum * velocity - learning_rate * gradient
        if nesterov:
            weights = weights + momentum * velocity - learning_rate * gradient
        else:
            weights = weights + velocity
    return weights


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_schedule_changes_the_update(nesterov):
    gradient = np.array([0.5, 1.0], dtype="float32")
    # Peak at step 3: momentum 0.95, 0.91667, 0.88333 for steps 0, 1, 2.
    momentum = schedules.OneCycleMomentum(total_steps=10, pct_start=0.3)
    optimizer = schedules.ScheduledMomentumSGD(0.1, momentum=momentum, nesterov=nesterov)
    result = run_sgd(optimizer, gradient, 3)
    momenta = [0.95, 0.95 - 0.1 / 3, 0.95 - 0.2 / 3]
    assert optimizer.momentum_at(0) == approx(0.95)
    assert optimizer.momentum_at() == approx(0.85)  # the next update, step 3
    np.testing.assert_allclose(
        result, manual_sgd(momenta, 0.1, gradient, nesterov), rtol=1e-6
    )
    fixed = run_sgd(keras.optimizers.SGD(0.1, momentum=0.95, nesterov=nesterov), gradient, 3)
    assert not np.allclose(result, fixed, rtol=1e-4)


def test_float_momentum_matches_keras_sgd():
    gradient = np.array([0.3, -0.7], dtype="float32")
    ours = run_sgd(schedules.ScheduledMomentumSGD(0.05, momentum=0.9, nesterov=True), gradient, 4)
    theirs = run_sgd(keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), gradient, 4)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    plain = run_sgd(schedules.ScheduledMomentumSGD(0.05), gradient, 2)
    np.testing.assert_allclose(plain, np.array([1.0, -2.0]) - 2 * 0.05 * gradient, rtol=1e-6)


def linear_model(initial_kernel):
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(
                1,
                use_bias=False,
                kernel_initializer=keras.initializers.Constant(np.array(initial_kernel)),
            ),
        ]
    )
    return model


def test_momentum_schedule_inside_a_compiled_train_step():
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.5], [2.0, 1.0]], dtype="float32")
    y = np.array([[1.0], [0.0], [-1.0], [2.0]], dtype="float32")
    # Momentum 0.9, 0.5, 0.1 at steps 0, 1, 2: far apart so a frozen value shows.
    momentum = keras.optimizers.schedules.PiecewiseConstantDecay([0, 1], [0.9, 0.5, 0.1])
    model = linear_model([[0.3], [-0.2]])
    model.compile(
        optimizer=schedules.ScheduledMomentumSGD(0.05, momentum=momentum), loss="mse"
    )
    for _ in range(3):
        model.train_on_batch(x, y)

    weights = np.array([[0.3], [-0.2]])
    velocity = np.zeros_like(weights)
    for momentum_value in (0.9, 0.5, 0.1):
        gradient = 2.0 / len(x) * x.T @ (x @ weights - y)
        velocity = momentum_value * velocity - 0.05 * gradient
        weights = weights + velocity
    np.testing.assert_allclose(model.get_weights()[0], weights, rtol=1e-5)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 3


def test_scheduled_sgd_config_and_saved_model_round_trip(tmp_path):
    momentum = schedules.OneCycleMomentum(500, pct_start=0.2)
    optimizer = schedules.ScheduledMomentumSGD(
        schedules.OneCycleLearningRate(0.3, 500, pct_start=0.2),
        momentum=momentum,
        nesterov=True,
        weight_decay=1e-4,
    )
    config = json.loads(json.dumps(optimizer.get_config()))
    restored = schedules.ScheduledMomentumSGD.from_config(config)
    assert restored.nesterov and restored.weight_decay == pytest.approx(1e-4)
    assert restored.momentum.get_config() == momentum.get_config()
    assert restored.momentum_at(100) == approx(0.85)

    model = linear_model([[0.1], [0.2]])
    model.compile(optimizer=optimizer, loss="mse")
    model.train_on_batch(np.ones((2, 2), "float32"), np.zeros((2, 1), "float32"))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, schedules.ScheduledMomentumSGD)
    assert isinstance(loaded.optimizer.momentum, schedules.OneCycleMomentum)
    assert loaded.optimizer.momentum_at(50) == optimizer.momentum_at(50)
    np.testing.assert_allclose(loaded.get_weights()[0], model.get_weights()[0])


# --------------------------------------------------------------------------
# Plateau callback


def test_plateau_reduces_after_patience_and_the_step_uses_it():
    model = linear_model([[1.0], [1.0]])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    callback = schedules.make_plateau_callback(factor=0.1, patience=10)
    callback.set_model(model)
    callback.on_train_begin()

    def current_rate():
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))

    callback.on_epoch_end(0, {"val_loss": 1.0})  # sets the best
    for epoch in range(1, 10):
        callback.on_epoch_end(epoch, {"val_loss": 1.0})
        assert current_rate() == approx(0.1), epoch
    callback.on_epoch_end(10, {"val_loss": 1.0})  # the 10th epoch without improvement
    assert current_rate() == approx(0.01)
    # An improvement resets the count: 9 more stalled epochs change nothing.
    callback.on_epoch_end(11, {"val_loss": 0.5})
    for epoch in range(12, 21):
        callback.on_epoch_end(epoch, {"val_loss": 0.5})
    assert current_rate() == approx(0.01)

    # The compiled step reads the reduced rate: w <- w - 0.01 * grad.
    x = np.array([[1.0, 2.0]], dtype="float32")
    y = np.array([[0.0]], dtype="float32")
    model.train_on_batch(x, y)
    gradient = 2.0 * x.T @ (x @ np.ones((2, 1)) - y)
    np.testing.assert_allclose(model.get_weights()[0], np.ones((2, 1)) - 0.01 * gradient, rtol=1e-6)


def test_plateau_respects_min_learning_rate():
    model = linear_model([[1.0], [1.0]])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    callback = schedules.make_plateau_callback(patience=1, min_learning_rate=0.005)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch in range(6):
        callback.on_epoch_end(epoch, {"val_loss": 1.0})
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == approx(0.005)


def test_plateau_refuses_a_schedule_optimizer():
    model = linear_model([[1.0], [1.0]])
    model.compile(
        optimizer=keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 100)), loss="mse"
    )
    callback = schedules.make_plateau_callback()
    callback.set_model(model)
    with pytest.raises(ValueError, match=r"float learning rate.*Received: learning_rate="):
        callback.on_train_begin()


# --------------------------------------------------------------------------
# LR range test


def synthetic_classification(num_examples=256, num_features=8, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_examples, num_features)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(num_features, num_classes)), axis=1).astype("int64")
    return x, y


def tiny_classifier(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def batches(x, y, batch_size=32):
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


def test_lr_find_records_an_exponential_ramp_and_restores_nothing_changed():
    x, y = synthetic_classification()
    model = tiny_classifier()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS)
    original_optimizer = model.optimizer
    initial = [w.copy() for w in model.get_weights()]

    # 8 batches, 30 iterations: the dataset must be restarted.
    result = schedules.lr_find(
        model,
        batches(x, y),
        loss=LOSS,
        min_learning_rate=1e-3,
        max_learning_rate=1.0,
        num_iterations=30,
        divergence_factor=1e6,
    )
    assert not result.stopped_early
    assert len(result.learning_rates) == len(result.losses) == len(result.smoothed_losses) == 30
    assert result.learning_rates[0] == pytest.approx(1e-3, rel=1e-5)
    assert result.learning_rates[-1] == pytest.approx(1.0, rel=1e-5)
    ratios = result.learning_rates[1:] / result.learning_rates[:-1]
    np.testing.assert_allclose(ratios, (1.0 / 1e-3) ** (1 / 29), rtol=1e-4)
    assert np.all(np.isfinite(result.losses))
    assert result.smoothed_losses[0] == pytest.approx(result.losses[0])
    # The loss falls on this easy problem: the smoothed loss ends below its start.
    assert result.smoothed_losses.min() < result.smoothed_losses[0]
    # Smith's reading: the maximum is the rate at the smoothed loss's minimum.
    best = result.learning_rates[np.argmin(result.smoothed_losses)]
    assert result.suggested_max_learning_rate == best
    suggested_max = result.suggested_max_learning_rate
    assert result.suggested_base_learning_rate == pytest.approx(suggested_max / 4)

    for before, after in zip(initial, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert model.optimizer is original_optimizer
    assert int(keras.ops.convert_to_numpy(original_optimizer.iterations)) == 0
    json.dumps(result.to_dict())


def test_lr_find_smoothing_is_bias_corrected_average():
    x, y = synthetic_classification(seed=1)
    result = schedules.lr_find(
        tiny_classifier(1), batches(x, y), loss=LOSS, num_iterations=6,
        min_learning_rate=1e-4, max_learning_rate=1e-2, smoothing=0.9,
    )
    average, expected = 0.0, []
    for i, loss in enumerate(result.losses):
        average = 0.9 * average + 0.1 * loss
        expected.append(average / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(result.smoothed_losses, expected, rtol=1e-12)


def test_lr_find_stops_when_the_loss_diverges():
    x, y = synthetic_classification(seed=2)
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices((x, y * 1)).batch(32)
    result = schedules.lr_find(
        tiny_classifier(2),
        dataset,
        loss=LOSS,
        min_learning_rate=1e-2,
        max_learning_rate=1e4,
        num_iterations=60,
    )
    assert result.stopped_early
    assert len(result.learning_rates) < 60
    assert result.learning_rates[-1] < 1e4
    assert 1e-2 <= result.suggested_max_learning_rate <= result.learning_rates[-1]


def test_lr_find_restores_weights_of_a_model_it_cannot_clone():
    class Unclonable(keras.Model):
        def __init__(self):  # no config arguments, so Keras cannot rebuild it
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, inputs):
            return self.dense(inputs)

    x, y = synthetic_classification(seed=3)
    model = Unclonable()
    model(x[:1])
    initial = [w.copy() for w in model.get_weights()]
    with pytest.warns(UserWarning, match="could not clone"):
        result = schedules.lr_find(
            model, batches(x, y), loss=LOSS, num_iterations=5, max_learning_rate=1.0
        )
    assert len(result.losses) == 5
    for before, after in zip(initial, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_lr_find_bad_input():
    x, y = synthetic_classification()
    model = tiny_classifier()
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="built model.*Received: model.built=False"):
        schedules.lr_find(unbuilt, batches(x, y), loss=LOSS)
    with pytest.raises(ValueError, match=r"\(x, y\) batches.*Received: .*3 items"):
        schedules.lr_find(model, [(x[:4], y[:4], y[:4])], loss=LOSS, num_iterations=3)
    with pytest.raises(ValueError, match="yielded no batches.*Received"):
        schedules.lr_find(model, [], loss=LOSS, num_iterations=3)
    with pytest.raises(ValueError, match="second pass.*Received"):
        schedules.lr_find(model, iter(batches(x, y)), loss=LOSS, num_iterations=20)
    with pytest.raises(ValueError, match="Received: smoothing=1"):
        schedules.lr_find(model, batches(x, y), loss=LOSS, smoothing=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="Received: num_steps=1"):
            schedules.lr_find(model, batches(x, y), loss=LOSS, num_iterations=1)


def test_read_range_test_reads_the_first_minimum_a_quarter_of_it_and_the_edge():
    from helpers.range_reading import read_range_test

    rates = [0.001, 0.01, 0.1, 0.2, 0.4, 0.8, 1.6]
    #        falls ...      min   within 10%   climbs past it (and back: the first crossing counts)
    losses = [2.3, 2.0, 1.5, 1.0, 1.08, 1.2, 1.05]
    reading = read_range_test(rates, losses)
    assert reading.max_learning_rate == 0.2 and reading.base_learning_rate == 0.05
    assert reading.high_learning_rate == 0.4
    # A loss that never climbs 10% above its minimum: the edge is the last rate tested ...
    assert read_range_test(rates, [2.3, 2.0, 1.5, 1.0, 1.05, 1.09, 1.1]).high_learning_rate == 1.6
    # ... but never above Smith & Topin's peak of 3, and never below the maximum rate.
    assert read_range_test(rates + [10.0], [2.3, 2.0, 1.5, 1.0, 1.05, 1.09, 1.1, 1.05]).high_learning_rate == 3.0
    assert read_range_test([1.0, 5.0, 10.0], [2.0, 1.0, 2.0]).high_learning_rate == 5.0
    # The minimum at the last rate: the high rate is the maximum.
    assert read_range_test([0.1, 0.2], [2.0, 1.0]).high_learning_rate == 0.2
    # A non-finite loss after the minimum is past the edge.
    assert read_range_test([0.1, 0.2, 0.4], [2.0, 1.0, float("nan")]).high_learning_rate == 0.2
    # A second, deeper dip past a climb (the shape of a range test with label smoothing 0.1 here:
    # 2.276 at 0.17, 2.396 at 0.33, 2.274 at 5.4) is past the edge: the maximum stays at the first minimum.
    rates = [1e-5, 1e-4, 1e-3, 1e-2, 0.17, 0.33, 0.67, 1.3, 2.7, 5.4]
    double_dip = [3.31, 3.31, 3.0, 2.6, 2.276, 2.396, 2.39, 2.34, 2.30, 2.274]
    assert read_range_test(rates, double_dip).max_learning_rate == 0.17
    # The same on a curve that starts higher (5.3: another seed's initial loss), whose climb (2.43 to 2.50)
    # is small beside its drop ...
    high_start = [5.3, 5.2, 4.4, 3.3, 2.43, 2.50, 2.49, 2.40, 2.35, 2.33]
    assert read_range_test(rates, high_start).max_learning_rate == 0.17
    # ... while a climb of under 2% is noise, not the edge ...
    assert read_range_test(rates, [3.31, 3.31, 3.0, 2.6, 2.276, 2.3, 2.29, 2.28, 2.27, 2.26]).max_learning_rate == 5.4
    # ... and so is a bump before the loss has made half its drop (the smoothing's noisy start).
    assert read_range_test(rates, [3.31, 3.45, 3.0, 2.6, 2.276, 2.30, 2.29, 2.28, 2.27, 2.26]).max_learning_rate == 5.4
    with pytest.raises(ValueError, match="same, non-zero length"):
        read_range_test([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="no finite loss"):
        read_range_test([0.1], [float("nan")])
