"""Writers for small synthetic CIFAR copies in every supported on-disk format.

Each writer produces files laid out exactly as the real ones (official python
pickles and their archive, image-folder trees and their archives), with a few
images per class, so the loader is exercised on its real parsing paths.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.data import (
    CIFAR10_CLASS_NAMES,
    CIFAR100_CLASS_NAMES,
    CIFAR100_COARSE_CLASS_NAMES,
    CIFAR100_FINE_TO_COARSE,
)


def synthetic_split(num_classes: int, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose mean colour encodes the class, so labels can be checked."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), per_class)
    rng.shuffle(labels)
    images = rng.integers(0, 256, size=(labels.size, 32, 32, 3), dtype=np.uint8)
    # A per-class marker pixel lets tests check image/label alignment.
    images[:, 0, 0, 0] = labels.astype(np.uint8)
    return images, labels.astype(np.int64)


def _to_rows(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(images.shape[0], -1)


def _pickle_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def write_cifar10_python(root: Path, per_class: int = 3, seed: int = 0) -> dict:
    """Writes root/cifar-10-batches-py with 5 train batches, test and meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_images, train_labels = synthetic_split(10, per_class * 5, seed)
    test_images, test_labels = synthetic_split(10, per_class, seed + 1)
    for batch_index, part in enumerate(np.array_split(np.arange(train_labels.size), 5), start=1):
        (folder / f"data_batch_{batch_index}").write_bytes(_pickle_bytes({
            b"batch_label": b"training batch",
            b"labels": train_labels[part].tolist(),
            b"data": _to_rows(train_images[part]),
        }))
    (folder / "test_batch").write_bytes(_pickle_bytes({
        b"labels": test_labels.tolist(), b"data": _to_rows(test_images)}))
    (folder / "batches.meta").write_bytes(_pickle_bytes({
        b"label_names": [name.encode() for name in CIFAR10_CLASS_NAMES],
        b"num_vis": 3072}))
    return {"x_train": train_images, "y_train": train_labels,
            "x_test": test_images, "y_test": test_labels, "path": folder}


def write_cifar100_python(root: Path, per_class: int = 2, seed: int = 0) -> dict:
    """Writes root/cifar-100-python with train, test and meta pickles."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    arrays = {}
    mapping = np.asarray(CIFAR100_FINE_TO_COARSE)
    for split, count, offset in (("train", per_class * 2, 0), ("test", per_class, 1)):
        images, labels = synthetic_split(100, count, seed + offset)
        (folder / split).write_bytes(_pickle_bytes({
            b"filenames": [b"x.png"] * labels.size,
            b"fine_labels": labels.tolist(),
            b"coarse_labels": mapping[labels].tolist(),
            b"data": _to_rows(images),
        }))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    (folder / "meta").write_bytes(_pickle_bytes({
        b"fine_label_names": [n.encode() for n in CIFAR100_CLASS_NAMES],
        b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE_CLASS_NAMES]}))
    arrays["path"] = folder
    return arrays


def tar_folder(folder: Path, archive: Path) -> Path:
    """Packs ``folder`` (as its own top-level entry) into a .tar.gz/.tar."""
    mode = "w:gz" if archive.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(archive, mode) as handle:
        handle.add(folder, arcname=folder.name)
    return archive


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, arcname=str(Path(folder.name) / path.relative_to(folder)))
    return archive


def write_image_tree(root: Path, folder_name: str, class_names, per_class: int = 2,
                     seed: int = 0, image_format: str = "PNG") -> dict:
    """Writes root/folder_name/{train,test}/<class>/NNNN.png (or .jpg)."""
    folder = root / folder_name
    suffix = ".png" if image_format == "PNG" else ".jpg"
    arrays = {}
    for split, count, offset in (("train", per_class * 2, 0), ("test", per_class, 1)):
        images, labels = synthetic_split(len(class_names), count, seed + offset)
        for index, (image, label) in enumerate(zip(images, labels)):
            class_dir = folder / split / class_names[label]
            class_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(class_dir / f"{index:04d}{suffix}", format=image_format)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    arrays["path"] = folder
    return arrays


class _Payload:
    """Unpickling this runs os.system: the loader must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def malicious_pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2)


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()
