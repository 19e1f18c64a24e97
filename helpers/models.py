"""Model builders: VGG, the CIFAR ResNets of He et al., ResNet-18/34/50 and epsilon-ResNet.

Every notebook builds its networks here, through one call::

    model = build_model("resnet56", num_classes=10, shortcut="A")

Each architectural choice that the student's study got wrong (an ImageNet
stem on 32x32 images, no batch norm in VGG-19, gates on nets too shallow to
use them) is a named option, so a notebook can change exactly one thing.

Inputs and outputs
    Every model takes float32 images ``[N, 32, 32, 3]``, already normalised by
    the input pipeline, and returns LOGITS (no softmax): train with
    ``from_logits=True``. The classifier is a ``Dense`` layer named
    ``"logits"`` with ``dtype="float32"``, so the logits stay float32 under a
    ``mixed_float16`` policy. A model built with ``side_head=True`` (the
    default for ``eps_resnet*``) has two outputs, a dict
    ``{"logits": ..., "side_logits": ...}``, and carries
    ``model.loss_weights_hint = {"logits": 1.0, "side_logits": 0.1}`` for
    ``compile(loss_weights=...)``; its labels must be given for both keys.
    Every other model has one output and ``model.loss_weights_hint = None``.
    The hint is a plain attribute: it is not saved with the model.

Layer names (stable; the gradient-norm and gate plots key on them)
    ResNets: ``stem_conv``, ``stem_bn``, ``stem_relu`` (``stem_pool`` for the
    ImageNet stem; the pre-activation stem is ``stem_conv`` alone), then per
    block ``stage{S}_block{B}_`` + ``conv1``, ``bn1``, ``relu1``,
    ``dropout`` (inside the block, before the last conv), ``conv2``,
    ``bn2``, ``relu2`` (``conv3``/``bn3`` in bottlenecks), ``gate``,
    ``shortcut`` (option A) or ``shortcut_conv``/``shortcut_bn`` (projection),
    ``add``, ``out`` (the ReLU after the addition), ``add_dropout`` (after the
    addition). Stages and blocks count from 1. In pre-activation blocks
    ``bn1``/``relu1`` come before ``conv1`` and ``bn2``/``relu2`` before
    ``conv2``. Then ``head_bn``/``head_relu`` (pre-activation only),
    ``head_pool``, ``head_dropout``, ``logits``; the side head is
    ``side_bn``, ``side_relu``, ``side_pool``, ``side_logits``.
    VGG: ``block{B}_conv{C}``, ``block{B}_bn{C}``, ``block{B}_relu{C}``,
    ``block{B}_pool``, ``head_flatten``, then ``head_dropout`` and ``logits``
    (``head="linear"``) or ``fc1``, ``fc1_relu``, ``fc1_dropout``, ``fc2``,
    ``fc2_relu``, ``fc2_dropout``, ``logits`` (``head="vgg"``). Layers that
    an option turns off (dropout at rate 0, batch norm off) are absent, not
    identity layers.

Size and cost
    `count_params` counts trainable parameters (what the papers quote; batch
    norm's moving statistics are left out). `count_macs` counts
    multiply-accumulates per image in convolutions and dense layers only.
    `describe_models` tabulates both for every registered model.

Weight decay is not a model option: the engine applies it through the
optimizer, so the models carry no kernel regularizers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from helpers import model_registry
from helpers.layers import BatchNormalization, EpsilonGate, ZeroPadShortcut

INPUT_SHAPE = (32, 32, 3)
LOGITS_NAME = "logits"
SIDE_LOGITS_NAME = "side_logits"
GATE_SUFFIX = "_gate"
ADD_SUFFIX = "_add"
KERNEL_INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform")
VGG_HEADS = ("linear", "vgg")
SHORTCUTS = ("A", "B")
STEMS = ("cifar", "imagenet")
# The epsilon-ResNet paper's threshold and side-head loss weight.
DEFAULT_EPSILON = model_registry.DEFAULT_EPSILON
DEFAULT_SIDE_LOSS_WEIGHT = 0.1

# VGG conv stages as (filters, convs) pairs; each stage ends in a 2x2 max-pool,
# so five stages take 32x32 down to 1x1x512 (the CIFAR layout of kuangliu's
# pytorch-cifar and of Keras' VGG with its 224-pixel head removed).
_VGG_STAGES = {
    11: ((64, 1), (128, 1), (256, 2), (512, 2), (512, 2)),
    13: ((64, 2), (128, 2), (256, 2), (512, 2), (512, 2)),
    16: ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)),
    19: ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)),
}
_VGG_HIDDEN_UNITS = 512
# ResNet-18/34/50: blocks per stage; filters 64/128/256/512 (x4 at a
# bottleneck's output).
_IMAGENET_RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
_IMAGENET_RESNET_FILTERS = (64, 128, 256, 512)
_BOTTLENECK_EXPANSION = 4
_CIFAR_RESNET_FILTERS = (16, 32, 64)


# --------------------------------------------------------------------------
# Option checks. Each returns the normalised value or raises ValueError.


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"Option `{name}` must be True or False. Received: {name}={value!r}")
    return bool(value)


def _check_rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0.0 <= value < 1.0:
        raise ValueError(f"Option `{name}` must be a dropout rate in [0, 1). Received: {name}={value!r}")
    return float(value)


def _check_number(name: str, value, *, allow_zero: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        kind = "a number >= 0" if allow_zero else "a positive number"
        raise ValueError(f"Option `{name}` must be {kind}. Received: {name}={value!r}")
    return float(value)


def _check_positive(name: str, value) -> float:
    return _check_number(name, value, allow_zero=False)


def _check_non_negative(name: str, value) -> float:
    return _check_number(name, value, allow_zero=True)


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"Option `{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
    return int(num_classes)


def _scaled(filters: int, width_multiplier: float) -> int:
    return max(1, int(round(filters * width_multiplier)))


def _conv(filters, kernel_size, strides, name, kernel_initializer, use_bias=False):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        name=name,
    )


# Batch-norm moving averages as in the PyTorch recipes the published CIFAR
# numbers come from (torch momentum 0.1 == Keras momentum 0.9, eps 1e-5).
# Keras' default 0.99 lags by a few hundred steps: a short CPU run then
# evaluates with statistics of the initial weights and scores chance on
# validation while its training loss falls.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def _batch_norm(name):
    return BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name)


def _logits(num_classes, name=LOGITS_NAME):
    # float32 so that the loss sees float32 logits under mixed precision.
    return layers.Dense(num_classes, dtype="float32", name=name)


def _ensure_recursion_limit(num_layers: int) -> None:
    # Keras walks a functional graph recursively, one Python frame per layer
    # on the longest path; resnet1202 has about 4,200 layers in a row, more
    # than Python's default limit of 1,000.
    needed = 3 * num_layers + 1000
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


# --------------------------------------------------------------------------
# VGG


def vgg(
    num_classes: int = 10,
    *,
    depth: int,
    batch_norm: bool = True,
    kernel_initializer: str = "glorot_uniform",
    classifier_dropout: float = 0.0,
    head: str = "linear",
    width_multiplier: float = 1.0,
    name: str | None = None,
) -> keras.Model:
    """Builds VGG-11/13/16/19 for 32x32 inputs.

    Five conv stages (3x3 convs with bias, each optionally followed by batch
    norm, then ReLU; a 2x2 max-pool ends each stage) reduce 32x32 to
    1x1x512, which is flattened and classified.

    Trainable parameters for 10 classes, batch norm on (turning batch norm
    off removes 2 x channels per conv: 5,504 for VGG-11, 5,888 for VGG-13,
    8,448 for VGG-16, 11,008 for VGG-19; 100 classes add 46,170):

    | model  | head="linear" (512 -> classes) | head="vgg" (512-512-classes) |
    | ------ | ------------------------------ | ---------------------------- |
    | vgg11  |  9,231,114                     |  9,756,426                   |
    | vgg13  |  9,416,010                     |  9,941,322                   |
    | vgg16  | 14,728,266                     | 15,253,578                   |
    | vgg19  | 20,040,522                     | 20,565,834                   |

    The linear head matches kuangliu/pytorch-cifar (VGG16-BN: 14,728,266
    parameters, 92.64% on CIFAR-10); the "vgg" head keeps the original VGG's
    two hidden fully connected layers, narrowed to 512 units as in the
    common Keras CIFAR ports the student probably followed.

    Args:
        num_classes: Width of the logits.
        depth: 11, 13, 16 or 19.
        batch_norm: Batch norm after every conv. Off reproduces the student's
            VGG-19, which without careful initialisation often stays at 10%.
        kernel_initializer: For every conv and dense layer: "glorot_uniform"
            (Keras' default), "glorot_normal", "he_normal" or "he_uniform".
        classifier_dropout: Dropout rate before the logits ("linear") or
            after each hidden dense layer ("vgg").
        head: "linear" or "vgg" (see above).
        width_multiplier: Scales every conv and hidden dense width.
        name: Model name; defaults to "vgg{depth}".

    Returns:
        An uncompiled `keras.Model` mapping images to logits.

    Raises:
        ValueError: On a bad depth or option value.

    Used in: 01_vgg_gradients
    """
    if depth not in _VGG_STAGES:
        raise ValueError(f"VGG depth must be one of {sorted(_VGG_STAGES)}. Received: depth={depth!r}")
    num_classes = _check_num_classes(num_classes)
    batch_norm = _check_bool("batch_norm", batch_norm)
    kernel_initializer = _check_choice("kernel_initializer", kernel_initializer, KERNEL_INITIALIZERS)
    classifier_dropout = _check_rate("classifier_dropout", classifier_dropout)
    head = _check_choice("head", head, VGG_HEADS)
    width_multiplier = _check_positive("width_multiplier", width_multiplier)

    inputs = keras.Input(INPUT_SHAPE, name="images")
    x = inputs
    for stage_index, (filters, num_convs) in enumerate(_VGG_STAGES[depth], start=1):
        for conv_index in range(1, num_convs + 1):
            prefix = f"block{stage_index}"
            x = _conv(
                _scaled(filters, width_multiplier),
                3,
                1,
                f"{prefix}_conv{conv_index}",
                kernel_initializer,
                use_bias=True,
            )(x)
            if batch_norm:
                x = _batch_norm(f"{prefix}_bn{conv_index}")(x)
            x = layers.ReLU(name=f"{prefix}_relu{conv_index}")(x)
        x = layers.MaxPooling2D(2, name=f"block{stage_index}_pool")(x)
    x = layers.Flatten(name="head_flatten")(x)
    if head == "vgg":
        for fc_index in (1, 2):
            x = layers.Dense(
                _scaled(_VGG_HIDDEN_UNITS, width_multiplier),
                kernel_initializer=kernel_initializer,
                name=f"fc{fc_index}",
            )(x)
            x = layers.ReLU(name=f"fc{fc_index}_relu")(x)
            if classifier_dropout > 0:
                x = layers.Dropout(classifier_dropout, name=f"fc{fc_index}_dropout")(x)
    elif classifier_dropout > 0:
        x = layers.Dropout(classifier_dropout, name="head_dropout")(x)
    logits = layers.Dense(num_classes, kernel_initializer=kernel_initializer, dtype="float32", name=LOGITS_NAME)(x)
    model = keras.Model(inputs, logits, name=name or f"vgg{depth}")
    model.loss_weights_hint = None
    return model


# --------------------------------------------------------------------------
# Residual blocks shared by the CIFAR and ImageNet-style ResNets.


@dataclasses.dataclass(frozen=True)
class _BlockSettings:
    kernel_initializer: str
    block_dropout: float = 0.0
    post_add_dropout: float = 0.0
    epsilon: float = 0.0
    shortcut: str = "A"
    plain: bool = False


def _finish_block(x, residual, shortcut, prefix, settings, post_activation):
    """Gates the residual, adds the shortcut, and applies the post-add layers."""
    if settings.epsilon > 0:
        residual = EpsilonGate(settings.epsilon, name=f"{prefix}{GATE_SUFFIX}")(residual)
    if settings.plain:
        out = residual
    else:
        out = layers.Add(name=f"{prefix}{ADD_SUFFIX}")([shortcut, residual])
    if post_activation:
        out = layers.ReLU(name=f"{prefix}_out")(out)
    if settings.post_add_dropout > 0:
        out = layers.Dropout(settings.post_add_dropout, name=f"{prefix}_add_dropout")(out)
    return out


def _projection(x, filters, strides, prefix, settings, with_bn=True):
    shortcut = _conv(filters, 1, strides, f"{prefix}_shortcut_conv", settings.kernel_initializer)(x)
    if with_bn:
        shortcut = _batch_norm(f"{prefix}_shortcut_bn")(shortcut)
    return shortcut


def _basic_block(x, filters, strides, prefix, settings):
    """He et al. 2016a basic block: conv-BN-ReLU-conv-BN, add, ReLU."""
    in_channels = x.shape[-1]
    y = _conv(filters, 3, strides, f"{prefix}_conv1", settings.kernel_initializer)(x)
    y = _batch_norm(f"{prefix}_bn1")(y)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    if settings.block_dropout > 0:
        y = layers.Dropout(settings.block_dropout, name=f"{prefix}_dropout")(y)
    y = _conv(filters, 3, 1, f"{prefix}_conv2", settings.kernel_initializer)(y)
    y = _batch_norm(f"{prefix}_bn2")(y)
    shortcut = None
    if not settings.plain:
        if strides == 1 and in_channels == filters:
            shortcut = x
        elif settings.shortcut == "A":
            shortcut = ZeroPadShortcut(filters, strides, name=f"{prefix}_shortcut")(x)
        else:
            shortcut = _projection(x, filters, strides, prefix, settings)
    return _finish_block(x, y, shortcut, prefix, settings, post_activation=True)


def _preact_block(x, filters, strides, prefix, settings):
    """He et al. 2016b pre-activation block: BN-ReLU-conv-BN-ReLU-conv, add."""
    in_channels = x.shape[-1]
    activated = _batch_norm(f"{prefix}_bn1")(x)
    activated = layers.ReLU(name=f"{prefix}_relu1")(activated)
    y = _conv(filters, 3, strides, f"{prefix}_conv1", settings.kernel_initializer)(activated)
    y = _batch_norm(f"{prefix}_bn2")(y)
    y = layers.ReLU(name=f"{prefix}_relu2")(y)
    if settings.block_dropout > 0:
        y = layers.Dropout(settings.block_dropout, name=f"{prefix}_dropout")(y)
    y = _conv(filters, 3, 1, f"{prefix}_conv2", settings.kernel_initializer)(y)
    shortcut = None
    if not settings.plain:
        if strides == 1 and in_channels == filters:
            shortcut = x
        elif settings.shortcut == "A":
            shortcut = ZeroPadShortcut(filters, strides, name=f"{prefix}_shortcut")(x)
        else:
            # He et al. 2016b project the pre-activated input, without BN.
            shortcut = _projection(activated, filters, strides, prefix, settings, with_bn=False)
    return _finish_block(x, y, shortcut, prefix, settings, post_activation=False)


def _bottleneck_block(x, filters, strides, prefix, settings):
    """ResNet-50 bottleneck (stride on the 3x3 conv, as in torchvision)."""
    in_channels = x.shape[-1]
    out_channels = filters * _BOTTLENECK_EXPANSION
    y = _conv(filters, 1, 1, f"{prefix}_conv1", settings.kernel_initializer)(x)
    y = _batch_norm(f"{prefix}_bn1")(y)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    y = _conv(filters, 3, strides, f"{prefix}_conv2", settings.kernel_initializer)(y)
    y = _batch_norm(f"{prefix}_bn2")(y)
    y = layers.ReLU(name=f"{prefix}_relu2")(y)
    if settings.block_dropout > 0:
        y = layers.Dropout(settings.block_dropout, name=f"{prefix}_dropout")(y)
    y = _conv(out_channels, 1, 1, f"{prefix}_conv3", settings.kernel_initializer)(y)
    y = _batch_norm(f"{prefix}_bn3")(y)
    if strides == 1 and in_channels == out_channels:
        shortcut = x
    else:
        shortcut = _projection(x, out_channels, strides, prefix, settings)
    return _finish_block(x, y, shortcut, prefix, settings, post_activation=True)


def _side_head(x, num_classes):
    """The epsilon-ResNet side-supervision head: BN-ReLU, pool, dense."""
    x = _batch_norm("side_bn")(x)
    x = layers.ReLU(name="side_relu")(x)
    x = layers.GlobalAveragePooling2D(name="side_pool")(x)
    return _logits(num_classes, name=SIDE_LOGITS_NAME)(x)


# --------------------------------------------------------------------------
# CIFAR ResNets (He et al. 2016a, section 4.2) and epsilon-ResNet


def cifar_resnet(
    num_classes: int = 10,
    *,
    depth: int,
    shortcut: str | None = None,
    plain: bool = False,
    preactivation: bool = False,
    width_multiplier: float = 1.0,
    kernel_initializer: str = "he_normal",
    block_dropout: float = 0.0,
    post_add_dropout: float = 0.0,
    classifier_dropout: float = 0.0,
    epsilon: float = 0.0,
    side_head: bool = False,
    side_loss_weight: float | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a CIFAR ResNet of depth 6n+2 (He et al. 2016a, section 4.2).

    A 3x3 conv with 16 filters, three stages of n basic blocks with 16, 32
    and 64 filters (the first block of stages 2 and 3 halves the resolution),
    global average pooling and a dense classifier: 6n+2 weighted layers.
    With ``shortcut="A"`` the trainable parameters for 10 classes are
    269,722 (ResNet-20), 464,154 (32), 658,586 (44), 853,018 (56), 1,727,962
    (110) and 19,421,274 (1202); He et al.'s Table 6 quotes 0.27M, 0.46M,
    0.66M, 0.85M, 1.7M and 19.4M. Plain and pre-activation variants have the
    same counts; the side head adds 394 (BN on 32 channels and a 32 x 10
    dense layer).

    The same builder gives the degradation experiment's plain nets
    (``plain=True``: the same layers, no shortcuts), He et al. 2016b's
    pre-activation nets (``preactivation=True``) and epsilon-ResNet
    (``epsilon > 0``, normally with ``preactivation=True`` and
    ``side_head=True``).

    Epsilon-ResNet (Yu, Yu & Ramalingam 2018). Each block's residual output
    F passes through `helpers.layers.EpsilonGate`: the block becomes an
    exact identity when every response of F in the mini-batch has
    ``|F| <= epsilon``, and is left untouched otherwise. In a pre-activation
    block F is the output of the block's second conv, whose input has just
    been batch-normalised and rectified, so the scale of F is set by that
    conv's weights (and the preceding BN's gamma), not by the scale of the
    input images. epsilon is therefore in units of those unit-variance
    activations convolved once. The paper's code feeds
    ``(pixels - per-pixel mean) / 128``, about half our standardised
    inputs' spread, yet because every residual branch starts with BN that
    difference cancels, and the paper's default 2.5 keeps its meaning here:
    that is the default for ``eps_resnet*``. (In a post-activation block F is
    the second BN's output, so epsilon is in units of BN's gamma.) Weight
    decay is what later shrinks a block's F below epsilon.

    Args:
        num_classes: Width of the logits.
        depth: 6n+2 for n >= 1 (20, 32, 44, 56, 110, 1202, ...).
        shortcut: "A" (default: identity, subsampled and zero-padded where
            the shape changes; no extra parameters) or "B" (1x1 projection
            where the shape changes, identity elsewhere). Not allowed with
            ``plain=True``.
        plain: Drop every shortcut (no Add layers).
        preactivation: Use pre-activation blocks.
        width_multiplier: Scales the 16/32/64 filters.
        kernel_initializer: For every conv (the classifier keeps Keras'
            default); "he_normal" as in He et al.
        block_dropout: Dropout rate inside each block, before its last conv.
        post_add_dropout: Dropout rate after each shortcut addition (the
            student's "sparse dropout"); needs shortcuts.
        classifier_dropout: Dropout rate before the logits.
        epsilon: Gate threshold; 0 (default) builds no gates. Needs shortcuts.
        side_head: Add the side-supervision head after the middle block of
            stage 2 (block n//2 + 1, as in the paper's code); the model then
            has two outputs (see the module docstring).
        side_loss_weight: The side head's loss weight in
            ``model.loss_weights_hint`` (default 0.1); only with a side head.
        name: Model name; defaults to "resnet{depth}" (plain/preact prefixed).

    Returns:
        An uncompiled `keras.Model`. Building resnet1202 (about 4,200 layers
        in a row) raises Python's recursion limit for the rest of the
        process, because Keras walks functional graphs recursively.

    Raises:
        ValueError: On a bad depth, option value or option combination.

    Used in: 02_lr_schedules, 03_resnet_depth, 05_cyclical_lr, 06_sparse_gates, 07_cifar100
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 56, ...). Received: depth={depth!r}")
    num_classes = _check_num_classes(num_classes)
    plain = _check_bool("plain", plain)
    if shortcut is not None and plain:
        raise ValueError(f"Option `shortcut` has no meaning with plain=True. Received: shortcut={shortcut!r}")
    shortcut = _check_choice("shortcut", "A" if shortcut is None else shortcut, SHORTCUTS)
    preactivation = _check_bool("preactivation", preactivation)
    width_multiplier = _check_positive("width_multiplier", width_multiplier)
    kernel_initializer = _check_choice("kernel_initializer", kernel_initializer, KERNEL_INITIALIZERS)
    block_dropout = _check_rate("block_dropout", block_dropout)
    post_add_dropout = _check_rate("post_add_dropout", post_add_dropout)
    classifier_dropout = _check_rate("classifier_dropout", classifier_dropout)
    epsilon = _check_non_negative("epsilon", epsilon)
    side_head = _check_bool("side_head", side_head)
    if side_loss_weight is not None and not side_head:
        raise ValueError(
            f"Option `side_loss_weight` needs side_head=True. Received: side_loss_weight={side_loss_weight!r}"
        )
    side_loss_weight = _check_non_negative(
        "side_loss_weight", DEFAULT_SIDE_LOSS_WEIGHT if side_loss_weight is None else side_loss_weight
    )
    if plain and post_add_dropout > 0:
        raise ValueError(
            "Option `post_add_dropout` acts after the shortcut addition, which plain nets lack. "
            f"Received: plain=True, post_add_dropout={post_add_dropout}"
        )
    if plain and epsilon > 0:
        raise ValueError(
            "Option `epsilon` gates a residual branch around a shortcut, which plain nets lack. "
            f"Received: plain=True, epsilon={epsilon}"
        )

    blocks_per_stage = (depth - 2) // 6
    settings = _BlockSettings(
        kernel_initializer=kernel_initializer,
        block_dropout=block_dropout,
        post_add_dropout=post_add_dropout,
        epsilon=epsilon,
        shortcut=shortcut,
        plain=plain,
    )
    block = _preact_block if preactivation else _basic_block
    _ensure_recursion_limit(depth * 4)

    inputs = keras.Input(INPUT_SHAPE, name="images")
    x = _conv(_scaled(_CIFAR_RESNET_FILTERS[0], width_multiplier), 3, 1, "stem_conv", kernel_initializer)(inputs)
    if not preactivation:
        x = _batch_norm("stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
    side_logits = None
    for stage_index, filters in enumerate(_CIFAR_RESNET_FILTERS, start=1):
        for block_index in range(1, blocks_per_stage + 1):
            strides = 2 if stage_index > 1 and block_index == 1 else 1
            prefix = f"stage{stage_index}_block{block_index}"
            x = block(x, _scaled(filters, width_multiplier), strides, prefix, settings)
            if side_head and stage_index == 2 and block_index == blocks_per_stage // 2 + 1:
                side_logits = _side_head(x, num_classes)
    if preactivation:
        x = _batch_norm("head_bn")(x)
        x = layers.ReLU(name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    if classifier_dropout > 0:
        x = layers.Dropout(classifier_dropout, name="head_dropout")(x)
    logits = _logits(num_classes)(x)

    if name is None:
        name = ("plain" if plain else "preact_resnet" if preactivation else "resnet") + str(depth)
    if side_head:
        model = keras.Model(inputs, {LOGITS_NAME: logits, SIDE_LOGITS_NAME: side_logits}, name=name)
        model.loss_weights_hint = {LOGITS_NAME: 1.0, SIDE_LOGITS_NAME: side_loss_weight}
    else:
        model = keras.Model(inputs, logits, name=name)
        model.loss_weights_hint = None
    return model


# --------------------------------------------------------------------------
# ResNet-18/34/50


def resnet(
    num_classes: int = 10,
    *,
    depth: int,
    stem: str = "cifar",
    width_multiplier: float = 1.0,
    kernel_initializer: str = "he_normal",
    block_dropout: float = 0.0,
    post_add_dropout: float = 0.0,
    classifier_dropout: float = 0.0,
    name: str | None = None,
) -> keras.Model:
    """Builds ResNet-18/34 (basic blocks) or ResNet-50 (bottlenecks).

    Four stages with 64/128/256/512 filters (x4 at a bottleneck's output),
    1x1 projection shortcuts (with BN) wherever the shape changes, global
    average pooling and a dense classifier. Trainable parameters for 10
    classes with either stem: 11,173,962 (ResNet-18, as kuangliu's
    pytorch-cifar), 21,282,122 (ResNet-34), 23,520,842 (ResNet-50); the
    ImageNet stem adds 7,680 (7x7 instead of 3x3 kernels).

    Args:
        num_classes: Width of the logits.
        depth: 18, 34 or 50.
        stem: "cifar" (3x3 conv, stride 1, no pooling: stage 1 sees 32x32)
            or "imagenet" (7x7 conv, stride 2, then 3x3 max-pool with stride
            2: stage 1 sees 8x8, as in the student's study).
        width_multiplier: Scales every filter count.
        kernel_initializer: For every conv; "he_normal" by default.
        block_dropout: Dropout rate inside each block, before its last conv
            (the student's 0.5 "dropout in residual blocks").
        post_add_dropout: Dropout rate after each shortcut addition (the
            student's "sparse dropout" for CIFAR-100).
        classifier_dropout: Dropout rate before the logits (the student's 0.3).
        name: Model name; defaults to "resnet{depth}".

    Returns:
        An uncompiled `keras.Model` mapping images to logits.

    Raises:
        ValueError: On a bad depth or option value.

    Used in: 03_resnet_depth, 04_dropout, 07_cifar100
    """
    if depth not in _IMAGENET_RESNET_BLOCKS:
        raise ValueError(
            f"ResNet depth must be one of {sorted(_IMAGENET_RESNET_BLOCKS)}. Received: depth={depth!r}"
        )
    num_classes = _check_num_classes(num_classes)
    stem = _check_choice("stem", stem, STEMS)
    width_multiplier = _check_positive("width_multiplier", width_multiplier)
    kernel_initializer = _check_choice("kernel_initializer", kernel_initializer, KERNEL_INITIALIZERS)
    block_dropout = _check_rate("block_dropout", block_dropout)
    post_add_dropout = _check_rate("post_add_dropout", post_add_dropout)
    classifier_dropout = _check_rate("classifier_dropout", classifier_dropout)
    settings = _BlockSettings(
        kernel_initializer=kernel_initializer,
        block_dropout=block_dropout,
        post_add_dropout=post_add_dropout,
        shortcut="B",
    )
    block = _bottleneck_block if depth >= 50 else _basic_block

    inputs = keras.Input(INPUT_SHAPE, name="images")
    stem_filters = _scaled(_IMAGENET_RESNET_FILTERS[0], width_multiplier)
    if stem == "cifar":
        x = _conv(stem_filters, 3, 1, "stem_conv", kernel_initializer)(inputs)
    else:
        x = _conv(stem_filters, 7, 2, "stem_conv", kernel_initializer)(inputs)
    x = _batch_norm("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    if stem == "imagenet":
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage_index, (filters, num_blocks) in enumerate(
        zip(_IMAGENET_RESNET_FILTERS, _IMAGENET_RESNET_BLOCKS[depth]), start=1
    ):
        for block_index in range(1, num_blocks + 1):
            strides = 2 if stage_index > 1 and block_index == 1 else 1
            prefix = f"stage{stage_index}_block{block_index}"
            x = block(x, _scaled(filters, width_multiplier), strides, prefix, settings)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    if classifier_dropout > 0:
        x = layers.Dropout(classifier_dropout, name="head_dropout")(x)
    logits = _logits(num_classes)(x)
    model = keras.Model(inputs, logits, name=name or f"resnet{depth}")
    model.loss_weights_hint = None
    return model


# --------------------------------------------------------------------------
# Registry: the names and their options live in helpers.model_registry
# (no Keras there, so the command line can refuse a typo at once).

_BUILDERS: dict[str, Callable[..., keras.Model]] = {"vgg": vgg, "cifar_resnet": cifar_resnet, "resnet": resnet}


def _builder(entry: model_registry.RegisteredModel) -> Callable[..., keras.Model]:
    """The builder with the name's fixed arguments and defaults bound."""
    return functools.partial(_BUILDERS[entry.builder], **entry.fixed, **entry.defaults)


def list_models() -> list[str]:
    """Returns the names `build_model` accepts, sorted.

    Used in: describe_models (`python -m helpers models`)
    """
    return model_registry.list_models()


def build_model(name: str, num_classes: int = 10, **options) -> keras.Model:
    """Builds a registered model by name.

    Names: vgg11/13/16/19 (`vgg`); resnet20/32/44/56/110/1202,
    plain20/32/44/56/110, preact_resnet20/56/110 and eps_resnet20/32/56/110
    (`cifar_resnet`; ``plain20`` is ``resnet20`` with ``plain=True``,
    ``preact_resnet56`` is ``resnet56`` with ``preactivation=True``, and
    ``eps_resnet56`` is ``preact_resnet56`` with ``epsilon=2.5`` and
    ``side_head=True``); resnet18/34/50 (`resnet`). See each builder for
    its options and parameter counts, and the module docstring for inputs,
    outputs and layer names.

    Args:
        name: A name from `list_models()`.
        num_classes: Width of the logits (10 or 100 for CIFAR).
        **options: Keyword options of the model's builder, except those the
            name fixes (``depth``; ``plain`` for plain*; ``preactivation``
            for preact_* and eps_*).

    Returns:
        An uncompiled `keras.Model` mapping float32 ``[N, 32, 32, 3]`` images
        to logits (two outputs with a side head).

    Raises:
        ValueError: For an unknown name, an option the model does not take
            (the message lists the allowed ones), or a bad option value.

    Used in: 01_vgg_gradients through 07_cifar100 (every training run, through helpers.compilation)
    """
    entry = model_registry.check_model(name, options)
    return _builder(entry)(num_classes, **options)


# --------------------------------------------------------------------------
# Size and cost


def count_params(model: keras.Model) -> int:
    """Returns the number of trainable parameters (BN moving statistics excluded).

    Used in: params_for_classes, describe_models (`python -m helpers models`)
    """
    return int(sum(math.prod(weight.shape) for weight in model.trainable_weights))


def _flat_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer


def count_macs(model: keras.Model) -> int:
    """Returns multiply-accumulates per image in the model's conv and dense layers.

    A conv contributes ``H_out * W_out * k_h * k_w * C_in / groups * C_out``
    (which is its kernel size times the output's spatial size), a dense
    layer ``inputs * units``. Biases, batch norm, activations, pooling,
    additions, padding and gates are not counted (together they are well
    under 1% of a ResNet's count). Under ``mixed_float16`` the count is the
    same: it counts operations, not their precision.

    Used in: describe_models (`python -m helpers models`)
    """
    total = 0
    for layer in _flat_layers(model):
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            _, height, width, _ = layer.output.shape
            total += height * width * math.prod(layer.kernel.shape)
        elif isinstance(layer, layers.Dense):
            positions = math.prod(layer.output.shape[1:-1])
            total += positions * math.prod(layer.kernel.shape)
    return int(total)


def _classifier_inputs(model) -> list[int]:
    return [
        layer.kernel.shape[0] for layer in _flat_layers(model) if layer.name in (LOGITS_NAME, SIDE_LOGITS_NAME)
    ]


def params_for_classes(model: keras.Model, num_classes: int) -> int:
    """Returns `count_params` of the same model rebuilt with ``num_classes`` outputs.

    Only the classifier layers (``logits`` and ``side_logits``) depend on
    the number of classes: each has ``inputs * classes + classes``
    parameters, so the difference is exact without building the model again.

    Used in: describe_models (`python -m helpers models`)
    """
    num_classes = _check_num_classes(num_classes)
    current = _classifier_head_classes(model)
    difference = sum((inputs + 1) * (num_classes - current) for inputs in _classifier_inputs(model))
    return count_params(model) + difference


def _classifier_head_classes(model) -> int:
    return int(model.get_layer(LOGITS_NAME).kernel.shape[-1])


def describe_models(num_classes: tuple[int, ...] = (10, 100)) -> dict[str, dict]:
    """Returns the size and cost of every registered model, keyed by name.

    Each row holds ``params_{C}`` (trainable parameters) for each C in
    ``num_classes``, ``macs_{C0}`` (multiply-accumulates per image, see
    `count_macs`) for the first C, ``family`` and ``depth``.

    Cost of the call: every model with a fixed layout is built once with the
    first class count; other class counts are derived exactly from the
    classifier widths (`params_for_classes`). The CIFAR 6n+2 nets are not
    built at full depth: within one variant (v1, plain, pre-activation,
    epsilon), blocks 2..n of a stage are identical, so parameters and MACs
    are affine in n; they are computed from the same variant built with
    n=1 and n=2 (depths 8 and 14). tests/test_models.py checks both
    derivations against full builds. The whole table takes about 10 s on two
    busy CPU cores (a full resnet1202 build alone takes about a minute).

    Args:
        num_classes: Class counts to report parameters for; MACs are
            reported for the first.

    Returns:
        ``{name: {"family", "depth", "params_10", "params_100", "macs_10"}}``
        for the default argument, in `list_models()` order.

    Used in: `python -m helpers models`
    """
    num_classes = tuple(_check_num_classes(c) for c in num_classes)
    if not num_classes:
        raise ValueError("describe_models needs at least one class count. Received: num_classes=()")
    first = num_classes[0]
    small_builds: dict[tuple, tuple[keras.Model, keras.Model]] = {}
    table = {}
    for name in list_models():
        entry = model_registry.REGISTRY[name]
        if entry.builder == "cifar_resnet":
            variant = {k: v for k, v in _builder(entry).keywords.items() if k not in ("depth", "name")}
            key = tuple(sorted(variant.items()))
            if key not in small_builds:
                small_builds[key] = (
                    cifar_resnet(first, depth=8, **variant),
                    cifar_resnet(first, depth=14, **variant),
                )
            model_one, model_two = small_builds[key]
            blocks_per_stage = (entry.depth - 2) // 6

            def extrapolate(measure, model_one=model_one, model_two=model_two, n=blocks_per_stage):
                one, two = measure(model_one), measure(model_two)
                return one + (n - 1) * (two - one)

            params = {c: extrapolate(lambda m, c=c: params_for_classes(m, c)) for c in num_classes}
            macs = extrapolate(count_macs)
        else:
            model = _builder(entry)(first)
            params = {c: params_for_classes(model, c) for c in num_classes}
            macs = count_macs(model)
            del model
        row = {"family": entry.family, "depth": entry.depth}
        row.update({f"params_{c}": int(params[c]) for c in num_classes})
        row[f"macs_{first}"] = int(macs)
        table[name] = row
    return table


# --------------------------------------------------------------------------
# Gates (their probes, which run the model, are in helpers.diagnostics)


def residual_add_layer_names(model: keras.Model) -> list[str]:
    """Returns the names of the blocks' shortcut additions (``<block>_add``), in network order.

    The residual branch F of a block is the addition's second input (the
    first is the shortcut), so an ungated net's responses can be read there
    without changing the net. In a gated net that input is the gate's output,
    not F: use `gate_layer_names` there.

    Used in: 06_sparse_gates
    """
    return [layer.name for layer in _flat_layers(model)
            if isinstance(layer, keras.layers.Add) and layer.name.endswith(ADD_SUFFIX)]


def gate_layer_names(model: keras.Model) -> list[str]:
    """Returns the names of the model's `EpsilonGate` layers, in network order.

    Empty for models without gates (including eps_resnet* built with
    ``epsilon=0``).

    Used in: 06_sparse_gates
    """
    return [layer.name for layer in _flat_layers(model) if isinstance(layer, EpsilonGate)]
