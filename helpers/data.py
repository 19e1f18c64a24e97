"""CIFAR-10 and CIFAR-100 from every real source, split and cached.

One call, :func:`load_cifar`, returns training, validation and test splits as
uint8 NHWC arrays with integer labels and class names. Where the data comes
from, in order:

1. the ``data_dir`` argument (a directory, or one archive file),
2. the ``CIFAR_DATA_DIR`` environment variable,
3. the Keras download of the official archive (for users who are online).

Inside a directory it recognises

* the official "python version" folder or archive
  (``cifar-10-batches-py``, ``cifar-10-python.tar.gz``, ``cifar-100-python``,
  ``cifar-100-python.tar.gz``), and
* an image-folder tree or archive named after the dataset (``cifar10/``,
  ``cifar10-jpeg.tar.gz``, ``cifar-100-png.zip``, ...) holding
  ``train/<class>/*`` and ``test/<class>/*`` as PNG or JPEG files.

Names are matched exactly by pattern, so a ``cifar10`` lookup never takes a
``cifar100`` entry. Decoded arrays are cached under
``helpers.config.DATA_CACHE_DIR`` keyed by the source's identity (path, sizes,
modification times and a content sample), so a second load takes about a
second and a changed source is decoded again rather than served stale.

CIFAR pickles are read with a restricted unpickler that admits only what such
files hold; anything else is refused before it can run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from helpers import atomic, config

# The seed of the fixed test subset that reduced profiles evaluate on: one
# subset for every run, so their test numbers stay comparable.
TEST_SUBSET_SEED = 12345

# Bumped whenever decoding changes, so older cache entries are never reused.
_CACHE_FORMAT = 2

CIFAR10_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASS_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle",
    "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
    "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
    "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea",
    "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
    "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
CIFAR100_COARSE_CLASS_NAMES = (
    "aquatic_mammals", "fish", "flowers", "food_containers",
    "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals",
    "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)
# The official fine -> coarse (superclass) taxonomy, indexed by fine label.
# Image-folder copies of CIFAR-100 carry only fine classes; this table gives
# them the same superclasses as the official pickles.
CIFAR100_FINE_TO_COARSE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5,
    10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8,
    15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17, 10, 3, 2, 12,
    12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6,
    19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class CifarDataError(ValueError):
    """Raised for missing, corrupt or malformed CIFAR data.

    The message always names the file or directory involved and says what to
    do about it.
    """


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What distinguishes CIFAR-10 from CIFAR-100 on disk and online."""

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    python_folder: str
    python_archive: str
    download_url: str
    download_md5: str
    # Matches the stem of an image-folder tree or archive for this dataset;
    # anchored so that "cifar10" never matches "cifar100".
    image_tree_pattern: re.Pattern
    # Images in the official training set (validation is carved from it).
    official_train_size: int = 50_000


DATASETS = {
    "cifar10": DatasetSpec(
        name="cifar10",
        num_classes=10,
        class_names=CIFAR10_CLASS_NAMES,
        python_folder="cifar-10-batches-py",
        python_archive="cifar-10-python.tar.gz",
        download_url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        download_md5="c58f30108f718f92721af3b95e74349a",
        image_tree_pattern=re.compile(
            r"^cifar[-_]?10(?:[-_](?:jpe?g|png|images?|folders?))?$", re.I
        ),
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        num_classes=100,
        class_names=CIFAR100_CLASS_NAMES,
        python_folder="cifar-100-python",
        python_archive="cifar-100-python.tar.gz",
        download_url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        download_md5="eb9058c3a382ffc7106e4002c42a8d85",
        image_tree_pattern=re.compile(
            r"^cifar[-_]?100(?:[-_](?:jpe?g|png|images?|folders?))?$", re.I
        ),
    ),
}


@dataclasses.dataclass(frozen=True, eq=False)
class CifarData:
    """Training, validation and test splits of one CIFAR dataset.

    Images are uint8 arrays of shape [N, 32, 32, 3] (RGB, channels last);
    labels are int64 arrays of shape [N]. The validation split is a
    stratified, seeded subset of the official training set, disjoint from
    ``x_train``; the test split is the official one, unaltered.

    Attributes:
        name: "cifar10" or "cifar100".
        source: What the arrays were read from, e.g.
            "python-archive:/data/cifar-100-python.tar.gz".
        source_fingerprint: Hash of the source's identity (path, sizes,
            modification times, a content sample). Two loads with the same
            fingerprint hold the same pixels.
        coarse_class_names, y_*_coarse: CIFAR-100's 20 superclasses; None for
            CIFAR-10.
        from_cache: Whether decoded arrays came from the on-disk cache.

    Used in: 00_data and every notebook after it.
    """

    name: str
    source: str
    source_fingerprint: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    num_classes: int
    coarse_class_names: tuple[str, ...] | None = None
    y_train_coarse: np.ndarray | None = None
    y_val_coarse: np.ndarray | None = None
    y_test_coarse: np.ndarray | None = None
    from_cache: bool = False
    seed: int = 0

    def split_table(self):
        """The splits as a small table: images, classes and images per class.

        Returns:
            A pandas DataFrame indexed by split ("train", "validation", "test").

        Used in: 00_data
        """
        import pandas as pd

        rows = {}
        for split, labels in (("train", self.y_train), ("validation", self.y_val), ("test", self.y_test)):
            counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=self.num_classes)
            rows[split] = {"images": int(labels.shape[0]), "classes": int(np.count_nonzero(counts)),
                           "images per class": (f"{counts.min():,}" if counts.min() == counts.max()
                                                else f"{counts.min():,}-{counts.max():,}")}
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = f"{self.name} split"
        return table

    def summary(self) -> dict:
        """A JSON-ready description: source, split shapes, classes, statistics."""
        mean, std = channel_stats(self.x_train)
        return {
            "dataset": self.name,
            "source": self.source,
            "source_fingerprint": self.source_fingerprint,
            "train": list(self.x_train.shape),
            "validation": list(self.x_val.shape),
            "test": list(self.x_test.shape),
            "image_shape": list(self.x_train.shape[1:]),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "coarse_class_names": (
                list(self.coarse_class_names) if self.coarse_class_names else None
            ),
            "mean": [round(float(v), 6) for v in mean],
            "std": [round(float(v), 6) for v in std],
            "seed": self.seed,
            "from_cache": self.from_cache,
        }


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images, in 0..1 units.

    Args:
        images: uint8 array [N, H, W, 3].

    Returns:
        (mean, std), each a float32 array of shape [3].

    Raises:
        ValueError: if ``images`` is empty or not NHWC with 3 channels.

    Used in: 00_data, and by the input pipeline of every training run.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(
            "channel_stats expects a non-empty [N, H, W, 3] image array. "
            f"Received: shape {images.shape}"
        )
    # Accumulate in float64 over chunks: exact enough and bounded in memory.
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for start in range(0, images.shape[0], 8192):
        chunk = images[start:start + 8192].reshape(-1, 3).astype(np.float64) / 255.0
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
        count += chunk.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


# ---------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------

# Exactly the globals a CIFAR pickle references: numpy's array reconstruction
# (old and new module paths) and, for pickles re-written by Python 3 with
# protocol 2, the bytes constructor it uses. Nothing here can run code.
_ALLOWED_PICKLE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source_name: str):
        super().__init__(file, encoding="bytes")
        self._source_name = source_name

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise CifarDataError(
            f"{self._source_name}: refused to load this pickle because it "
            f"references '{module}.{name}', which a CIFAR data file never "
            "contains (it may try to run code). Delete the file and download "
            "the dataset again from its official source."
        )


def restricted_pickle_load(payload: bytes, source_name: str):
    """Unpickles ``payload`` admitting only numpy arrays and plain containers.

    Args:
        payload: The pickle's bytes.
        source_name: The file name to put in error messages.

    Raises:
        CifarDataError: for a pickle that references anything else (nothing
            in it runs) or that is truncated or corrupt.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(payload), source_name).load()
    except CifarDataError:
        raise
    except Exception as error:  # pickle raises many types for bad bytes
        raise CifarDataError(
            f"{source_name}: could not read this CIFAR pickle ({type(error).__name__}: "
            f"{error}). The file is truncated or corrupt: delete it and "
            "download the dataset again."
        ) from None


# ---------------------------------------------------------------------------
# Finding a source
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Source:
    kind: str  # "python-folder" | "python-archive" | "image-folder" | "image-archive"
    path: Path

    def describe(self) -> str:
        return f"{self.kind}:{self.path}"


def _archive_stem(name: str) -> str | None:
    lower = name.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _classify_path(path: Path, spec: DatasetSpec) -> _Source | None:
    """Says whether ``path`` itself is a source of ``spec``'s dataset."""
    name = path.name
    if path.is_dir():
        if name == spec.python_folder:
            return _Source("python-folder", path)
        if spec.image_tree_pattern.match(name):
            return _Source("image-folder", path)
        return None
    if path.is_file():
        if name == spec.python_archive:
            return _Source("python-archive", path)
        stem = _archive_stem(name)
        if stem is not None and spec.image_tree_pattern.match(stem):
            return _Source("image-archive", path)
    return None


def _find_in_directory(directory: Path, spec: DatasetSpec) -> _Source | None:
    direct = _classify_path(directory, spec)
    if direct is not None:
        return direct
    # Preference: the official python layout, then image trees; folders before
    # archives since they decode faster and were probably unpacked on purpose.
    candidates = [
        directory / spec.python_folder,
        directory / spec.python_archive,
    ]
    for candidate in candidates:
        found = _classify_path(candidate, spec)
        if found is not None:
            return found
    entries = sorted(directory.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    for entry in entries:
        found = _classify_path(entry, spec)
        if found is not None and found.kind.startswith("image"):
            return found
    return None


def _no_data_error(spec: DatasetSpec, looked: list[str]) -> CifarDataError:
    places = "\n".join(f"  - {place}" for place in looked) or "  (nowhere)"
    return CifarDataError(
        f"No {spec.name} data found. Looked in:\n{places}\n"
        f"Expected one of: '{spec.python_folder}/', '{spec.python_archive}', or an "
        f"image-folder tree or archive named like '{spec.name}/', "
        f"'{spec.name}-jpeg.tar.gz', '{spec.name}-png.zip' holding "
        "train/<class>/* and test/<class>/*.\n"
        f"To get the data: download {spec.download_url} into a directory and pass "
        f"it as data_dir (or --data-dir, or set {config.DATA_DIR_ENV}); or, on a "
        "machine with internet access, call load_cifar without data_dir to use "
        "the Keras download."
    )


def _download_with_keras(spec: DatasetSpec) -> Path:
    """Downloads (or finds in ~/.keras/datasets) the official archive."""
    try:
        import keras
    except ImportError as error:  # pragma: no cover - keras is a dependency
        raise CifarDataError(
            f"Keras is needed to download {spec.name}; install the project first."
        ) from error
    try:
        path = keras.utils.get_file(
            fname=spec.python_archive,
            origin=spec.download_url,
            file_hash=spec.download_md5,
            extract=False,
        )
    except Exception as error:
        raise _no_data_error(
            spec,
            [
                "data_dir argument: not given",
                f"{config.DATA_DIR_ENV}: not set",
                f"Keras download from {spec.download_url}: failed "
                f"({type(error).__name__}: {error})",
            ],
        ) from None
    return Path(path)


def resolve_source(name: str, data_dir: str | os.PathLike | None = None) -> tuple[_Source, list[str]]:
    """Finds where ``name``'s data will be read from, without reading it.

    Returns:
        The source and the list of places looked at, for messages.

    Raises:
        CifarDataError: when a given directory holds no recognisable copy.
    """
    spec = _spec(name)
    looked: list[str] = []
    chosen_dir: Path | None = None
    if data_dir is not None:
        chosen_dir = Path(os.path.abspath(Path(data_dir).expanduser()))
        origin = "data_dir argument"
    elif config.data_dir_from_env() is not None:
        chosen_dir = Path(os.path.abspath(config.data_dir_from_env()))
        origin = f"{config.DATA_DIR_ENV} variable"
    if chosen_dir is None:
        return _Source("python-archive", _download_with_keras(spec)), [
            f"Keras download ({spec.download_url})"
        ]
    looked.append(f"{chosen_dir} ({origin})")
    if not chosen_dir.exists():
        raise CifarDataError(
            f"{chosen_dir}: this {origin} does not exist. Pass the directory that "
            f"holds '{spec.python_archive}' (or another supported copy of {spec.name})."
        )
    if chosen_dir.is_file():
        found = _classify_path(chosen_dir, spec)
        if found is None:
            raise CifarDataError(
                f"{chosen_dir}: not a recognised {spec.name} file. Expected "
                f"'{spec.python_archive}' or an image archive named like "
                f"'{spec.name}-jpeg.tar.gz'; pass the directory that holds it instead."
            )
        return found, looked
    found = _find_in_directory(chosen_dir, spec)
    if found is None:
        raise _no_data_error(spec, looked)
    return found, looked


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset. Expected one of {sorted(DATASETS)}. Received: {name!r}"
        )
    return DATASETS[name]


# ---------------------------------------------------------------------------
# Source identity (cache key)
# ---------------------------------------------------------------------------

def _file_identity(path: Path) -> list:
    stat = path.stat()
    digest = hashlib.sha256()
    # A content sample catches a file rewritten with its size and mtime kept.
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        if stat.st_size > (2 << 20):
            handle.seek(-(1 << 20), os.SEEK_END)
            digest.update(handle.read(1 << 20))
    return [path.name, stat.st_size, stat.st_mtime_ns, digest.hexdigest()]


def source_fingerprint(source: _Source, spec: DatasetSpec) -> str:
    """Hashes the identity of a source: paths, sizes, mtimes, content sample."""
    parts: list = [_CACHE_FORMAT, spec.name, source.kind, str(source.path.resolve())]
    if source.path.is_file():
        parts.append(_file_identity(source.path))
    else:
        for root, dirs, files in os.walk(source.path):
            dirs.sort()
            for file_name in sorted(files):
                file_path = Path(root) / file_name
                stat = file_path.stat()
                parts.append(
                    [str(file_path.relative_to(source.path)), stat.st_size, stat.st_mtime_ns]
                )
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------

def _python_members(source: _Source, spec: DatasetSpec) -> dict[str, tuple[str, bytes]]:
    """Reads the official python-version files: member name -> (display, bytes)."""
    if spec.name == "cifar10":
        wanted = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    else:
        wanted = ["train", "test", "meta"]
    found: dict[str, tuple[str, bytes]] = {}
    if source.kind == "python-folder":
        for member in wanted:
            member_path = source.path / member
            if not member_path.is_file():
                raise CifarDataError(
                    f"{member_path}: missing from the {spec.name} folder. The copy is "
                    f"incomplete: extract '{spec.python_archive}' again."
                )
            found[member] = (str(member_path), member_path.read_bytes())
        return found
    try:
        with tarfile.open(source.path, "r:*") as archive:
            for info in archive:
                base = info.name.rsplit("/", 1)[-1]
                if info.isfile() and base in wanted:
                    handle = archive.extractfile(info)
                    found[base] = (f"{source.path}!{info.name}", handle.read())
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise CifarDataError(
            f"{source.path}: the archive is truncated or corrupt ({type(error).__name__}: "
            f"{error}). Delete it and download {spec.download_url} again."
        ) from None
    missing = [member for member in wanted if member not in found]
    if missing:
        raise CifarDataError(
            f"{source.path}: the archive lacks {missing}. It is incomplete or not "
            f"the official {spec.name} python version; download {spec.download_url} again."
        )
    return found


def _dict_get(mapping: dict, key: str, where: str):
    for candidate in (key.encode(), key):
        if candidate in mapping:
            return mapping[candidate]
    raise CifarDataError(
        f"{where}: the pickle has no '{key}' entry; it is not an official CIFAR "
        "batch. Download the dataset again."
    )


def _decode_batch(payload: tuple[str, bytes], label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    where, raw = payload
    batch = restricted_pickle_load(raw, where)
    if not isinstance(batch, dict):
        raise CifarDataError(f"{where}: expected a dict of arrays, found {type(batch).__name__}.")
    data = np.asarray(_dict_get(batch, "data", where))
    labels = np.asarray(_dict_get(batch, label_key, where), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise CifarDataError(
            f"{where}: image data has shape {data.shape}, expected [N, 3072] "
            "(32x32 pixels in R, G, B planes). The file is not an official CIFAR batch."
        )
    if data.dtype != np.uint8:
        raise CifarDataError(f"{where}: image data has dtype {data.dtype}, expected uint8.")
    if labels.shape != (data.shape[0],):
        raise CifarDataError(
            f"{where}: {labels.shape[0] if labels.ndim else 0} labels for {data.shape[0]} "
            "images; the file is corrupt. Download the dataset again."
        )
    _check_label_range(labels, num_classes, where)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _check_label_range(labels: np.ndarray, num_classes: int, where: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CifarDataError(
            f"{where}: labels range over [{labels.min()}, {labels.max()}], expected "
            f"0..{num_classes - 1}. The file does not belong to this dataset or is corrupt."
        )


def _names_from_meta(payload: tuple[str, bytes], key: str, expected_count: int, dataset: str) -> tuple[str, ...]:
    where, raw = payload
    meta = restricted_pickle_load(raw, where)
    if not isinstance(meta, dict):
        raise CifarDataError(f"{where}: expected a dict, found {type(meta).__name__}.")
    names = tuple(
        name.decode() if isinstance(name, bytes) else str(name)
        for name in _dict_get(meta, key, where)
    )
    if len(names) != expected_count:
        raise CifarDataError(
            f"{where}: lists {len(names)} classes but {dataset} has {expected_count}. "
            f"This is not a {dataset} file; check which dataset the directory holds."
        )
    return names


def _decode_python(source: _Source, spec: DatasetSpec) -> dict[str, np.ndarray]:
    members = _python_members(source, spec)
    arrays: dict[str, np.ndarray] = {}
    if spec.name == "cifar10":
        names = _names_from_meta(members["batches.meta"], "label_names", 10, "cifar10")
        parts = [_decode_batch(members[f"data_batch_{i}"], "labels", 10) for i in range(1, 6)]
        arrays["x_train"] = np.concatenate([p[0] for p in parts])
        arrays["y_train"] = np.concatenate([p[1] for p in parts])
        arrays["x_test"], arrays["y_test"] = _decode_batch(members["test_batch"], "labels", 10)
    else:
        names = _names_from_meta(members["meta"], "fine_label_names", 100, "cifar100")
        coarse = _names_from_meta(members["meta"], "coarse_label_names", 20, "cifar100 superclasses")
        for split in ("train", "test"):
            images, fine = _decode_batch(members[split], "fine_labels", 100)
            _, coarse_labels = _decode_batch(members[split], "coarse_labels", 20)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = images, fine
            arrays[f"y_{split}_coarse"] = coarse_labels
        arrays["coarse_class_names"] = np.array(coarse)
    arrays["class_names"] = np.array(names)
    return arrays


def _iter_image_members(source: _Source) -> Iterator[tuple[str, bytes]]:
    """Yields (relative path, bytes) for every image file of an image source."""
    if source.kind == "image-folder":
        for root, dirs, files in os.walk(source.path):
            dirs.sort()
            for file_name in sorted(files):
                if file_name.lower().endswith(_IMAGE_SUFFIXES):
                    path = Path(root) / file_name
                    yield str(path), path.read_bytes()
        return
    lower = source.path.name.lower()
    try:
        if lower.endswith(".zip"):
            with zipfile.ZipFile(source.path) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and info.filename.lower().endswith(_IMAGE_SUFFIXES):
                        yield f"{source.path}!{info.filename}", archive.read(info)
        else:
            with tarfile.open(source.path, "r:*") as archive:
                for info in archive:
                    if info.isfile() and info.name.lower().endswith(_IMAGE_SUFFIXES):
                        yield f"{source.path}!{info.name}", archive.extractfile(info).read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as error:
        raise CifarDataError(
            f"{source.path}: the archive is truncated or corrupt ({type(error).__name__}: "
            f"{error}). Delete it and obtain the archive again."
        ) from None


def _split_and_class(member: str) -> tuple[str, str] | None:
    """('train'|'test', class) from a path like .../train/<class>/file.png."""
    parts = re.split(r"[/\\!]", member)
    for index in range(len(parts) - 3, -1, -1):
        if parts[index] in ("train", "test") and index + 2 == len(parts) - 1:
            return parts[index], parts[index + 1]
    return None


def _decode_image(raw: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            mode, size = image.mode, image.size
            if size != (32, 32) or mode != "RGB":
                raise CifarDataError(
                    f"{where}: image is {size[0]}x{size[1]} {mode}, expected 32x32 RGB. "
                    "CIFAR images are 32x32 colour images: remove or convert this file."
                )
            return np.asarray(image, dtype=np.uint8)
    except CifarDataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CifarDataError(
            f"{where}: cannot decode this image ({type(error).__name__}: {error}). "
            "The file is corrupt or not a PNG/JPEG: remove it or obtain the data again."
        ) from None


def _decode_images(source: _Source, spec: DatasetSpec) -> dict[str, np.ndarray]:
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    classes: dict[str, list[str]] = {"train": [], "test": []}
    for member, raw in _iter_image_members(source):
        located = _split_and_class(member)
        if located is None:
            continue  # stray files outside train/<class>/ are not data
        split, class_name = located
        images[split].append(_decode_image(raw, member))
        classes[split].append(class_name)
    for split in ("train", "test"):
        if not images[split]:
            raise CifarDataError(
                f"{source.path}: no images under '{split}/<class>/'. An image-folder "
                f"copy of {spec.name} must hold train/<class>/*.png|jpg and test/<class>/*."
            )
    found_names = sorted(set(classes["train"]) | set(classes["test"]))
    if len(found_names) != spec.num_classes:
        raise CifarDataError(
            f"{source.path}: found {len(found_names)} class folders, but {spec.name} has "
            f"{spec.num_classes} classes. Check that this is a {spec.name} copy "
            f"(found: {found_names[:12]}{' ...' if len(found_names) > 12 else ''})."
        )
    if set(found_names) == set(spec.class_names):
        class_names = spec.class_names  # official label order
    else:
        raise CifarDataError(
            f"{source.path}: class folders {found_names[:12]} are not the official "
            f"{spec.name} class names (e.g. {list(spec.class_names[:4])}). Rename the "
            "folders to the official names so labels keep their official meaning."
        )
    index = {name: i for i, name in enumerate(class_names)}
    arrays: dict[str, np.ndarray] = {"class_names": np.array(class_names)}
    for split in ("train", "test"):
        arrays[f"x_{split}"] = np.stack(images[split])
        arrays[f"y_{split}"] = np.array([index[c] for c in classes[split]], dtype=np.int64)
        if spec.name == "cifar100":
            arrays[f"y_{split}_coarse"] = np.asarray(CIFAR100_FINE_TO_COARSE, dtype=np.int64)[
                arrays[f"y_{split}"]
            ]
    if spec.name == "cifar100":
        arrays["coarse_class_names"] = np.array(CIFAR100_COARSE_CLASS_NAMES)
    return arrays


def _decode(source: _Source, spec: DatasetSpec) -> dict[str, np.ndarray]:
    if source.kind.startswith("python"):
        return _decode_python(source, spec)
    return _decode_images(source, spec)


# ---------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------

def _cache_path(spec: DatasetSpec, fingerprint: str, cache_dir: Path) -> Path:
    return cache_dir / f"{spec.name}-{fingerprint}.npz"


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception:
        # A damaged cache entry is only a lost shortcut: decode again.
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        with atomic.replacing(path, "wb") as handle:
            np.savez(handle, **arrays)
    except OSError:
        # Read-only checkouts still work, only without the cache.
        pass


def _validate_arrays(arrays: dict[str, np.ndarray], spec: DatasetSpec, where: str) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise CifarDataError(
                f"{where}: {split} images have shape {images.shape}, expected [N, 32, 32, 3]."
            )
        if labels.shape != (images.shape[0],):
            raise CifarDataError(
                f"{where}: {split} has {labels.shape} labels for {images.shape[0]} images."
            )
        _check_label_range(labels, spec.num_classes, f"{where} ({split})")


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------

def stratified_split(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits indices into (selected, rest) with class proportions kept.

    ``size`` is allotted to classes by largest remainder, so the selected
    count is exact. Both outputs are sorted index arrays.

    Raises:
        ValueError: if ``size`` is negative or larger than ``len(labels)``.
    """
    labels = np.asarray(labels)
    if not 0 <= size <= labels.shape[0]:
        raise ValueError(
            f"Split size must be between 0 and {labels.shape[0]}. Received: {size}"
        )
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (size / labels.shape[0])
    quota = np.floor(exact).astype(int)
    remainder = size - quota.sum()
    if remainder:
        # Ties broken by a seeded permutation so no class is always favoured.
        order = np.lexsort((rng.permutation(len(classes)), -(exact - quota)))
        quota[order[:remainder]] += 1
    selected = []
    for class_index, class_label in enumerate(classes):
        members = np.flatnonzero(labels == class_label)
        selected.append(rng.permutation(members)[: quota[class_index]])
    chosen = np.sort(np.concatenate(selected)) if selected else np.array([], dtype=np.int64)
    rest = np.setdiff1d(np.arange(labels.shape[0]), chosen)
    return chosen.astype(np.int64), rest.astype(np.int64)


def load_cifar(
    name: str,
    data_dir: str | os.PathLike | None = None,
    validation_size: int = 5000,
    train_size: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    test_size: int | None = None,
) -> CifarData:
    """Loads CIFAR-10 or CIFAR-100 as stratified train/validation/test splits.

    Args:
        name: "cifar10" or "cifar100".
        data_dir: A directory holding a supported copy, or the archive itself.
            Defaults to the ``CIFAR_DATA_DIR`` variable, else the Keras
            download.
        validation_size: Images held out of the official training set for
            every model-selection decision (stratified, seeded). 0 disables it.
        train_size: If given, a stratified subset of this many training images
            (after the validation split) for the reduced profiles.
        seed: Seeds both the validation split and the training subset.
        cache_dir: Where decoded arrays are cached; defaults to
            ``helpers.config.DATA_CACHE_DIR``.
        test_size: None keeps the official test set whole (the default and
            the full profile). A number takes a fixed stratified subset of
            it, the same whatever ``seed`` is (``TEST_SUBSET_SEED``), for the
            reduced profiles' cheap final evaluation.

    Returns:
        A :class:`CifarData`.

    Raises:
        CifarDataError: when no data is found (the message lists the places
            looked and how to get the data), or the data is truncated,
            corrupt, mis-shaped, mislabelled or not this dataset.
        ValueError: for an unknown dataset name or bad sizes.

    Used in: 00_data and every notebook after it.
    """
    spec = _spec(name)
    if not isinstance(validation_size, (int, np.integer)) or validation_size < 0:
        raise ValueError(f"validation_size must be an integer >= 0. Received: {validation_size!r}")
    if train_size is not None and (not isinstance(train_size, (int, np.integer)) or train_size <= 0):
        raise ValueError(f"train_size must be a positive integer or None. Received: {train_size!r}")

    source, _ = resolve_source(name, data_dir)
    fingerprint = source_fingerprint(source, spec)
    cache_root = Path(cache_dir) if cache_dir is not None else config.DATA_CACHE_DIR
    cache_file = _cache_path(spec, fingerprint, cache_root)
    arrays = _read_cache(cache_file)
    from_cache = arrays is not None
    if arrays is None:
        arrays = _decode(source, spec)
        _validate_arrays(arrays, spec, str(source.path))
        _write_cache(cache_file, arrays)

    x_full, y_full = arrays["x_train"], arrays["y_train"]
    if validation_size > x_full.shape[0] - 1:
        raise ValueError(
            f"validation_size must leave training images: the training set has "
            f"{x_full.shape[0]}. Received: {validation_size}"
        )
    val_index, train_index = stratified_split(y_full, validation_size, seed)
    if train_size is not None:
        if train_size > train_index.shape[0]:
            raise ValueError(
                f"train_size can be at most {train_index.shape[0]} (the training split "
                f"after holding out {validation_size} for validation). Received: {train_size}"
            )
        chosen, _ = stratified_split(y_full[train_index], train_size, seed + 1)
        train_index = train_index[chosen]

    test_index = np.arange(arrays["x_test"].shape[0])
    if test_size is not None:
        if not isinstance(test_size, (int, np.integer)) or not 0 < test_size <= test_index.size:
            raise ValueError(
                f"test_size must be between 1 and {test_index.size}. Received: {test_size!r}"
            )
        test_index, _ = stratified_split(arrays["y_test"], test_size, TEST_SUBSET_SEED)

    coarse = arrays.get("y_train_coarse")
    coarse_test = arrays.get("y_test_coarse")
    return CifarData(
        name=spec.name,
        source=source.describe(),
        source_fingerprint=fingerprint,
        x_train=x_full[train_index],
        y_train=y_full[train_index],
        x_val=x_full[val_index],
        y_val=y_full[val_index],
        x_test=arrays["x_test"][test_index],
        y_test=arrays["y_test"][test_index],
        class_names=tuple(str(n) for n in arrays["class_names"]),
        num_classes=spec.num_classes,
        coarse_class_names=(
            tuple(str(n) for n in arrays["coarse_class_names"])
            if "coarse_class_names" in arrays else None
        ),
        y_train_coarse=coarse[train_index] if coarse is not None else None,
        y_val_coarse=coarse[val_index] if coarse is not None else None,
        y_test_coarse=coarse_test[test_index] if coarse_test is not None else None,
        from_cache=from_cache,
        seed=seed,
    )

