"""helpers.models and helpers.layers: shapes, counts, names, options, gates, backends."""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import diagnostics, model_registry, models
from helpers.layers import DEFAULT_GATE_SHARPNESS, EpsilonGate, ZeroPadShortcut

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Small enough that each build is cheap, large enough that no width rounds to 0.
SMALL = {"width_multiplier": 0.25}
FAST_NAMES = [name for name in models.list_models() if name != "resnet1202"]


@functools.cache
def _built(name: str, num_classes: int = 10, **options) -> keras.Model:
    """Full-size builds shared between tests (each costs seconds)."""
    return models.build_model(name, num_classes, **options)


def _images(count=2, seed=0):
    return np.random.default_rng(seed).normal(size=(count, 32, 32, 3)).astype("float32")


def _layer_names(model):
    return [layer.name for layer in model.layers]


def _logits_of(outputs):
    return outputs[models.LOGITS_NAME] if isinstance(outputs, dict) else outputs


# --------------------------------------------------------------------------
# Registry, shapes and outputs


def test_registry_has_every_required_name():
    required = {
        "vgg11", "vgg13", "vgg16", "vgg19",
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
        "plain20", "plain32", "plain44", "plain56", "plain110",
        "preact_resnet20", "preact_resnet56", "preact_resnet110",
        "resnet18", "resnet34", "resnet50",
        "eps_resnet32", "eps_resnet56", "eps_resnet110",
    }  # fmt: skip
    assert required <= set(models.list_models())
    assert models.list_models() == sorted(models.list_models())


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("name", FAST_NAMES)
def test_every_model_maps_images_to_logits(name, num_classes):
    model = models.build_model(name, num_classes, **SMALL)
    outputs = model(_images(), training=False)
    if name.startswith("eps_resnet"):
        assert set(outputs) == {"logits", "side_logits"}
        assert tuple(outputs["side_logits"].shape) == (2, num_classes)
        assert model.loss_weights_hint == {"logits": 1.0, "side_logits": 0.1}
    else:
        assert model.loss_weights_hint is None
    logits = _logits_of(outputs)
    assert tuple(logits.shape) == (2, num_classes)
    assert logits.dtype == "float32"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))
    # Logits, not probabilities: the classifier has no activation.
    assert model.get_layer("logits").get_config()["activation"] == "linear"
    assert model.name == name


@pytest.mark.slow
def test_resnet1202_full_build_matches_the_describe_table():
    model = models.build_model("resnet1202")
    assert tuple(model(_images(1)).shape) == (1, 10)
    row = models.describe_models()["resnet1202"]
    assert row["params_10"] == models.count_params(model) == 19_421_274
    assert row["macs_10"] == models.count_macs(model)
    assert abs(row["params_10"] / 19.4e6 - 1) < 0.02


# --------------------------------------------------------------------------
# Sizes and costs


@pytest.mark.parametrize(
    "name, published",
    [("resnet20", 0.27e6), ("resnet32", 0.46e6), ("resnet44", 0.66e6), ("resnet56", 0.85e6), ("resnet110", 1.7e6)],
)
def test_cifar_resnet_parameters_match_he_et_al_table_6(name, published):
    assert abs(models.count_params(_built(name)) / published - 1) < 0.02


def test_resnet18_with_cifar_stem_has_kuangliu_parameter_count():
    assert models.count_params(_built("resnet18")) == 11_173_962


def test_count_params_excludes_batch_norm_moving_statistics():
    model = _built("resnet20")
    moving = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    assert moving > 0
    assert models.count_params(model) == model.count_params() - moving


def test_count_macs_matches_a_hand_count_for_resnet20():
    def conv(size, c_in, c_out, k=3):
        return size * size * k * k * c_in * c_out

    expected = (
        conv(32, 3, 16)
        + 6 * conv(32, 16, 16)
        + conv(16, 16, 32) + 5 * conv(16, 32, 32)
        + conv(8, 32, 64) + 5 * conv(8, 64, 64)
        + 64 * 10
    )  # fmt: skip
    assert models.count_macs(_built("resnet20")) == expected == 40_551_040


def test_count_macs_counts_strides_groups_and_dense_layers():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)  # 16x16
    x = keras.layers.Conv2D(8, 3, padding="same", groups=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5)(x)
    model = keras.Model(inputs, x)
    assert models.count_macs(model) == 16 * 16 * 9 * 3 * 8 + 16 * 16 * 9 * 4 * 8 + 8 * 5


def test_describe_models_rows_agree_with_full_builds():
    table = models.describe_models()
    assert list(table) == models.list_models()
    for name, row in table.items():
        assert set(row) == {"family", "depth", "params_10", "params_100", "macs_10"}, name
        assert all(isinstance(row[key], int) and row[key] > 0 for key in ("params_10", "params_100", "macs_10"))
        assert row["params_100"] > row["params_10"]
    # Extrapolated in n (CIFAR 6n+2 nets, side head included) and built directly.
    for name in ("resnet56", "resnet110", "plain20", "preact_resnet20", "eps_resnet20", "vgg11", "resnet18"):
        model = _built(name)
        assert table[name]["params_10"] == models.count_params(model), name
        assert table[name]["macs_10"] == models.count_macs(model), name
    # params_100 is derived from the classifier width; check it against real 100-class builds.
    for name in ("resnet20", "eps_resnet20", "vgg11"):
        assert table[name]["params_100"] == models.count_params(_built(name, 100)), name


def test_params_for_classes_is_exact_in_both_directions():
    hundred = _built("eps_resnet20", 100)
    ten = _built("eps_resnet20", 10)
    assert models.params_for_classes(hundred, 10) == models.count_params(ten)
    assert models.params_for_classes(ten, 100) == models.count_params(hundred)


def test_vgg_parameter_counts_match_the_docstring_table():
    # kuangliu's VGG16 (batch norm, one linear layer) has 14,728,266 parameters.
    assert models.count_params(_built("vgg16")) == 14_728_266
    assert models.count_params(_built("vgg16", head="vgg")) == 15_253_578
    assert models.count_params(_built("vgg16", batch_norm=False)) == 14_728_266 - 8_448
    assert "14,728,266" in models.vgg.__doc__ and "15,253,578" in models.vgg.__doc__


# --------------------------------------------------------------------------
# Layer names and architecture options


def test_resnet_layer_names_follow_the_scheme():
    names = set(_layer_names(_built("resnet20")))
    for expected in (
        "stem_conv", "stem_bn", "stem_relu",
        "stage2_block3_conv1", "stage2_block3_bn1", "stage2_block3_relu1",
        "stage2_block3_conv2", "stage2_block3_bn2", "stage2_block3_add", "stage2_block3_out",
        "stage2_block1_shortcut", "head_pool", "logits",
    ):  # fmt: skip
        assert expected in names, expected
    assert "stage3_block4_conv1" not in names  # n = 3 blocks per stage
    vgg_names = set(_layer_names(models.build_model("vgg11", head="vgg", **SMALL)))
    for expected in ("block1_conv1", "block1_bn1", "block1_relu1", "block1_pool", "block5_conv2", "fc1", "fc2", "logits"):
        assert expected in vgg_names, expected


def test_logits_stay_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = models.build_model("eps_resnet20", **SMALL)
        outputs = model(_images(), training=False)
        assert model.get_layer("stage1_block1_conv1").compute_dtype == "float16"
        assert outputs["logits"].dtype == "float32" and outputs["side_logits"].dtype == "float32"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(outputs["logits"])))
        states = diagnostics.gate_states(model, _images())
        assert set(states.values()) <= {0.0, 1.0}
    finally:
        keras.config.set_dtype_policy(previous)


def test_plain_variants_have_no_shortcut_additions():
    for name in ("plain20", "plain56"):
        model = models.build_model(name, **SMALL)
        assert not any(isinstance(layer, (keras.layers.Add, ZeroPadShortcut)) for layer in model.layers), name
    residual, plain = models.build_model("resnet20", **SMALL), models.build_model("plain20", **SMALL)
    assert sum(isinstance(layer, keras.layers.Add) for layer in residual.layers) == 9
    # Same weighted layers, so the same parameters: only the shortcuts differ.
    assert models.count_params(residual) == models.count_params(plain)
    removed = set(_layer_names(residual)) - set(_layer_names(plain))
    assert removed and all(n.endswith(("_add", "_shortcut")) for n in removed)
    assert set(_layer_names(plain)) <= set(_layer_names(residual))
    assert models.build_model("resnet20", plain=True, **SMALL).count_params() == plain.count_params()


def test_shortcut_b_projects_only_where_the_shape_changes():
    model = models.build_model("resnet20", shortcut="B", **SMALL)
    projections = [n for n in _layer_names(model) if n.endswith("_shortcut_conv")]
    assert projections == ["stage2_block1_shortcut_conv", "stage3_block1_shortcut_conv"]
    assert "stage2_block1_shortcut_bn" in _layer_names(model)
    preact = models.build_model("preact_resnet20", shortcut="B", **SMALL)
    assert "stage2_block1_shortcut_conv" in _layer_names(preact)
    assert "stage2_block1_shortcut_bn" not in _layer_names(preact)


def test_preactivation_blocks_normalise_before_each_conv():
    model = models.build_model("preact_resnet20", **SMALL)
    names = _layer_names(model)
    assert "stem_bn" not in names and {"head_bn", "head_relu"} <= set(names)
    assert model.get_layer("stage1_block2_conv1").input is model.get_layer("stage1_block2_relu1").output
    assert model.get_layer("stage1_block2_bn1").input is model.get_layer("stage1_block1_add").output
    assert models.build_model("resnet20", preactivation=True, **SMALL).count_params() == model.count_params()


@pytest.mark.parametrize("stem, size", [("cifar", 32), ("imagenet", 8)])
def test_stems_give_the_expected_feature_map_after_the_stem(stem, size):
    model = models.build_model("resnet18", stem=stem, width_multiplier=0.125)
    assert tuple(model.get_layer("stage1_block1_conv1").input.shape[1:3]) == (size, size)
    assert ("stem_pool" in _layer_names(model)) == (stem == "imagenet")
    assert tuple(model(_images()).shape) == (2, 10)


@pytest.mark.parametrize(
    "name, option, expected",
    [
        ("resnet20", "block_dropout", {f"stage{s}_block{b}_dropout" for s in (1, 2, 3) for b in (1, 2, 3)}),
        ("resnet20", "post_add_dropout", {f"stage{s}_block{b}_add_dropout" for s in (1, 2, 3) for b in (1, 2, 3)}),
        ("resnet20", "classifier_dropout", {"head_dropout"}),
        ("preact_resnet20", "block_dropout", {f"stage{s}_block{b}_dropout" for s in (1, 2, 3) for b in (1, 2, 3)}),
        ("resnet18", "block_dropout", {f"stage{s}_block{b}_dropout" for s in (1, 2, 3, 4) for b in (1, 2)}),
        ("resnet18", "post_add_dropout", {f"stage{s}_block{b}_add_dropout" for s in (1, 2, 3, 4) for b in (1, 2)}),
        ("resnet18", "classifier_dropout", {"head_dropout"}),
        (
            "resnet50",
            "block_dropout",
            {f"stage{s}_block{b}_dropout" for s, n in enumerate((3, 4, 6, 3), 1) for b in range(1, n + 1)},
        ),
        ("vgg11", "classifier_dropout", {"head_dropout"}),
    ],
)
def test_dropout_options_change_the_graph_only_where_asked(name, option, expected):
    base = models.build_model(name, width_multiplier=0.125)
    changed = models.build_model(name, width_multiplier=0.125, **{option: 0.3})
    added = [n for n in _layer_names(changed) if n not in set(_layer_names(base))]
    assert set(added) == expected
    assert all(isinstance(changed.get_layer(n), keras.layers.Dropout) for n in added)
    assert all(changed.get_layer(n).rate == 0.3 for n in added)
    # Nothing else moved: the other layers keep their order and the weights their shapes.
    assert [n for n in _layer_names(changed) if n not in expected] == _layer_names(base)
    assert [w.shape for w in changed.weights] == [w.shape for w in base.weights]


def test_dropout_sits_where_the_option_says():
    model = models.build_model("resnet20", block_dropout=0.5, post_add_dropout=0.5, classifier_dropout=0.3, **SMALL)
    block = "stage2_block2"
    assert model.get_layer(f"{block}_dropout").input is model.get_layer(f"{block}_relu1").output
    assert model.get_layer(f"{block}_conv2").input is model.get_layer(f"{block}_dropout").output
    assert model.get_layer(f"{block}_add_dropout").input is model.get_layer(f"{block}_out").output
    assert model.get_layer("head_dropout").input is model.get_layer("head_pool").output
    assert model.get_layer("logits").input is model.get_layer("head_dropout").output
    vgg = models.build_model("vgg11", head="vgg", classifier_dropout=0.5, **SMALL)
    assert {"fc1_dropout", "fc2_dropout"} <= set(_layer_names(vgg)) and "head_dropout" not in _layer_names(vgg)


def test_vgg_options_reach_the_layers():
    model = models.build_model("vgg11", batch_norm=False, kernel_initializer="he_normal", **SMALL)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert model.get_layer("block1_conv1").get_config()["kernel_initializer"]["class_name"] == "HeNormal"
    default = models.build_model("vgg11", **SMALL)
    assert default.get_layer("block1_conv1").get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert model.get_layer("block1_conv1").filters == 16 and default.get_layer("block5_conv2").filters == 128


# --------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "name, options, fragment",
    [
        ("resnet21", {}, "Unknown model name"),
        ("resnet20", {"dropout": 0.5}, "Allowed options: block_dropout"),
        ("resnet20", {"depth": 56}, "does not take option(s) depth"),
        ("plain20", {"plain": False}, "does not take option(s) plain"),
        ("vgg16", {"stem": "cifar"}, "does not take option(s) stem"),
        ("resnet18", {"shortcut": "A"}, "does not take option(s) shortcut"),
        ("vgg16", {"batch_norm": "yes"}, "batch_norm"),
        ("vgg16", {"head": "mlp"}, "head"),
        ("vgg16", {"kernel_initializer": "zeros"}, "kernel_initializer"),
        ("resnet20", {"shortcut": "C"}, "shortcut"),
        ("resnet20", {"width_multiplier": 0}, "width_multiplier"),
        ("resnet20", {"block_dropout": 1.0}, "block_dropout"),
        ("resnet20", {"classifier_dropout": -0.1}, "classifier_dropout"),
        ("resnet18", {"stem": "tiny"}, "stem"),
        ("eps_resnet56", {"epsilon": -1.0}, "epsilon"),
        ("plain20", {"shortcut": "B"}, "plain=True"),
        ("plain20", {"post_add_dropout": 0.5}, "post_add_dropout"),
        ("plain20", {"epsilon": 2.5}, "epsilon"),
        ("resnet20", {"side_loss_weight": 0.3}, "side_head=True"),
        ("resnet20", {"num_classes": 1}, "num_classes"),
    ],
)
def test_bad_names_and_options_raise_value_error(name, options, fragment):
    options = dict(options)
    num_classes = options.pop("num_classes", 10)
    with pytest.raises(ValueError, match="Received: ") as error:
        models.build_model(name, num_classes, **options)
    assert fragment in str(error.value)


def test_the_registry_lists_exactly_each_builders_keyword_options():
    # helpers.model_registry checks names and options without Keras; its
    # lists must stay the builders' own keyword-only parameters.
    import inspect

    for builder in (models.vgg, models.cifar_resnet, models.resnet):
        parameters = inspect.signature(builder).parameters.values()
        own = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"depth", "name"}
        assert set(model_registry.BUILDER_OPTIONS[builder.__name__]) == own, builder.__name__
    assert models.list_models() == model_registry.list_models()
    with pytest.raises(ValueError, match="Unknown model name"):
        models.build_model("resnet21")


def test_unknown_option_message_lists_the_allowed_options():
    with pytest.raises(ValueError) as error:
        models.build_model("eps_resnet56", gating=True)
    message = str(error.value)
    for option in ("epsilon", "side_head", "side_loss_weight", "width_multiplier", "post_add_dropout"):
        assert option in message
    assert message.endswith("Received: gating=True")


# --------------------------------------------------------------------------
# The epsilon gate


def test_gate_is_zero_when_every_response_is_within_epsilon():
    gate = EpsilonGate(2.5)
    residual = np.random.default_rng(1).uniform(-2.5, 2.5, size=(4, 8, 8, 16)).astype("float32")
    residual[0, 0, 0, 0] = 2.5  # |F| == eps still counts as within
    output = keras.ops.convert_to_numpy(gate(residual))
    assert np.array_equal(output, np.zeros_like(residual))
    assert float(gate.gate_value(residual)) == 0.0


@pytest.mark.parametrize("excess", [1.0, 1e-3, 2.0**-20])
def test_gate_leaves_the_residual_untouched_when_one_response_exceeds_epsilon(excess):
    gate = EpsilonGate(2.5)
    residual = np.random.default_rng(2).uniform(-1, 1, size=(4, 8, 8, 16)).astype("float32")
    residual[3, 7, 7, 15] = -(2.5 + excess)
    output = keras.ops.convert_to_numpy(gate(residual))
    assert np.array_equal(output, residual)  # bit for bit
    assert float(gate.gate_value(residual)) == 1.0


def test_gate_is_exactly_binary_near_the_threshold():
    # Walk F one float32 step at a time across eps + 1/L for several eps:
    # the gate must jump from 0 to 1 with no value in between.
    for epsilon in (1e-4, 0.01, 0.37, 1.0, 2.5, 7.3):
        gate = EpsilonGate(epsilon)
        start = np.float32(epsilon + 1 / DEFAULT_GATE_SHARPNESS)
        values = [start]
        for _ in range(30):
            values.append(np.nextafter(values[-1], np.float32(np.inf)))
            values.insert(0, np.nextafter(values[0], np.float32(-np.inf)))
        for value in values:
            gate_value = float(gate.gate_value(np.array([[value]], dtype="float32")))
            assert gate_value in (0.0, 1.0), (epsilon, value, gate_value)


@pytest.mark.parametrize("largest", [1.0, 2.5, 2.5 + 2.0**-21, 2.5 + 2.0**-20, 3.0, 1e6])
def test_gate_gradients_are_finite(largest):
    gate = EpsilonGate(2.5)
    residual = np.random.default_rng(3).uniform(-1, 1, size=(2, 4, 4, 3)).astype("float32")
    residual[1, 2, 3, 0] = largest
    upstream = np.random.default_rng(4).normal(size=residual.shape).astype("float32")
    variable = tf.Variable(residual)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(gate(variable) * upstream)
    gradient = tape.gradient(loss, variable).numpy()
    assert np.all(np.isfinite(gradient))
    # The gate is piecewise constant, so the gradient is gate * upstream.
    assert np.array_equal(gradient, float(gate.gate_value(residual)) * upstream)


def test_gated_off_blocks_return_exactly_their_shortcut():
    model = models.build_model("eps_resnet20", epsilon=1e9, **SMALL)
    states = diagnostics.gate_states(model, _images(4))
    assert len(states) == 9 and set(states.values()) == {0.0}
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    probe = keras.Model(model.input, [t for layer in adds for t in (layer.output, layer.input[0])])
    values = [keras.ops.convert_to_numpy(v) for v in probe(_images(4), training=False)]
    for block_output, shortcut in zip(values[::2], values[1::2]):
        assert np.array_equal(block_output, shortcut)


def test_open_gates_add_the_residual_unchanged():
    model = models.build_model("eps_resnet20", epsilon=1e-3, **SMALL)
    assert set(diagnostics.gate_states(model, _images(4)).values()) == {1.0}
    block = "stage2_block2"
    probe = keras.Model(
        model.input,
        [model.get_layer(f"{block}_add").output, model.get_layer(f"{block}_add").input[0],
         model.get_layer(f"{block}_gate").input],
    )  # fmt: skip
    output, shortcut, residual = (keras.ops.convert_to_numpy(v) for v in probe(_images(4), training=False))
    assert np.array_equal(output, shortcut + residual)


def test_gate_states_and_names():
    model = models.build_model("eps_resnet56", **SMALL)
    names = models.gate_layer_names(model)
    assert len(names) == 27 and names[0] == "stage1_block1_gate" and names[-1] == "stage3_block9_gate"
    states = diagnostics.gate_states(model, _images(4))
    assert list(states) == [n.removesuffix("_gate") for n in names]
    assert set(states.values()) <= {0.0, 1.0}
    assert model.get_layer("stage2_block3_gate").epsilon == models.DEFAULT_EPSILON == 2.5
    ungated = models.build_model("eps_resnet56", epsilon=0.0, **SMALL)
    assert models.gate_layer_names(ungated) == [] and diagnostics.gate_states(ungated, _images()) == {}
    assert diagnostics.gate_states(models.build_model("resnet20", **SMALL), _images()) == {}
    # Post-activation blocks gate the second batch norm's output.
    post_activation = models.build_model("resnet20", epsilon=1e9, **SMALL)
    gate = post_activation.get_layer("stage3_block2_gate")
    assert gate.input is post_activation.get_layer("stage3_block2_bn2").output
    assert set(diagnostics.gate_states(post_activation, _images()).values()) == {0.0}


def test_gate_responses_are_the_largest_residual_and_decide_the_gate():
    model = models.build_model("eps_resnet20", **SMALL)
    images = _images(4)
    responses = diagnostics.gate_responses(model, images)
    names = models.gate_layer_names(model)
    assert list(responses) == [n.removesuffix("_gate") for n in names]
    probe = keras.Model(model.input, [model.get_layer(n).input for n in names])
    residuals = [keras.ops.convert_to_numpy(r) for r in probe(images, training=False)]
    assert [responses[n.removesuffix("_gate")] for n in names] == pytest.approx(
        [float(np.abs(r).max()) for r in residuals], rel=1e-6)
    # A threshold just below a block's largest response keeps it, just above discards it.
    block, largest = next(iter(responses.items()))
    for epsilon, expected in ((0.99 * largest, 1.0), (1.01 * largest, 0.0)):
        gated = models.build_model("eps_resnet20", epsilon=epsilon, **SMALL)
        gated.set_weights(model.get_weights())
        assert diagnostics.gate_states(gated, images)[block] == expected
    assert diagnostics.gate_responses(models.build_model("resnet20", **SMALL), images) == {}


def test_side_head_sits_after_the_middle_block_of_stage_two():
    model = models.build_model("eps_resnet56", side_loss_weight=0.3, **SMALL)  # n = 9
    assert model.get_layer("side_bn").input is model.get_layer("stage2_block5_add").output
    assert model.get_layer("side_logits").dtype_policy.compute_dtype == "float32"
    assert model.loss_weights_hint == {"logits": 1.0, "side_logits": 0.3}
    assert sorted(model.output_names) == ["logits", "side_logits"]
    single = models.build_model("eps_resnet56", side_head=False, **SMALL)
    assert len(single.outputs) == 1 and single.loss_weights_hint is None
    assert "side_logits" not in _layer_names(single)
    with_head = models.build_model("resnet20", side_head=True, **SMALL)
    assert with_head.get_layer("side_bn").input is with_head.get_layer("stage2_block2_out").output


def test_eps_resnet_trains_one_step_with_the_hinted_loss_weights():
    model = models.build_model("eps_resnet20", **SMALL)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={"logits": loss, "side_logits": loss},
        loss_weights=model.loss_weights_hint,
        # Tracing the train step into a graph would take most of this test's time.
        run_eagerly=True,
    )
    labels = np.arange(4) % 10
    before = [w.numpy().copy() for w in model.trainable_weights]
    results = model.train_on_batch(_images(4), {"logits": labels, "side_logits": labels}, return_dict=True)
    assert all(np.isfinite(v) for v in results.values())
    after = [w.numpy() for w in model.trainable_weights]
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_models_with_custom_layers_survive_saving(tmp_path):
    model = models.build_model("eps_resnet20", epsilon=1.5, **SMALL)
    path = tmp_path / "eps.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("stage1_block1_gate"), EpsilonGate)
    assert loaded.get_layer("stage1_block1_gate").epsilon == 1.5
    assert isinstance(loaded.get_layer("stage2_block1_shortcut"), ZeroPadShortcut)
    images = _images(3)
    expected, actual = model(images, training=False), loaded(images, training=False)
    for key in ("logits", "side_logits"):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(actual[key]), keras.ops.convert_to_numpy(expected[key]))


def test_zero_pad_shortcut_subsamples_and_pads_channels():
    inputs = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    output = keras.ops.convert_to_numpy(ZeroPadShortcut(8, 2)(inputs))
    assert output.shape == (2, 2, 2, 8)
    np.testing.assert_array_equal(output[..., 2:5], inputs[:, ::2, ::2, :])
    assert not output[..., :2].any() and not output[..., 5:].any()
    with pytest.raises(ValueError, match="Received: "):
        ZeroPadShortcut(2, 2)(inputs)


@pytest.mark.parametrize("shape, stride", [((2, 32, 32, 16), 2), ((3, 16, 16, 32), 2),
                                           ((2, 6, 6, 3), 3), ((2, 5, 6, 3), 2)])
def test_subsample_matches_strided_slicing_in_values_and_gradients(shape, stride):
    import tensorflow as tf

    from helpers.layers import _subsample

    inputs = tf.constant(np.random.default_rng(0).normal(size=shape).astype("float32"))
    expected = inputs[:, ::stride, ::stride, :]
    weights = tf.constant(np.random.default_rng(1).normal(size=expected.shape).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        actual = _subsample(inputs, stride)
        reference = inputs[:, ::stride, ::stride, :]
        loss, reference_loss = tf.reduce_sum(actual * weights), tf.reduce_sum(reference * weights)
    np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    np.testing.assert_array_equal(tape.gradient(loss, inputs).numpy(),
                                  tape.gradient(reference_loss, inputs).numpy())
    # A batch size unknown until run time (as inside a traced train step).
    traced = tf.function(lambda x: _subsample(x, stride),
                         input_signature=[tf.TensorSpec([None, *shape[1:]])])
    np.testing.assert_array_equal(traced(inputs).numpy(), expected.numpy())


# --------------------------------------------------------------------------
# A second Keras backend

_BACKEND_SCRIPT = textwrap.dedent(
    """
    import keras, numpy as np
    from helpers import diagnostics, models
    assert keras.backend.backend() == BACKEND, keras.backend.backend()
    images = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for name in ("resnet20", "eps_resnet20"):
        model = models.build_model(name, width_multiplier=0.25)
        targets = {"logits": labels, "side_logits": labels} if model.loss_weights_hint else labels
        losses = {"logits": loss, "side_logits": loss} if model.loss_weights_hint else loss
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=losses, loss_weights=model.loss_weights_hint)
        before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
        result = model.train_on_batch(images, targets, return_dict=True)
        assert all(np.isfinite(float(v)) for v in result.values()), result
        after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after)), name
    states = diagnostics.gate_states(model, images)
    assert len(states) == 9 and set(states.values()) <= {0.0, 1.0}, states
    closed = models.build_model("eps_resnet20", width_multiplier=0.25, epsilon=1e9)
    assert set(diagnostics.gate_states(closed, images).values()) == {0.0}
    print("BACKEND_OK")
    """
)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_builders_train_under_a_second_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} package is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(PROJECT_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    completed = subprocess.run(
        [sys.executable, "-c", f"BACKEND = {backend!r}\n" + _BACKEND_SCRIPT],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0 and "BACKEND_OK" in completed.stdout, completed.stderr[-4000:]


# ---------------------------------------------------------------------------
# The fused batch norm matches Keras' own layer
# ---------------------------------------------------------------------------

def _bn_pair(momentum=0.9, epsilon=1e-5):
    from helpers.layers import BatchNormalization

    fused = BatchNormalization(momentum=momentum, epsilon=epsilon)
    plain = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
    for layer in (fused, plain):
        layer.build((None, 6, 6, 5))
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=5).astype("float32") + offset for offset in (1.0, 0.0, 0.0, 2.0)]
    weights[3] = np.abs(weights[3])
    fused.set_weights(weights)
    plain.set_weights(weights)
    return fused, plain


def test_fused_batch_norm_matches_keras_in_training_and_inference():
    fused, plain = _bn_pair()
    x = tf.constant(np.random.default_rng(4).normal(2.0, 3.0, size=(8, 6, 6, 5)).astype("float32"))
    # A weighting that varies within each channel, so no gradient is ~0.
    weighting = tf.constant(np.random.default_rng(5).normal(size=(8, 6, 6, 5)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out_fused = fused(x, training=True)
        out_plain = plain(x, training=True)
        loss_fused = tf.reduce_sum(out_fused * weighting)
        loss_plain = tf.reduce_sum(out_plain * weighting)
    np.testing.assert_allclose(out_fused.numpy(), out_plain.numpy(), atol=1e-4)
    # Moving statistics: same momentum update, biased batch variance.
    for a, b in zip(fused.non_trainable_weights, plain.non_trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(tape.gradient(loss_fused, [x, *fused.trainable_weights]),
                    tape.gradient(loss_plain, [x, *plain.trainable_weights])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fused(x, training=False).numpy(), plain(x, training=False).numpy(),
                               atol=1e-4)


def test_fused_batch_norm_is_used_by_the_builders_and_round_trips():
    from helpers.layers import BatchNormalization

    model = models.build_model("resnet20", 10, **SMALL)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(layer, BatchNormalization) for layer in norms)
    config = norms[0].get_config()
    clone = keras.layers.deserialize(keras.layers.serialize(norms[0]))
    assert isinstance(clone, BatchNormalization) and clone.get_config() == config
    # A frozen layer called in training mode takes Keras' own path.
    frozen, _ = _bn_pair()
    frozen.trainable = False
    assert not frozen._use_fused(tf.zeros((1, 6, 6, 5)), True, None)
    assert frozen._use_fused(tf.zeros((1, 6, 6, 5)), False, None)
