"""Input pipeline vs ResNet-20 training rate, printed as one JSON object.

The pipeline must deliver many times the training rate, or training waits on
it. This measures, on real-shaped CIFAR-10 (the real data when a copy is
found, else random uint8 images of the same shape):

* ``pipeline_images_per_second``: augmented, normalised training batches
  produced by ``helpers.pipeline.make_dataset`` alone;
* ``training_images_per_second``: ResNet-20 trained by ``model.fit`` on
  that pipeline (SGD with momentum, batch 128), first epoch excluded;
* ``ratio``: pipeline / training.

Usage:
    python benchmarks/pipeline.py [--data-dir PATH] [--batches 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Before TensorFlow: helpers sets its oneDNN and log-level variables on import.
from helpers import config, environment  # noqa: E402


def _data(data_dir: str | None, train_images: int):
    import numpy as np

    from helpers.data import CifarDataError, load_cifar

    try:
        data = load_cifar("cifar10", data_dir)
        return data.x_train[:train_images], data.y_train[:train_images], data.source
    except (CifarDataError, OSError):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (train_images, 32, 32, 3), dtype=np.uint8)
        return images, rng.integers(0, 10, train_images), "synthetic uint8 (no CIFAR copy found)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get(config.DATA_DIR_ENV))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=60, help="timed batches per training repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from helpers.models import build_model
    from helpers.pipeline import make_splits, measure_throughput

    images, labels, source = _data(args.data_dir, train_images=45000)

    class _Arrays:  # the training split is all that measure_throughput and make_splits read
        x_train, y_train = images, labels

    pipeline = measure_throughput(_Arrays, batch_size=args.batch_size, num_batches=200,
                                  repeats=args.repeats)

    keras.utils.set_random_seed(0)
    model = build_model("resnet20")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=args.batches // 2 or 1)
    dataset = make_splits(_Arrays, batch_size=args.batch_size, splits=("train",), seed=0,
                          repeat_train=True).train
    # The first call traces and compiles the step: excluded.
    model.fit(dataset, epochs=1, steps_per_epoch=args.batches, verbose=0)
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=args.batches, verbose=0)
        rates.append(args.batches * args.batch_size / (time.perf_counter() - started))
    training = statistics.median(rates)
    result = {
        "benchmark": "pipeline_vs_resnet20_training",
        "data": source,
        "batch_size": args.batch_size,
        "pipeline_images_per_second": round(pipeline["images_per_second"], 1),
        "pipeline_repeats": [round(r, 1) for r in pipeline["repeats"]],
        "training_images_per_second": round(training, 1),
        "training_repeats": [round(r, 1) for r in rates],
        "ratio": round(pipeline["images_per_second"] / training, 2),
        "machine": environment.hardware(),
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
