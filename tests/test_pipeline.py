"""helpers.pipeline: normalisation, augmentation, shuffling and determinism."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from helpers.data import channel_stats
from helpers.pipeline import make_dataset, random_crop_and_flip


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 300)
    return images, labels


def _collect(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


def test_evaluation_pipeline_normalises_and_keeps_order(arrays):
    images, labels = arrays
    mean, std = channel_stats(images)
    x, y = _collect(make_dataset(images, labels, batch_size=64, training=False, mean=mean, std=std))
    assert x.dtype == np.float32 and x.shape == images.shape
    np.testing.assert_array_equal(y, labels)  # order kept, nothing dropped
    expected = (images / 255.0 - mean) / std
    np.testing.assert_allclose(x, expected, atol=1e-5)
    np.testing.assert_allclose(x.reshape(-1, 3).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(x.reshape(-1, 3).std(0), 1, atol=1e-3)


def test_training_pipeline_shuffles_each_epoch_and_is_seeded(arrays):
    images, labels = arrays
    mean, std = channel_stats(images)
    kwargs = dict(batch_size=50, training=True, mean=mean, std=std, augment=False, deterministic=True)
    dataset = make_dataset(images, labels, seed=1, **kwargs)
    _, epoch1 = _collect(dataset)
    _, epoch2 = _collect(dataset)
    assert sorted(epoch1.tolist()) == sorted(labels.tolist())  # a permutation
    assert not np.array_equal(epoch1, epoch2)  # reshuffled each epoch
    _, again = _collect(make_dataset(images, labels, seed=1, **kwargs))
    np.testing.assert_array_equal(epoch1, again)  # same seed, same order
    _, other = _collect(make_dataset(images, labels, seed=2, **kwargs))
    assert not np.array_equal(epoch1, other)


def test_augmentation_is_a_crop_of_the_padded_image_or_its_mirror():
    image = np.arange(32 * 32 * 3, dtype=np.float32).reshape(1, 32, 32, 3)
    batch = np.repeat(image, 64, axis=0)
    out = random_crop_and_flip(tf.constant(batch), tf.constant([3, 4], tf.int64)).numpy()
    padded = np.pad(image[0], ((4, 4), (4, 4), (0, 0)))
    candidates = []
    for dy in range(9):
        for dx in range(9):
            crop = padded[dy:dy + 32, dx:dx + 32]
            candidates += [crop, crop[:, ::-1]]
    for augmented in out:
        assert any(np.array_equal(augmented, c) for c in candidates)
    # With 64 draws, crops and flips must vary.
    assert len({a.tobytes() for a in out}) > 10
    flipped = sum(any(np.array_equal(a, padded[dy:dy + 32, dx:dx + 32][:, ::-1])
                      for dy in range(9) for dx in range(9)) for a in out)
    assert 10 < flipped < 54


def _crop_and_flip_step_by_step(images, seed):
    """The augmentation spelled out: pad, gather rows, gather columns, mirror, select."""
    pad = 4
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform([batch, 2], seed=seed, minval=0, maxval=2 * pad + 1,
                                          dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[tf.newaxis, :]
    columns = offsets[:, 1:] + tf.range(width)[tf.newaxis, :]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    cropped = tf.gather(cropped, columns, axis=2, batch_dims=1)
    flips = tf.random.stateless_uniform([batch], seed=tf.stack([seed[0], seed[1] + 1])) < 0.5
    return tf.where(flips[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(cropped, axis=[2]), cropped)


@pytest.mark.parametrize("shape", [(128, 32, 32, 3), (1, 32, 32, 3), (7, 8, 6, 2)])
def test_one_gather_augmentation_equals_the_step_by_step_one_bit_for_bit(shape):
    # Cached run records were trained with the step-by-step version: the
    # single gather must give exactly the same batches, padding zeros included.
    images = tf.constant(np.random.default_rng(1).normal(size=shape).astype(np.float32))
    unknown_batch = tf.function(random_crop_and_flip, input_signature=[
        tf.TensorSpec([None, *shape[1:]], tf.float32), tf.TensorSpec([2], tf.int64)])
    for seed in ([0, 0], [3, 4], [123456789, -5]):
        seed = tf.constant(seed, tf.int64)
        expected = _crop_and_flip_step_by_step(images, seed).numpy()
        for augment in (random_crop_and_flip, unknown_batch):
            actual = augment(images, seed).numpy()
            assert actual.shape == expected.shape
            assert actual.tobytes() == expected.tobytes()


def test_augmented_pipeline_is_deterministic_per_seed_and_varies_by_epoch(arrays):
    images, labels = arrays
    mean, std = channel_stats(images)
    kwargs = dict(batch_size=100, training=True, mean=mean, std=std, deterministic=True)
    first = make_dataset(images, labels, seed=5, **kwargs)
    x1, _ = _collect(first)
    x1_epoch2, _ = _collect(first)
    x2, _ = _collect(make_dataset(images, labels, seed=5, **kwargs))
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, x1_epoch2)


def test_label_transform_and_repeat(arrays):
    images, labels = arrays
    mean, std = channel_stats(images)
    dataset = make_dataset(images, labels, batch_size=128, training=True, mean=mean, std=std,
                           repeat=True, drop_remainder=True,
                           label_transform=lambda y: {"logits": y, "side_logits": y})
    batches = list(dataset.take(5))  # 5 x 128 > 300 only because it repeats
    assert all(x.shape[0] == 128 for x, _ in batches)
    assert set(batches[0][1]) == {"logits", "side_logits"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=np.zeros((4, 28, 28, 3), np.uint8)), "shape"),
    (dict(images=np.zeros((4, 32, 32, 3), np.float32)), "uint8"),
    (dict(labels=np.zeros(3)), "one entry per image"),
    (dict(batch_size=0), "batch_size"),
    (dict(std=[1.0, 0.0, 1.0]), "std must be positive"),
    (dict(mean=[0.5, 0.5]), "one value per RGB channel"),
])
def test_bad_input(kwargs, message):
    arguments = dict(images=np.zeros((4, 32, 32, 3), np.uint8), labels=np.zeros(4),
                     batch_size=2, training=True, mean=[0.5] * 3, std=[0.25] * 3)
    arguments.update(kwargs)
    images = arguments.pop("images")
    labels = arguments.pop("labels")
    with pytest.raises(ValueError, match=message):
        make_dataset(images, labels, **arguments)


def test_pipelines_do_not_autotune():
    # tf.data's autotuning thread made destroying an iterator wait for its
    # next wake-up (up to 60 s): every epoch ended late (issue 6).
    images = np.zeros((8, 32, 32, 3), np.uint8)
    labels = np.zeros(8, np.int64)
    for training in (True, False):
        dataset = make_dataset(images, labels, batch_size=4, training=training,
                               mean=[0.5] * 3, std=[0.25] * 3, seed=0)
        assert dataset.options().autotune.enabled is False


def test_importing_helpers_turns_on_onednn_unless_told_otherwise():
    import subprocess
    import sys

    script = ("import helpers, tensorflow\n"
              "from helpers.environment import onednn_state\n"
              "print(onednn_state())\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    on = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", script], env={**env, "TF_ENABLE_ONEDNN_OPTS": "0"},
                         capture_output=True, text=True, check=True)
    assert on.stdout.split()[-1] == "True"
    assert off.stdout.split()[-1] == "False"


def test_make_splits_normalises_every_split_with_the_training_statistics():
    from helpers.data import channel_stats
    from helpers.pipeline import make_splits
    from tests.engine_helpers import synthetic_cifar

    data = synthetic_cifar(num_train=64, num_val=16, num_test=16)
    splits = make_splits(data, batch_size=16, augment=False)
    mean, std = channel_stats(data.x_train)
    np.testing.assert_array_equal(splits.mean, mean)
    x_test, y_test = _collect(splits.test)
    np.testing.assert_allclose(x_test, (data.x_test / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y_test, data.y_test)
    # The training split: every image once per epoch, normalised the same way (in shuffled order).
    train, _ = _collect(splits.train)
    expected = (data.x_train / 255.0 - mean) / std
    np.testing.assert_allclose(np.sort(train.reshape(len(train), -1), axis=0),
                               np.sort(expected.reshape(len(expected), -1), axis=0), rtol=1e-5, atol=1e-5)
    only = make_splits(data, batch_size=16, splits=("validation",))
    assert only.train is None and only.test is None and only.validation is not None
    empty = synthetic_cifar(num_train=64, num_val=0, num_test=16)
    assert make_splits(empty, batch_size=16).validation is None
    with pytest.raises(ValueError, match="Unknown split"):
        make_splits(data, batch_size=16, splits=("val",))
