"""A hand-written Keras ResNet-20 script: the yardstick for ``train --schedule onecycle``.

Issue 15 asks that ``python -m helpers train --model resnet20 --dataset
cifar10 --schedule onecycle`` with no other option train as well as a tuned
hand-written script at the same budget. This is that script, written the way
a practitioner would write it in one file: plain Keras layers, a tf.data
pipeline with pad-4 crops and flips, SGD with Nesterov momentum, a one-cycle
rate (linear warm-up over 30% of the steps to the peak, cosine down to
peak/1e4 after), L2 weight decay, label smoothing, batch 128. Its
hyperparameters are the common hand-tuned choices for a short ResNet-20 run
(peak 0.4, weight decay 5e-4, label smoothing 0.1); it uses none of the
project's engine, only ``helpers.data.load_cifar`` so that it trains and
tests on exactly the engine's split (45,000 / 5,000 / 10,000 images).

Prints one JSON object: test accuracy and loss, each epoch's validation
accuracy, wall seconds, images per second, the settings, and every test
image's 0/1 score (packed as the run records pack them, with the labels'
digest) so that ``benchmarks/onecycle_recipe.py`` can pair it with the
engine's runs image by image.

Usage:
    python benchmarks/handwritten_resnet20.py --data-dir ../shared/data --epochs 10 [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import data as cifar_data  # noqa: E402  (sets TensorFlow's log level first)
from helpers.records import labels_digest, pack_bits  # noqa: E402


def build_resnet20(keras, weight_decay: float, num_classes: int = 10):
    layers, regularizers = keras.layers, keras.regularizers
    l2 = regularizers.L2(weight_decay / 2)  # Keras' L2 adds l * sum(w^2): gradient 2 * l * w

    def conv(x, filters, stride=1, kernel=3):
        return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                             kernel_initializer="he_normal", kernel_regularizer=l2)(x)

    def block(x, filters, stride):
        shortcut = x
        y = layers.ReLU()(layers.BatchNormalization()(conv(x, filters, stride)))
        y = layers.BatchNormalization()(conv(y, filters))
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.BatchNormalization()(conv(x, filters, stride, kernel=1))
        return layers.ReLU()(layers.Add()([y, shortcut]))

    inputs = keras.Input((32, 32, 3))
    x = layers.ReLU()(layers.BatchNormalization()(conv(inputs, 16)))
    for stage, filters in enumerate((16, 32, 64)):
        for index in range(3):
            x = block(x, filters, 2 if stage and index == 0 else 1)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, kernel_regularizer=l2)(x)
    return keras.Model(inputs, outputs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak", type=float, default=0.4)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--validation-size", type=int, default=5000,
                        help="images held out, as the engine's default (5,000)")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    data = cifar_data.load_cifar("cifar10", args.data_dir, validation_size=args.validation_size)
    mean = data.x_train.reshape(-1, 3).mean(axis=0) / 255.0
    std = data.x_train.reshape(-1, 3).std(axis=0) / 255.0

    def normalise(images):
        return (tf.cast(images, tf.float32) / 255.0 - mean) / std

    def augment(image, label):
        image = tf.image.random_flip_left_right(tf.image.pad_to_bounding_box(image, 4, 4, 40, 40))
        return tf.image.random_crop(image, (32, 32, 3)), label

    batch = args.batch_size
    train = (tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train.astype("int32")))
             .shuffle(len(data.x_train), seed=args.seed).map(lambda x, y: (normalise(x), y))
             .map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch, drop_remainder=True)
             .prefetch(tf.data.AUTOTUNE))
    validation = tf.data.Dataset.from_tensor_slices((data.x_val, data.y_val.astype("int32"))).map(
        lambda x, y: (normalise(x), y)).batch(256)
    test = tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test.astype("int32"))).map(
        lambda x, y: (normalise(x), y)).batch(256)

    steps = args.epochs * (len(data.x_train) // batch)
    warmup = int(0.3 * steps)

    class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            low = args.peak / 25.0
            rising = low + (args.peak - low) * step / max(warmup, 1)
            progress = (step - warmup) / max(steps - warmup, 1)
            falling = args.peak / 1e4 + 0.5 * (args.peak - args.peak / 1e4) * (1 + tf.cos(math.pi * progress))
            return tf.where(step < warmup, rising, falling)

    model = build_resnet20(keras, args.weight_decay)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=args.label_smoothing)

    def one_hot(dataset):
        return dataset.map(lambda x, y: (x, tf.one_hot(y, 10)))

    model.compile(optimizer=keras.optimizers.SGD(OneCycle(), momentum=0.9, nesterov=True), loss=loss,
                  metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(one_hot(train), validation_data=one_hot(validation), epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(one_hot(test), verbose=0)
    predicted = np.argmax(model.predict(test, verbose=0), axis=1)
    correct = predicted == data.y_test.ravel()
    print(json.dumps({
        "script": "benchmarks/handwritten_resnet20.py", "epochs": args.epochs, "seed": args.seed,
        "peak": args.peak, "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing,
        "batch_size": batch, "train_images": int(len(data.x_train)), "test_images": int(len(data.x_test)),
        "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
        "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
        "wall_seconds": round(seconds, 1), "images_per_second": round(steps * batch / seconds, 1),
        "test_correct": pack_bits(correct), "test_labels_digest": labels_digest(data.y_test),
        "parameters": int(model.count_params()), "cpu": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
