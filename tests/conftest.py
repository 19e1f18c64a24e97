"""Shared fixtures: the real CIFAR copies when present, a private cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import helpers  # noqa: E402,F401 - before any test imports TensorFlow: turns oneDNN on, as in use

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _real_data_dir() -> Path | None:
    # CIFAR_DATA_DIR wins; otherwise the read-only copies laid beside the
    # checkout on the project's development and CI machines.
    candidates = [os.environ.get("CIFAR_DATA_DIR"), PROJECT_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "cifar10-jpeg.tar.gz").exists():
            return Path(candidate)
        if candidate and Path(candidate).is_dir() and any(Path(candidate).glob("cifar*")):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Directory with real CIFAR-10/100 copies; skips the test when absent."""
    found = _real_data_dir()
    if found is None:
        pytest.skip("real CIFAR data not present (set CIFAR_DATA_DIR to run this test)")
    return found
