"""Custom Keras layers used by the model builders in `helpers.models`.

The gate and the shortcut are written with `keras.ops` only, so they run
under the TensorFlow, JAX and PyTorch backends. `BatchNormalization` is
Keras' own layer with TensorFlow's fused kernel swapped in on the TensorFlow
backend (and Keras' code on every other backend). All three are registered for
serialisation under the package name ``cifar_lab``: a model saved to
``.keras`` loads again with ``keras.saving.load_model`` as long as this module
has been imported (importing `helpers.models` imports it).
"""

from __future__ import annotations

import keras
from keras import ops

# The paper's code uses L = 1e6. A power of two is used instead so that L * s
# is exact in float32; with it the gate below is provably exactly 0 or 1 for
# every epsilon above about 1e-5 (see EpsilonGate), while the threshold moves
# only from eps + 1e-6 to eps + 9.5e-7.
DEFAULT_GATE_SHARPNESS = float(2**20)


@keras.saving.register_keras_serializable(package="cifar_lab")
class EpsilonGate(keras.layers.Layer):
    """The epsilon-ResNet sparsity-promoting gate on a residual branch.

    From Yu, Yu & Ramalingam, "Learning Strict Identity Mappings in Deep
    Residual Networks" (CVPR 2018). For the residual-branch output ``F`` of one
    block, over the *whole* mini-batch tensor:

        s    = max( relu(F - eps) + relu(-F - eps) )
        gate = relu(1 - L * relu(1 - L * s))
        out  = gate * F

    so ``gate`` is 0 when every response satisfies ``|F| <= eps`` and 1 as soon
    as one response exceeds ``eps`` (by at least ``1 / L``). The builders add
    the shortcut afterwards (``block output = gate * F + shortcut``), so a
    gated-off block is an exact identity mapping.

    Numerics. The gate is always computed in float32, also under a
    ``mixed_float16`` policy, where ``L`` itself would overflow float16.
    ``L`` defaults to 2**20: ``L * s`` is then exact, and the gate could only
    leave {0, 1} if ``s`` fell strictly between ``1/L - 1/L**2`` and ``1/L``.
    When ``s`` is that small, ``|F|`` is within 1e-6 of ``eps`` and
    ``|F| - eps`` is a multiple of float32's spacing at ``eps``
    (``eps * 2**-23`` or coarser), which leaves no such value for
    ``eps > 2**-17``. The gradient of the gate with respect to ``F`` is
    therefore zero everywhere (ReLU's derivative at 0 is 0 in all three
    backends) and finite; the gradient reaching ``F`` is ``gate`` times the
    upstream gradient.

    Args:
        epsilon: The threshold on ``|F|``, in the units of ``F`` (see
            `helpers.models.build_model` for what that scale is). Must be > 0;
            the builders leave the layer out when epsilon is 0.
        sharpness: The constant ``L``.
        **kwargs: Standard layer arguments (``name``, ``dtype``).

    Used in: 06_sparse_gates
    """

    def __init__(self, epsilon: float, sharpness: float = DEFAULT_GATE_SHARPNESS, **kwargs):
        super().__init__(**kwargs)
        epsilon = float(epsilon)
        sharpness = float(sharpness)
        if not epsilon > 0.0:
            raise ValueError(
                "EpsilonGate needs epsilon > 0 (leave the layer out to turn gating off). "
                f"Received: epsilon={epsilon}"
            )
        if not sharpness >= 1.0:
            raise ValueError(f"EpsilonGate needs sharpness >= 1. Received: sharpness={sharpness}")
        self.epsilon = epsilon
        self.sharpness = sharpness

    def gate_value(self, residual):
        """Returns the gate (a float32 scalar, 0.0 or 1.0) for one batch of ``F``."""
        residual = ops.cast(residual, "float32")
        excess = ops.relu(residual - self.epsilon) + ops.relu(-residual - self.epsilon)
        largest_excess = ops.max(excess)
        inner = ops.relu(1.0 - self.sharpness * largest_excess)
        return ops.relu(1.0 - self.sharpness * inner)

    def call(self, inputs):
        gate = self.gate_value(inputs)
        return ops.cast(gate, inputs.dtype) * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "sharpness": self.sharpness})
        return config


def _subsample(inputs, stride: int):
    """``inputs[:, ::stride, ::stride, :]``, computed as a reshape and a slice.

    When the height and width are multiples of ``stride`` (always, in the
    CIFAR nets), every kept pixel is the first of a ``stride x stride`` cell:
    reshaping to ``[B, H/s, s, W/s, s*C]`` and slicing ``[:, :, 0, :, :C]``
    selects exactly those values, and the slice's gradient is a pad. On the
    TensorFlow CPU backend the strided slice's gradient (StridedSliceGrad)
    cost about 9 ms a step at ResNet-20's first subsampling (batch 128);
    forward and backward together went from 13.4 to 3.9 ms there and from
    7.3 to 1.9 ms at the second, with bit-identical values and gradients.
    Other shapes keep the strided slice.
    """
    _, height, width, channels = inputs.shape
    if (height is None or width is None or channels is None
            or height % stride or width % stride):
        return inputs[:, ::stride, ::stride, :]
    cells = ops.reshape(inputs, (-1, height // stride, stride, width // stride, stride * channels))
    kept = ops.slice(cells, (0, 0, 0, 0, 0),
                     (ops.shape(cells)[0], height // stride, 1, width // stride, channels))
    return ops.reshape(kept, (-1, height // stride, width // stride, channels))


@keras.saving.register_keras_serializable(package="cifar_lab")
class ZeroPadShortcut(keras.layers.Layer):
    """He et al.'s shortcut option A: subsample, then zero-pad the channels.

    The identity shortcut of a block that halves the resolution and widens the
    channels: it keeps every ``stride``-th pixel (``x[:, ::2, ::2, :]``) and
    pads the channel axis with zeros, half on each side, so it adds no
    parameters. (The epsilon-ResNet code average-pools instead of
    subsampling; the parameter count is the same.)

    Args:
        out_channels: Channels of the output; at least the input's.
        strides: Spatial subsampling factor (1 or 2).
        **kwargs: Standard layer arguments.

    Used in: 02_lr_schedules, 03_resnet_depth, 05_cyclical_lr, 06_sparse_gates, 07_cifar100
    """

    def __init__(self, out_channels: int, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = int(out_channels)
        self.strides = int(strides)
        if self.strides < 1:
            raise ValueError(f"ZeroPadShortcut needs strides >= 1. Received: strides={strides}")

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None or in_channels > self.out_channels:
            raise ValueError(
                "ZeroPadShortcut cannot reduce channels; use a projection shortcut "
                f"(option 'B'). Received: in_channels={in_channels}, "
                f"out_channels={self.out_channels}"
            )

    def call(self, inputs):
        if self.strides > 1:
            inputs = _subsample(inputs, self.strides)
        extra = self.out_channels - inputs.shape[-1]
        if extra == 0:
            return inputs
        before = extra // 2
        return ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [before, extra - before]])

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.strides > 1:
            height = None if height is None else -(-height // self.strides)
            width = None if width is None else -(-width // self.strides)
        return (batch, height, width, self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update({"out_channels": self.out_channels, "strides": self.strides})
        return config


@keras.saving.register_keras_serializable(package="cifar_lab")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel.

    Keras 3 normalises with separate moments, subtract, multiply and add ops
    on the TensorFlow backend, and differentiates through each of them. On a
    CPU that cost ResNet-20 a fifth of its training speed; TensorFlow's
    ``FusedBatchNormV3`` (a oneDNN kernel when oneDNN is on, cuDNN on a GPU)
    does the forward and backward pass in one op each. The maths, the
    variables (gamma, beta, moving mean and variance), the moving-average
    update (with the biased batch variance, as Keras does) and the saved
    weights are those of the Keras layer, so checkpoints are interchangeable
    (tests/test_models.py compares outputs, moving statistics and gradients).

    Keras' own code runs instead on other backends and in the cases the fused
    kernel does not cover: masks, renorm, synchronised statistics, axes
    other than the last of a 4-D input, missing gamma or beta, and a frozen
    layer called in training mode.
    """

    def _use_fused(self, inputs, training, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and not self.synchronized and self.center and self.scale
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and not (training and not self.trainable))

    def call(self, inputs, training=None, mask=None):
        if not self._use_fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")  # as Keras does: statistics in float32
        if training:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            # The fused kernel returns the unbiased (n - 1) batch variance;
            # Keras' moving average takes the biased one.
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
            variance = variance * tf.math.divide_no_nan(count - 1.0, count)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, data_format="NHWC", is_training=False)
        return tf.cast(y, self.compute_dtype)
