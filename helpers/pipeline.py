"""The tf.data input pipeline shared by every experiment.

Images stay uint8 in memory; each batch is gathered by index, normalised with
the *training* split's channel statistics and, for training, augmented inside
the graph with the standard CIFAR recipe of He et al. (2016): pad 4 pixels,
take a random 32x32 crop, flip horizontally with probability 1/2.

Augmentation works on whole batches (one gather does the padding, the crops
and the flips) rather than image by image: on a two-core laptop the pipeline
then costs a few percent of a training step instead of competing with it.
Randomness comes from stateless ops seeded from a seeded stream, so a given
seed gives the same batches and the same crops on every run, in the
deterministic mode as well as the fast one.
"""

from __future__ import annotations

import dataclasses

import os
from typing import Callable

import numpy as np
import tensorflow as tf

PAD_PIXELS = 4
# Fixed parallelism instead of tf.data's autotuning (see make_dataset). One
# batch takes milliseconds to make, so a map call per core and a few batches
# ahead keep any CIFAR model fed (benchmarks/pipeline.py measures it).
MAP_PARALLEL_CALLS = max(1, min(os.cpu_count() or 1, 8))
PREFETCH_BATCHES = 4


def _validate(images: np.ndarray, labels: np.ndarray, batch_size: int, mean, std) -> None:
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(
            f"images must have shape [N, 32, 32, 3]. Received: shape {images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 pixels. Received: dtype {images.dtype}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must have one entry per image ({images.shape[0]}). "
            f"Received: {labels.shape[0]} labels"
        )
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer. Received: {batch_size!r}")
    for argument, value in (("mean", mean), ("std", std)):
        if np.asarray(value).shape != (3,):
            raise ValueError(
                f"{argument} must hold one value per RGB channel. Received: {value!r}"
            )
    if np.any(np.asarray(std) <= 0):
        raise ValueError(f"std must be positive. Received: {std!r}")


def random_crop_and_flip(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Pads a batch by 4 pixels, crops each image at a random offset, flips half.

    Args:
        images: float tensor [B, H, W, C].
        seed: int64 tensor of shape [2], a stateless-random seed.

    Returns:
        The augmented batch, same shape and dtype. Padding is with zeros, which
        after normalisation is the training set's mean colour, as in He et al.

    Used in: 00_data (augmentation preview) and every training run.
    """
    # One gather does the padding, the crop and the flip: each output pixel
    # reads its source pixel, or an appended zero pixel where the crop reaches
    # into the padding, and a flipped image reads its columns right to left.
    # The same values as padding, gathering rows, gathering columns, reversing
    # and selecting (tested bit for bit), in one pass over the batch instead
    # of five (the pipeline alone: about 27,000 -> 57,000-62,000 images/s on
    # two cores; benchmarks/README.md).
    batch = tf.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    offsets = tf.random.stateless_uniform(
        [batch, 2], seed=seed, minval=0, maxval=2 * PAD_PIXELS + 1, dtype=tf.int32
    )
    flip_seed = tf.stack([seed[0], seed[1] + 1])
    flips = tf.random.stateless_uniform([batch], seed=flip_seed) < 0.5
    rows = offsets[:, :1] - PAD_PIXELS + tf.range(height)[tf.newaxis, :]
    forward = tf.range(width)[tf.newaxis, :]
    columns = offsets[:, 1:] - PAD_PIXELS + tf.where(flips[:, tf.newaxis], width - 1 - forward, forward)
    inside = (((rows >= 0) & (rows < height))[:, :, tf.newaxis]
              & ((columns >= 0) & (columns < width))[:, tf.newaxis, :])
    pixel = ((tf.range(batch)[:, tf.newaxis, tf.newaxis] * height + rows[:, :, tf.newaxis]) * width
             + columns[:, tf.newaxis, :])
    pixel = tf.where(inside, pixel, batch * height * width)
    flat = tf.concat([tf.reshape(images, [-1, channels]), tf.zeros([1, channels], images.dtype)], axis=0)
    return tf.gather(flat, pixel)  # [B, H, W, C]


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    training: bool,
    mean,
    std,
    seed: int = 0,
    augment: bool = True,
    deterministic: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    label_transform: Callable[[tf.Tensor], object] | None = None,
) -> tf.data.Dataset:
    """Builds a batched, normalised (and for training, augmented) tf.data pipeline.

    Args:
        images: uint8 array [N, 32, 32, 3].
        labels: integer array [N].
        batch_size: Images per batch (the global batch under tf.distribute).
        training: Shuffle every epoch (seeded) and, if ``augment``, apply
            pad-4 random crop and horizontal flip. Evaluation pipelines keep
            the order and never augment.
        mean, std: Per-channel statistics of the *training* split in 0..1
            units (``helpers.data.channel_stats``); pass the training split's
            values for validation and test too.
        seed: Seeds shuffling and augmentation.
        augment: Whether training batches are augmented.
        deterministic: Keep element order fixed under parallel mapping and
            disable nondeterministic tf.data optimisations (slightly slower).
        repeat: Repeat indefinitely (the caller then sets steps per epoch).
        drop_remainder: Drop a last partial batch (needed for fixed shapes,
            e.g. under some distribution strategies).
        label_transform: Optional function applied to each label batch, e.g.
            to feed a model with two outputs ``{"logits": y, "side_logits": y}``.

    Returns:
        A dataset of (float32 images [B, 32, 32, 3], int32 labels [B]).

    Raises:
        ValueError: for images that are not uint8 [N, 32, 32, 3], mismatched
            labels, a bad batch size or bad statistics.

    Used in: 00_data and every notebook's training runs.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    _validate(images, labels, batch_size, mean, std)
    count = images.shape[0]
    # scale and shift fold /255, -mean and /std into one multiply-add.
    scale = tf.constant(1.0 / (255.0 * np.asarray(std, dtype=np.float32)), tf.float32)
    shift = tf.constant(np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32), tf.float32)
    image_table = tf.constant(images)
    label_table = tf.constant(labels.astype(np.int32))

    indices = tf.data.Dataset.range(count)
    if training:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()
    batches = indices.batch(batch_size, drop_remainder=drop_remainder)
    use_augmentation = training and augment
    if use_augmentation:
        # One fresh stateless seed per batch, from a seeded stream that is
        # re-drawn every epoch, so crops differ between epochs yet repeat
        # exactly between runs with the same seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds))

    def load(*batch):
        index = batch[0]
        pixels = tf.cast(tf.gather(image_table, index), tf.float32) * scale - shift
        if use_augmentation:
            pixels = random_crop_and_flip(pixels, batch[1])
        batch_labels = tf.gather(label_table, index)
        if label_transform is not None:
            return pixels, label_transform(batch_labels)
        return pixels, batch_labels

    dataset = batches.map(
        load, num_parallel_calls=MAP_PARALLEL_CALLS, deterministic=deterministic or None
    )
    dataset = dataset.prefetch(PREFETCH_BATCHES)
    options = tf.data.Options()
    # No autotuning. Its model thread wakes at periods that double from 10 ms
    # up to 60 s, and destroying an iterator waited for that thread's next
    # wake-up: each epoch's training and validation iterators are destroyed,
    # so an epoch ended on the next tick (benchmarks measured fits of 3.7 s
    # stretched to 5.11-5.16 s, about 10 ms * (2**9 - 1), and some to 10.23 s,
    # about 10 ms * (2**10 - 1); epochs of 84-100 s next to ones of ~140 s are
    # consistent with the same wait). That was the "bimodal" TensorFlow speed
    # of issue 6.
    options.autotune.enabled = False
    options.deterministic = bool(deterministic) or not training
    if deterministic:
        options.experimental_optimization.map_parallelization = False
    dataset = dataset.with_options(options)
    return dataset


@dataclasses.dataclass(frozen=True)
class Splits:
    """The pipelines of one run, all normalised with the training split's statistics.

    Attributes:
        train, validation, test: tf.data pipelines, None for a split not
            asked for (or an empty validation split).
        mean, std: Per-channel statistics of the training split, 0..1 units.
    """

    train: tf.data.Dataset | None
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    mean: np.ndarray
    std: np.ndarray


SPLIT_NAMES = ("train", "validation", "test")


def make_splits(data, *, batch_size: int, splits: tuple[str, ...] = SPLIT_NAMES, seed: int = 0,
                augment: bool = True, deterministic: bool = False, repeat_train: bool = False,
                drop_remainder_train: bool = True, label_transform=None) -> Splits:
    """The one pipeline set-up: statistics from the training split, then each split's pipeline.

    Training, the LR range test, evaluation, the throughput measurement and
    the benchmarks all build their pipelines here, so they normalise the
    same way.

    Args:
        data: Anything with ``x_train``/``y_train`` (and ``x_val``/``y_val``,
            ``x_test``/``y_test`` for those splits): a ``CifarData``, a run's
            data.
        splits: Which pipelines to build.
        seed: Seeds the training pipeline's shuffling and augmentation.
        repeat_train: Repeat the training pipeline forever.
        drop_remainder_train: Only whole training batches.

    Raises:
        ValueError: for an unknown split name.

    Used in: helpers.training (every run, the LR range test), helpers.evaluation (07_cifar100),
    measure_throughput (00_data), benchmarks/pipeline.py, benchmarks/throughput.py
    """
    from helpers.data import channel_stats

    unknown = sorted(set(splits) - set(SPLIT_NAMES))
    if unknown:
        raise ValueError(f"Unknown split(s) {unknown}; known: {', '.join(SPLIT_NAMES)}. Received: {splits!r}")
    mean, std = channel_stats(data.x_train)
    common = dict(batch_size=batch_size, mean=mean, std=std, deterministic=deterministic,
                  label_transform=label_transform)
    train = validation = test = None
    if "train" in splits:
        train = make_dataset(data.x_train, data.y_train, training=True, seed=seed, augment=augment,
                             repeat=repeat_train, drop_remainder=drop_remainder_train, **common)
    if "validation" in splits and data.x_val.shape[0]:
        validation = make_dataset(data.x_val, data.y_val, training=False, **common)
    if "test" in splits:
        test = make_dataset(data.x_test, data.y_test, training=False, **common)
    return Splits(train=train, validation=validation, test=test, mean=mean, std=std)


def augmentation_examples(images: np.ndarray, repeats: int = 3, seed: int = 0) -> np.ndarray:
    """Augmented copies of ``images`` in 0..1 units, shape [repeats, N, 32, 32, 3].

    Pads with zeros in pixel space (black), which is what the training
    pipeline's zero padding in normalised space looks like up to the mean.

    Used in: 00_data
    """
    batch = tf.constant(np.asarray(images, dtype=np.float32) / 255.0)
    return np.stack([
        random_crop_and_flip(batch, tf.constant([seed, index], tf.int64)).numpy()
        for index in range(repeats)
    ])


def measure_throughput(data, *, batch_size: int = 128, num_batches: int = 200,
                       repeats: int = 3, seed: int = 0) -> dict:
    """Images per second the training pipeline delivers on its own.

    Iterates ``num_batches`` augmented training batches ``repeats`` times
    after one warm-up pass and reports the median rate.

    Used in: 00_data, benchmarks/pipeline.py
    """
    import statistics
    import time

    dataset = make_splits(data, batch_size=batch_size, splits=("train",), seed=seed, repeat_train=True,
                          drop_remainder_train=False).train
    iterator = iter(dataset)
    for _ in range(min(20, num_batches)):
        next(iterator)  # warm-up: graph tracing and autotuning
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(num_batches):
            next(iterator)
        rates.append(num_batches * batch_size / (time.perf_counter() - started))
    return {"images_per_second": statistics.median(rates), "repeats": rates,
            "batch_size": batch_size, "num_batches": num_batches}
