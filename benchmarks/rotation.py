"""ResNet-20 training steps of several variants, measured in rotation.

A variant is a benchmark worker (``throughput.py --worker``): the TensorFlow
step (``tensorflow``) or the PyTorch reference (``torch``), run from a
project checkout (this one, or another revision, e.g. made with ``git
worktree add``) with extra environment variables. All workers start first;
then each round times one repeat of every variant, the starting variant
moving one place each round, so slow drifts of a shared machine fall on
every variant alike. Use it to compare one change against the code without
it; ``throughput.py`` is the benchmark itself.

Prints one JSON object: per variant the median images/s, every repeat, and
the median over rounds of its ratio to the reference variant (the first
PyTorch one when there is one, else the first).

Usage:
    python benchmarks/rotation.py --variant NAME=ROOT:KIND[:VAR=VALUE,...] ... [--rounds 11]

Example (this checkout with one and with two inter-op threads, against PyTorch):
    python benchmarks/rotation.py --variant two=.:tensorflow \\
        --variant one=.:tensorflow:TF_NUM_INTEROP_THREADS=1 --variant torch=.:torch
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # noqa: E402

KINDS = ("tensorflow", "torch")


def parse_variant(text: str) -> tuple[str, Path, str, dict[str, str]]:
    """``NAME=ROOT:KIND[:VAR=VALUE,...]`` -> (name, root, kind, environment).

    Raises:
        ValueError: naming what is wrong with ``text`` and the expected form.
    """
    form = "expected NAME=ROOT:KIND[:VAR=VALUE,...], e.g. head=.:tensorflow"
    name, separator, rest = text.partition("=")
    parts = rest.split(":", 2)
    if not separator or not name or len(parts) < 2:
        raise ValueError(f"--variant {text!r}: {form}")
    root, kind = Path(parts[0]).resolve(), parts[1]
    if kind not in KINDS:
        raise ValueError(f"--variant {text!r}: KIND must be one of {', '.join(KINDS)}. Received: {kind!r}")
    if not (root / "benchmarks" / "throughput.py").is_file():
        raise ValueError(f"--variant {text!r}: {root} is not a project checkout "
                         "(no benchmarks/throughput.py in it)")
    environment = {}
    for assignment in parts[2].split(",") if len(parts) == 3 and parts[2] else []:
        variable, equals, value = assignment.partition("=")
        if not equals or not variable:
            raise ValueError(f"--variant {text!r}: environment entries are VAR=VALUE. Received: {assignment!r}")
        environment[variable] = value
    return name, root, kind, environment


def summarise(rates: dict[str, list[float]], reference: str) -> dict:
    return {name: {"images_per_second": round(statistics.median(values), 1),
                   "repeats": [round(value, 1) for value in values],
                   "ratio_to_reference": round(statistics.median(
                       a / b for a, b in zip(values, rates[reference])), 3)}
            for name, values in rates.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=ROOT:KIND[:VAR=VALUE,...]")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=throughput.DEFAULT_BATCHES["resnet20"],
                        help="training steps per timed repeat (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        variants = [parse_variant(text) for text in args.variant]
    except ValueError as error:
        parser.error(str(error))
    names = [name for name, *_ in variants]
    if len(variants) < 2 or len(set(names)) != len(names):
        parser.error(f"give at least two --variant options with different names. Received: {names}")
    for option in ("rounds", "batch_size", "batches"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1. Received: {getattr(args, option)}")
    arguments = ["resnet20", str(args.batch_size), str(args.batches)]
    rates_in_order, _ = throughput.rotated_workers(
        [([kind, *arguments], root, environment) for _, root, kind, environment in variants], args.rounds)
    rates = dict(zip(names, rates_in_order))
    reference = next((name for name, _, kind, _ in variants if kind == "torch"), names[0])
    print(json.dumps({
        "benchmark": "rotation", "rounds": args.rounds, "batch_size": args.batch_size,
        "batches_per_repeat": args.batches, "reference": reference,
        "variants": {name: {"root": str(root), "kind": kind, "environment": environment}
                     for name, root, kind, environment in variants},
        "results": summarise(rates, reference),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
