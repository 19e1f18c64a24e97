"""Tiny synthetic data and configurations for the engine's tests.

Kept in a module (not a conftest fixture) so that the subprocesses the
resume and distribution tests start can import the same helpers.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def synthetic_cifar(num_train: int = 128, num_val: int = 32, num_test: int = 32,
                    num_classes: int = 10, seed: int = 0):
    """A CifarData of random images whose red channel encodes the label.

    The class signal makes the loss fall within a few steps, so a training
    run on it does something a test can observe.
    """
    from helpers.data import CifarData

    rng = np.random.default_rng(seed)

    def split(count):
        labels = rng.integers(0, num_classes, count).astype(np.int64)
        images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        images[..., 0] = (labels * (255 // max(num_classes - 1, 1))).astype(np.uint8)[:, None, None]
        return images, labels

    x_train, y_train = split(num_train)
    x_val, y_val = split(num_val)
    x_test, y_test = split(num_test)
    return CifarData(
        name="cifar10" if num_classes == 10 else "cifar100",
        source="synthetic",
        source_fingerprint="synthetic",
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        class_names=tuple(f"class{i}" for i in range(num_classes)),
        num_classes=num_classes,
    )


def tiny_config(**changes):
    """A configuration that trains in about a second per epoch on two cores."""
    from helpers.experiment import ExperimentConfig

    values = dict(
        model="vgg11",
        model_options={"width_multiplier": 0.125},
        batch_size=32,
        num_epochs=2,
        validation_size=32,
        learning_rate=0.05,
        steps_per_execution=2,
    )
    values.update(changes)
    return ExperimentConfig(**values)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            handle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            handle.bind(("127.0.0.1", 0))
            sockets.append(handle)
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()
