"""helpers.data: every source format, the cache, the splits and every bad input."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from helpers import config, data
from helpers.data import CifarDataError, load_cifar
from tests import cifar_fixtures as fx


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(config, "DATA_CACHE_DIR", cache)
    monkeypatch.delenv("CIFAR_DATA_DIR", raising=False)
    return cache


def _all_train_images(loaded):
    return np.concatenate([loaded.x_train, loaded.x_val]), np.concatenate([loaded.y_train, loaded.y_val])


def _assert_same_set(expected_images, expected_labels, images, labels):
    """Order-free comparison of (image, label) pairs."""
    def keyed(imgs, lbls):
        return sorted((int(l), imgs[i].tobytes()) for i, l in enumerate(lbls))
    assert keyed(expected_images, expected_labels) == keyed(images, labels)


# --- every real source format ------------------------------------------------

def test_cifar10_python_folder(tmp_path):
    written = fx.write_cifar10_python(tmp_path / "d")
    loaded = load_cifar("cifar10", tmp_path / "d", validation_size=30)
    assert loaded.source.startswith("python-folder:")
    assert loaded.class_names == data.CIFAR10_CLASS_NAMES
    assert loaded.x_train.shape == (120, 32, 32, 3) and loaded.x_val.shape == (30, 32, 32, 3)
    np.testing.assert_array_equal(loaded.x_test, written["x_test"])
    np.testing.assert_array_equal(loaded.y_test, written["y_test"])
    _assert_same_set(written["x_train"], written["y_train"], *_all_train_images(loaded))
    # The marker pixel written per class must follow its label.
    assert np.all(loaded.x_train[:, 0, 0, 0] == loaded.y_train)
    assert loaded.coarse_class_names is None and loaded.y_train_coarse is None


def test_cifar10_python_archive(tmp_path):
    written = fx.write_cifar10_python(tmp_path / "build")
    directory = tmp_path / "d"
    directory.mkdir()
    fx.tar_folder(written["path"], directory / "cifar-10-python.tar.gz")
    loaded = load_cifar("cifar10", directory, validation_size=10)
    assert loaded.source.startswith("python-archive:")
    np.testing.assert_array_equal(loaded.x_test, written["x_test"])
    _assert_same_set(written["x_train"], written["y_train"], *_all_train_images(loaded))


def test_cifar100_python_archive_with_coarse_labels(tmp_path):
    written = fx.write_cifar100_python(tmp_path / "build")
    directory = tmp_path / "d"
    directory.mkdir()
    fx.tar_folder(written["path"], directory / "cifar-100-python.tar.gz")
    loaded = load_cifar("cifar100", directory, validation_size=100)
    assert loaded.num_classes == 100 and len(loaded.class_names) == 100
    assert loaded.coarse_class_names == data.CIFAR100_COARSE_CLASS_NAMES
    mapping = np.asarray(data.CIFAR100_FINE_TO_COARSE)
    np.testing.assert_array_equal(loaded.y_train_coarse, mapping[loaded.y_train])
    np.testing.assert_array_equal(loaded.y_val_coarse, mapping[loaded.y_val])
    np.testing.assert_array_equal(loaded.y_test, written["y_test"])
    # Stratified: every fine class is in the validation split exactly once.
    assert np.array_equal(np.bincount(loaded.y_val, minlength=100), np.ones(100))


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_image_folder_tree(tmp_path, image_format):
    written = fx.write_image_tree(tmp_path, "cifar10", data.CIFAR10_CLASS_NAMES,
                                  image_format=image_format)
    loaded = load_cifar("cifar10", tmp_path, validation_size=10)
    assert loaded.source == f"image-folder:{written['path']}"
    assert loaded.x_test.shape == (20, 32, 32, 3)
    if image_format == "PNG":  # lossless: pixels must be exact
        _assert_same_set(written["x_test"], written["y_test"], loaded.x_test, loaded.y_test)
    else:
        assert sorted(loaded.y_test.tolist()) == sorted(written["y_test"].tolist())


@pytest.mark.parametrize("archive_name", ["cifar10-png.tar.gz", "cifar10-png.zip", "cifar-10-png.tar"])
def test_image_archives(tmp_path, archive_name):
    written = fx.write_image_tree(tmp_path / "build", "cifar10-png", data.CIFAR10_CLASS_NAMES)
    directory = tmp_path / "d"
    directory.mkdir()
    if archive_name.endswith(".zip"):
        fx.zip_folder(written["path"], directory / archive_name)
    else:
        fx.tar_folder(written["path"], directory / archive_name)
    loaded = load_cifar("cifar10", directory, validation_size=10)
    assert loaded.source.startswith("image-archive:")
    _assert_same_set(written["x_test"], written["y_test"], loaded.x_test, loaded.y_test)
    _assert_same_set(written["x_train"], written["y_train"], *_all_train_images(loaded))


def test_cifar100_image_tree_gets_official_superclasses(tmp_path):
    fx.write_image_tree(tmp_path, "cifar100", data.CIFAR100_CLASS_NAMES, per_class=1)
    loaded = load_cifar("cifar100", tmp_path, validation_size=100)
    mapping = np.asarray(data.CIFAR100_FINE_TO_COARSE)
    np.testing.assert_array_equal(loaded.y_test_coarse, mapping[loaded.y_test])


def test_archive_path_given_directly(tmp_path):
    written = fx.write_cifar10_python(tmp_path / "build")
    archive = fx.tar_folder(written["path"], tmp_path / "cifar-10-python.tar.gz")
    loaded = load_cifar("cifar10", archive, validation_size=10)
    assert loaded.source == f"python-archive:{archive}"


def test_cifar10_never_takes_cifar100_entries(tmp_path):
    fx.write_image_tree(tmp_path, "cifar100", data.CIFAR100_CLASS_NAMES, per_class=1)
    fx.write_cifar100_python(tmp_path / "x")
    shutil.move(str(tmp_path / "x" / "cifar-100-python"), tmp_path / "cifar-100-python")
    with pytest.raises(CifarDataError, match="No cifar10 data found"):
        load_cifar("cifar10", tmp_path)
    # And with a CIFAR-10 copy beside them, CIFAR-10 takes its own.
    fx.write_image_tree(tmp_path, "cifar10-jpeg", data.CIFAR10_CLASS_NAMES, image_format="JPEG")
    assert load_cifar("cifar10", tmp_path, validation_size=10).source.endswith("cifar10-jpeg")


def test_environment_variable_is_used(tmp_path, monkeypatch):
    fx.write_cifar10_python(tmp_path)
    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path))
    assert load_cifar("cifar10", validation_size=10).source.startswith("python-folder:")


# --- cache ------------------------------------------------------------------

def test_second_load_comes_from_cache(tmp_path, private_cache):
    fx.write_cifar10_python(tmp_path)
    first = load_cifar("cifar10", tmp_path, validation_size=10)
    second = load_cifar("cifar10", tmp_path, validation_size=10)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert list(private_cache.glob("cifar10-*.npz"))


def test_changed_source_is_never_served_stale(tmp_path):
    written = fx.write_cifar10_python(tmp_path)
    first = load_cifar("cifar10", tmp_path, validation_size=10)
    # Rewrite the test batch with different pixels but the same size.
    test_file = written["path"] / "test_batch"
    images = written["x_test"].copy()
    images[:, 5, 5, :] ^= 0xFF
    test_file.write_bytes(fx._pickle_bytes({
        b"labels": written["y_test"].tolist(), b"data": fx._to_rows(images)}))
    second = load_cifar("cifar10", tmp_path, validation_size=10)
    assert not second.from_cache
    assert second.source_fingerprint != first.source_fingerprint
    np.testing.assert_array_equal(second.x_test, images)


def test_corrupt_cache_entry_is_decoded_again(tmp_path, private_cache):
    fx.write_cifar10_python(tmp_path)
    load_cifar("cifar10", tmp_path, validation_size=10)
    for entry in private_cache.glob("*.npz"):
        entry.write_bytes(b"garbage")
    again = load_cifar("cifar10", tmp_path, validation_size=10)
    assert not again.from_cache and again.x_test.shape[0] == 30


# --- splits -----------------------------------------------------------------

def test_splits_are_stratified_seeded_and_disjoint(tmp_path):
    fx.write_cifar10_python(tmp_path, per_class=6)  # 300 train images
    a = load_cifar("cifar10", tmp_path, validation_size=50, train_size=100, seed=3)
    b = load_cifar("cifar10", tmp_path, validation_size=50, train_size=100, seed=3)
    c = load_cifar("cifar10", tmp_path, validation_size=50, train_size=100, seed=4)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_val, c.x_val)
    assert np.all(np.bincount(a.y_val, minlength=10) == 5)
    assert np.all(np.bincount(a.y_train, minlength=10) == 10)
    train_keys = {img.tobytes() for img in a.x_train}
    assert not train_keys & {img.tobytes() for img in a.x_val}
    # The test split is never altered by the seed or the sizes.
    np.testing.assert_array_equal(a.x_test, c.x_test)


def test_stratified_split_exact_size_with_uneven_classes():
    labels = np.array([0] * 7 + [1] * 3 + [2] * 1)
    chosen, rest = data.stratified_split(labels, 5, seed=0)
    assert chosen.size == 5 and rest.size == 6
    assert set(chosen) | set(rest) == set(range(11))


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_size": -1}, "validation_size"),
    ({"train_size": 0}, "train_size"),
    ({"train_size": 10_000, "validation_size": 10}, "train_size can be at most"),
    ({"validation_size": 10_000}, "validation_size must leave"),
])
def test_bad_sizes(tmp_path, kwargs, message):
    fx.write_cifar10_python(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_cifar("cifar10", tmp_path, **kwargs)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Received: 'mnist'"):
        load_cifar("mnist", "/nonexistent")


# --- bad input: clear errors naming the file ---------------------------------

def test_no_data_lists_places_and_how_to_get_it(tmp_path):
    with pytest.raises(CifarDataError) as error:
        load_cifar("cifar10", tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "cifar-10-python.tar.gz" in message
    assert "download" in message.lower()


def test_missing_directory(tmp_path):
    with pytest.raises(CifarDataError, match="does not exist"):
        load_cifar("cifar10", tmp_path / "nope")


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    written = fx.write_cifar10_python(tmp_path)
    marker = tmp_path / "payload_ran"
    (written["path"] / "data_batch_2").write_bytes(fx.malicious_pickle_bytes(marker))
    with pytest.raises(CifarDataError) as error:
        load_cifar("cifar10", tmp_path)
    assert "data_batch_2" in str(error.value) and "posix.system" in str(error.value)
    assert not marker.exists()


def test_restricted_unpickler_admits_plain_data():
    import pickle
    payload = pickle.dumps({b"a": np.arange(3, dtype=np.uint8), "b": [1, 2.5, b"x"]}, protocol=2)
    loaded = data.restricted_pickle_load(payload, "x")
    np.testing.assert_array_equal(loaded[b"a"], np.arange(3))


def test_truncated_archive(tmp_path):
    written = fx.write_cifar10_python(tmp_path / "build")
    directory = tmp_path / "d"
    directory.mkdir()
    archive = fx.tar_folder(written["path"], directory / "cifar-10-python.tar.gz")
    content = archive.read_bytes()
    archive.write_bytes(content[: len(content) // 2])
    with pytest.raises(CifarDataError, match="truncated or corrupt") as error:
        load_cifar("cifar10", directory)
    assert "cifar-10-python.tar.gz" in str(error.value)


def test_corrupt_zip(tmp_path):
    (tmp_path / "cifar10-png.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CifarDataError, match="cifar10-png.zip: the archive is truncated or corrupt"):
        load_cifar("cifar10", tmp_path)


def test_truncated_pickle(tmp_path):
    written = fx.write_cifar10_python(tmp_path)
    batch = written["path"] / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:200])
    with pytest.raises(CifarDataError, match="data_batch_1.*truncated or corrupt"):
        load_cifar("cifar10", tmp_path)


def test_wrong_array_shape(tmp_path):
    written = fx.write_cifar10_python(tmp_path)
    (written["path"] / "test_batch").write_bytes(fx._pickle_bytes({
        b"labels": [0, 1], b"data": np.zeros((2, 1024), np.uint8)}))
    with pytest.raises(CifarDataError, match=r"test_batch: image data has shape \(2, 1024\)"):
        load_cifar("cifar10", tmp_path)


def test_labels_out_of_range(tmp_path):
    written = fx.write_cifar10_python(tmp_path)
    (written["path"] / "test_batch").write_bytes(fx._pickle_bytes({
        b"labels": [0, 12], b"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(CifarDataError, match=r"test_batch: labels range over \[0, 12\]"):
        load_cifar("cifar10", tmp_path)


def test_class_count_mismatch_in_meta(tmp_path):
    written = fx.write_cifar10_python(tmp_path)
    (written["path"] / "batches.meta").write_bytes(fx._pickle_bytes({
        b"label_names": [b"a", b"b", b"c"]}))
    with pytest.raises(CifarDataError, match="batches.meta: lists 3 classes but cifar10 has 10"):
        load_cifar("cifar10", tmp_path)


def test_class_count_mismatch_in_image_tree(tmp_path):
    fx.write_image_tree(tmp_path, "cifar10", data.CIFAR10_CLASS_NAMES[:7])
    with pytest.raises(CifarDataError, match="found 7 class folders, but cifar10 has 10"):
        load_cifar("cifar10", tmp_path)


def test_unreadable_image(tmp_path):
    written = fx.write_image_tree(tmp_path, "cifar10", data.CIFAR10_CLASS_NAMES)
    bad = next((written["path"] / "train" / "cat").iterdir())
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(CifarDataError, match=f"{bad}: cannot decode this image"):
        load_cifar("cifar10", tmp_path)


@pytest.mark.parametrize("array, mode, described", [
    (np.zeros((28, 28, 3), np.uint8), None, "28x28 RGB"),
    (np.zeros((32, 32), np.uint8), None, "32x32 L"),
    (np.zeros((32, 32, 4), np.uint8), None, "32x32 RGBA"),
])
def test_image_not_32x32_rgb(tmp_path, array, mode, described):
    written = fx.write_image_tree(tmp_path, "cifar10", data.CIFAR10_CLASS_NAMES)
    bad = next((written["path"] / "test" / "dog").iterdir())
    bad.write_bytes(fx.png_bytes(array, mode))
    with pytest.raises(CifarDataError, match=f"image is {described}, expected 32x32 RGB") as error:
        load_cifar("cifar10", tmp_path)
    assert str(bad) in str(error.value)


def test_unofficial_class_names_are_refused(tmp_path):
    names = [f"class{i}" for i in range(10)]
    fx.write_image_tree(tmp_path, "cifar10", names)
    with pytest.raises(CifarDataError, match="not the official cifar10 class names"):
        load_cifar("cifar10", tmp_path)


def test_incomplete_python_folder(tmp_path):
    written = fx.write_cifar10_python(tmp_path)
    (written["path"] / "data_batch_4").unlink()
    with pytest.raises(CifarDataError, match="data_batch_4: missing"):
        load_cifar("cifar10", tmp_path)


# --- channel statistics --------------------------------------------------------

def test_channel_stats_matches_numpy():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    mean, std = data.channel_stats(images)
    expected = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, expected.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, expected.std(0), rtol=1e-5)
    with pytest.raises(ValueError, match="Received: shape"):
        data.channel_stats(np.zeros((0, 32, 32, 3), np.uint8))


# --- the real copies, when present ---------------------------------------------

@pytest.mark.real_data
def test_real_cifar10(real_data_dir):
    loaded = load_cifar("cifar10", real_data_dir)
    assert loaded.x_train.shape == (45000, 32, 32, 3)
    assert loaded.x_val.shape == (5000, 32, 32, 3) and loaded.x_test.shape == (10000, 32, 32, 3)
    assert loaded.class_names == data.CIFAR10_CLASS_NAMES
    assert np.all(np.bincount(loaded.y_test) == 1000)
    assert np.all(np.bincount(loaded.y_val) == 500)
    started = time.perf_counter()
    again = load_cifar("cifar10", real_data_dir)
    assert again.from_cache and time.perf_counter() - started < 10  # loose; speed is benchmarked


@pytest.mark.real_data
def test_real_cifar100(real_data_dir):
    loaded = load_cifar("cifar100", real_data_dir)
    assert loaded.num_classes == 100 and loaded.x_test.shape == (10000, 32, 32, 3)
    mean, _ = data.channel_stats(np.concatenate([loaded.x_train, loaded.x_val]))
    # The canonical CIFAR-100 training means; the shared copy is lossless.
    np.testing.assert_allclose(mean, [0.5071, 0.4865, 0.4409], atol=5e-4)
    np.testing.assert_array_equal(
        np.asarray(data.CIFAR100_FINE_TO_COARSE)[loaded.y_test], loaded.y_test_coarse)


def test_split_table_counts_images_and_classes_per_split():
    from tests.engine_helpers import synthetic_cifar

    table = synthetic_cifar(num_train=40, num_val=20, num_test=10).split_table()
    assert list(table.index) == ["train", "validation", "test"] and table.index.name == "cifar10 split"
    assert table.loc["train", "images"] == 40 and table.loc["test", "images"] == 10
    assert table.loc["train", "classes"] <= 10


def test_profile_shows_as_a_sentence_in_a_notebook():
    from helpers.profiles import get_profile

    text = get_profile("quick")._repr_markdown_()
    assert text.startswith("**Profile `quick`.** Quick: real data") and "2 seeds" in text
    assert "left out" not in text
    assert get_profile("standard")._repr_markdown_().endswith(
        "Arms left out to fit its budget (by notebook): 04: *aug + wd + classifier dropout 0.3* and "
        "*no regularisation*; 05: *one-cycle, 1 epoch*; 06: *depth 20, eps 8*.")
    import dataclasses

    from helpers.studies import left_out_labels

    wrong = dataclasses.replace(get_profile("standard"), left_out={"06": ((99, 1.0),)})
    with pytest.raises(ValueError, match=r"leaves out arms 06 does not have: \[\(99, 1.0\)\]"):
        left_out_labels(wrong)
