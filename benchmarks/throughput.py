"""Training throughput of the project's models, and ResNet-20 against PyTorch.

Prints one JSON object:

* ``models``: for resnet20, resnet56, resnet18 (CIFAR stem) and vgg19 with
  batch norm, at batch 128, training images/s of the engine's compiled
  training step (``helpers.compilation``'s loss, optimizer and weight decay,
  ``model.fit`` with ``steps_per_execution``) fed by the project's
  ``tf.data`` pipeline on real-shaped data: median of ``--repeats`` timed
  repeats after a warm-up repeat that pays for tracing;
* ``engine_loop``: ResNet-20 trained by ``helpers.engine.run`` itself
  (progress, per-epoch records, checkpoints and gradient-norm diagnostics
  on), images/s of a run's second epoch, in ``--repeats`` runs paired and
  alternating with repeats of the benchmark's step; ``ratio_to_benchmark``
  is the median of the per-pair ratios;
* ``pipeline_images_per_second``: the augmented pipeline alone;
* ``pytorch_reference`` (when torch is installed): the same ResNet-20 (same
  layers, option-A shortcuts, parameter count printed beside ours) in
  PyTorch, channels-last, SGD with momentum, in a separate process; the
  TensorFlow and PyTorch repeats alternate (``--pairs`` pairs), ``ratio`` is
  the median of the per-pair ratios ours / reference, and
  ``ratio_interquartile`` the middle half of those ratios.

Usage:
    python benchmarks/throughput.py [--repeats 5] [--pairs 11] [--batches N] [--models resnet20,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Before TensorFlow: helpers sets its oneDNN and log-level variables on import.
from helpers import environment  # noqa: E402

MODELS = {
    "resnet20": {},
    "resnet56": {},
    "resnet18": {"stem": "cifar"},
    "vgg19": {"batch_norm": True},
}
SETTLE_SECONDS = 1.0  # pause before each timed repeat (see _Worker.repeat)
# Training steps per timed repeat, so that each repeat lasts several seconds
# on a two-core CPU (--batches overrides them all).
DEFAULT_BATCHES = {"resnet20": 16, "resnet56": 8, "resnet18": 3, "vgg19": 3}


# --------------------------------------------------------------------------
# Worker processes: one repeat per line read on stdin, one JSON line out.
# --------------------------------------------------------------------------

def _tensorflow_worker(model_name: str, batch_size: int, batches: int) -> None:
    import keras
    import numpy as np

    from helpers.compilation import compile_model
    from helpers.experiment import ExperimentConfig
    from helpers.pipeline import make_splits

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size * batches * 4, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, images.shape[0])
    config = ExperimentConfig(model=model_name, model_options=MODELS[model_name], batch_size=batch_size,
                              weight_decay=5e-4, deterministic=False)
    keras.utils.set_random_seed(0)
    compiled = compile_model(config, 10, batches)
    model = compiled.model
    class _Arrays:  # the training split is all make_splits reads here
        x_train, y_train = images, labels

    dataset = make_splits(_Arrays, batch_size=batch_size, splits=("train",), seed=0, repeat_train=True).train
    iterator_dataset = dataset
    parameters = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    print(json.dumps({"ready": True, "parameters": parameters,
                      "steps_per_execution": compiled.steps_per_execution,
                      "tensorflow_onednn": environment.onednn_state()}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        started = time.perf_counter()
        model.fit(iterator_dataset, epochs=1, steps_per_epoch=batches, verbose=0)
        seconds = time.perf_counter() - started
        print(json.dumps({"images_per_second": batches * batch_size / seconds}), flush=True)


def _torch_worker(batch_size: int, batches: int) -> None:
    import torch
    from torch import nn
    import torch.nn.functional as functional

    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, in_channels, out_channels, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out_channels)
            self.pad = out_channels - in_channels
            self.stride = stride

        def forward(self, x):
            out = functional.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            shortcut = x
            if self.stride != 1 or self.pad:
                # Option A: subsample, zero-pad the new channels (no parameters).
                shortcut = functional.pad(x[:, :, ::self.stride, ::self.stride],
                                          (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            return functional.relu(out + shortcut)

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            layers, channels = [], 16
            for stage, width in enumerate((16, 32, 64)):
                for block in range(3):
                    layers.append(Block(channels, width, 2 if stage and block == 0 else 1))
                    channels = width
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = functional.relu(self.bn(self.conv(x)))
            x = self.blocks(x)
            return self.fc(torch.flatten(functional.adaptive_avg_pool2d(x, 1), 1))

    model = ResNet20().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loss_function = nn.CrossEntropyLoss()
    images = [torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
              for _ in range(batches)]
    labels = torch.randint(0, 10, (batches, batch_size))
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def repeat():
        model.train()
        for step in range(batches):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(model(images[step]), labels[step])
            loss.backward()
            optimizer.step()

    repeat()  # warm-up
    print(json.dumps({"ready": True, "parameters": parameters, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        started = time.perf_counter()
        repeat()
        seconds = time.perf_counter() - started
        print(json.dumps({"images_per_second": batches * batch_size / seconds}), flush=True)


class _Worker:
    """A worker process: this script's ``--worker`` mode, here or in another checkout.

    ``root`` is a project checkout whose ``benchmarks/throughput.py`` runs the
    worker (another revision, for benchmarks/rotation.py); ``environment``
    adds variables to its environment.
    """

    def __init__(self, arguments: list[str], root: Path = ROOT, environment: dict | None = None):
        self.kind = arguments[0]
        self.process = subprocess.Popen(
            [sys.executable, str(Path(root) / "benchmarks" / "throughput.py"), "--worker", *arguments],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=root, env={**os.environ, **(environment or {})})
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"benchmark worker {self.process.args[3:]} exited early")
            if line.startswith("{"):
                return json.loads(line)

    def repeat(self) -> float:
        # A moment for the other worker's threads to go idle (OpenMP and
        # Eigen pools spin for a while after their last task), so neither
        # framework starts its repeat on a busy machine.
        time.sleep(SETTLE_SECONDS)
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return self._read()["images_per_second"]

    def close(self) -> None:
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.process.wait(timeout=60)


def _batches(name: str, args) -> int:
    return args.batches or DEFAULT_BATCHES.get(name, 4)


def _measure_model(name: str, args) -> dict:
    worker = _Worker(["tensorflow", name, str(args.batch_size), str(_batches(name, args))])
    try:
        worker.repeat()  # warm-up: tracing and autotuning
        rates = [worker.repeat() for _ in range(args.repeats)]
    finally:
        worker.close()
    return {"images_per_second": round(statistics.median(rates), 1),
            "repeats": [round(r, 1) for r in rates], "batches_per_repeat": _batches(name, args),
            "parameters": worker.info["parameters"],
            "steps_per_execution": worker.info["steps_per_execution"],
            "tensorflow_onednn": worker.info["tensorflow_onednn"]}


def rotate(workers: list["_Worker"], rounds: int) -> list[list[float]]:
    """``rounds`` rounds of one repeat per worker; each worker's rates, in order.

    The worker that goes first moves one place each round (with two workers:
    they alternate), so slow drifts of the machine fall on every worker alike.
    """
    rates: list[list[float]] = [[] for _ in workers]
    for index in range(rounds):
        shift = index % len(workers)
        for position in list(range(shift, len(workers))) + list(range(shift)):
            rates[position].append(workers[position].repeat())
    return rates


def rotated_workers(specs: list[tuple[list[str], Path, dict | None]],
                     rounds: int) -> tuple[list[list[float]], list[dict]]:
    """Starts one worker per (arguments, root, environment), rotates, stops them all.

    A TensorFlow step worker gets one warm-up repeat first (tracing); the
    PyTorch and engine workers warm up before they report ready. Returns each
    worker's rates (see ``rotate``) and its ready message.
    """
    workers: list[_Worker] = []
    try:
        for arguments, root, environment in specs:
            workers.append(_Worker(arguments, root=root, environment=environment))
        for worker in workers:
            if worker.kind == "tensorflow":
                worker.repeat()
        return rotate(workers, rounds), [worker.info for worker in workers]
    finally:
        for worker in workers:
            worker.close()


def _paired_workers(first_arguments: list[str], second_arguments: list[str],
                    count: int) -> tuple[list[tuple[float, float]], dict, dict]:
    """``count`` alternating pairs (first's rate, second's rate) of two workers
    of this checkout, and each worker's ready message."""
    rates, (first, second) = rotated_workers([(first_arguments, ROOT, None),
                                               (second_arguments, ROOT, None)], count)
    return list(zip(*rates)), first, second


def _paired_reference(args) -> dict:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return {"skipped": "torch is not installed (pip install torch==2.13.0)"}
    batches = str(_batches("resnet20", args))
    pairs, ours, reference = _paired_workers(["tensorflow", "resnet20", str(args.batch_size), batches],
                                             ["torch", "resnet20", str(args.batch_size), batches],
                                             args.pairs)
    ratios = [a / b for a, b in pairs]
    ordered = sorted(ratios)
    return {
        "tensorflow_images_per_second": round(statistics.median(a for a, _ in pairs), 1),
        "pytorch_images_per_second": round(statistics.median(b for _, b in pairs), 1),
        "ratio": round(statistics.median(ratios), 3),
        "batches_per_repeat": int(batches),
        "pair_ratios": [round(r, 3) for r in ratios],
        "pairs": len(ratios),
        # The middle half of the per-pair ratios: how far the median can be trusted.
        "ratio_interquartile": [round(ordered[len(ordered) // 4], 3), round(ordered[(3 * len(ordered)) // 4], 3)],
        "parameters_ours": ours["parameters"],
        "parameters_reference": reference["parameters"],
        "torch": reference.get("torch"),
        "torch_threads": reference.get("threads"),
    }


def _engine_worker(batch_size: int, batches: int) -> None:
    """One engine run per "go": ResNet-20 for two epochs, the second one timed.

    Each run is ``helpers.engine.run`` itself (progress, per-epoch records,
    checkpoints, gradient-norm diagnostics on) on synthetic data of
    ``batches`` batches; it reports the training images/s of its second
    epoch (``train_seconds``: from the epoch's start to validation, so the
    per-batch callbacks count; the first epoch pays for tracing).
    """
    import tempfile
    import types

    import numpy as np

    from helpers.engine import run
    from helpers.experiment import ExperimentConfig

    rng = np.random.default_rng(0)
    count = batch_size * batches
    data = types.SimpleNamespace(
        name="cifar10", source="synthetic", source_fingerprint=None, num_classes=10,
        x_train=rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, count),
        x_val=rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8),
        y_val=rng.integers(0, 10, batch_size),
        x_test=rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, batch_size))
    config = ExperimentConfig(model="resnet20", batch_size=batch_size, num_epochs=2,
                              validation_size=batch_size, weight_decay=5e-4,
                              record_gradient_norms=True)

    def one_run() -> dict:
        with tempfile.TemporaryDirectory() as runs_dir:
            record = run(config, runs_dir=runs_dir, data=data, progress=False)
        return {"images_per_second": count / record.history["train_seconds"][-1], "status": record.status}

    one_run()  # warm-up: imports and the first build
    print(json.dumps({"ready": True, "parameters": None}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        print(json.dumps(one_run()), flush=True)


def _engine_loop(args) -> dict:
    """The engine's loop against the benchmark's step, in paired, alternating repeats.

    Timed minutes apart, the two drift apart with the machine (unpaired runs
    here gave ratios from 0.85 to 1.07); paired, each ratio compares
    measurements taken seconds apart.
    """
    batches = str(_batches("resnet20", args))
    pairs, _, _ = _paired_workers(["engine", "resnet20", str(args.batch_size), batches],
                                  ["tensorflow", "resnet20", str(args.batch_size), batches],
                                  args.repeats)
    ratios = [a / b for a, b in pairs]
    return {"images_per_second": round(statistics.median(a for a, _ in pairs), 1),
            "repeats": [round(a, 1) for a, _ in pairs],
            "benchmark_step_repeats": [round(b, 1) for _, b in pairs],
            "pair_ratios": [round(r, 3) for r in ratios],
            "ratio_to_benchmark": round(statistics.median(ratios), 3),
            "batches_per_repeat": int(batches)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        framework, model, batch_size, batches = argv[1:5]
        if framework == "torch":
            _torch_worker(int(batch_size), int(batches))
        elif framework == "engine":
            _engine_worker(int(batch_size), int(batches))
        else:
            _tensorflow_worker(model, int(batch_size), int(batches))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=None,
                        help="training steps per timed repeat (default: per model, %s)" % DEFAULT_BATCHES)
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed repeats per model (median reported; default 5)")
    parser.add_argument("--pairs", type=int, default=11,
                        help="paired TensorFlow/PyTorch repeats for the reference ratio (median of the "
                             "per-pair ratios; default 11: single repeats on a shared two-core machine "
                             "vary by +-15%%, so five pairs leave the median several points loose)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args(argv)
    for option in ("repeats", "pairs", "batch_size"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1. Received: {getattr(args, option)}")
    if args.batches is not None and args.batches < 1:
        parser.error(f"--batches must be at least 1. Received: {args.batches}")

    import keras
    import numpy as np
    import tensorflow as tf

    from helpers.pipeline import measure_throughput

    class _Arrays:
        x_train = np.random.default_rng(0).integers(0, 256, (20000, 32, 32, 3), dtype=np.uint8)
        y_train = np.random.default_rng(1).integers(0, 10, 20000)

    result = {
        "benchmark": "training_throughput",
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "machine": environment.hardware(),
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__},
        "pipeline_images_per_second": round(measure_throughput(
            _Arrays, batch_size=args.batch_size, num_batches=100, repeats=args.repeats)["images_per_second"], 1),
        "models": {},
    }
    for name in args.models.split(","):
        result["models"][name] = _measure_model(name, args)
    if "resnet20" in result["models"]:
        result["engine_loop"] = _engine_loop(args)
    if not args.skip_reference:
        result["pytorch_reference"] = _paired_reference(args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
