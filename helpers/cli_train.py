"""``python -m helpers train`` and ``python -m helpers lr-find``.

Both take the same options, which map one to one onto
:class:`helpers.experiment.ExperimentConfig` fields; an option left out keeps
the configuration's default, so the command line and a notebook cell with
the same values name the same run (and share its cached record).

With ``--json`` stdout receives exactly one JSON object (the run record, or
the range test's result) and nothing else; logs and progress go to stderr.

Examples::

    python -m helpers train --model resnet20 --dataset cifar10 \\
        --data-dir ../shared/data --train-size 10000 --epochs 10 \\
        --schedule onecycle --json
    python -m helpers lr-find --model resnet20 --dataset cifar10 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from helpers import engine
from helpers.progress import PROGRESS_MODES
from helpers.experiment import (
    DATASETS,
    OPTIMIZERS,
    SCHEDULES,
    STRATEGIES,
    WEIGHT_DECAY_MODES,
    ExperimentConfig,
)

def _train_epilog() -> str:
    """``train``'s help epilog, with ExperimentConfig's defaults read from the class itself."""
    defaults = ExperimentConfig(model="resnet20")
    return (
        f"Options left out keep ExperimentConfig's defaults ({defaults.optimizer.upper()}, momentum "
        f"{defaults.momentum:g}, lr {defaults.learning_rate:g}, weight decay {defaults.weight_decay:g}, "
        f"batch {defaults.batch_size}, {defaults.num_epochs} epochs, {defaults.schedule} schedule, "
        f"augmentation {'on' if defaults.augment else 'off'}, {defaults.validation_size} validation "
        f"images, label smoothing {defaults.label_smoothing:g}, Nesterov "
        f"{'on' if defaults.nesterov else 'off'}). --model-option and --schedule-option take KEY=VALUE, "
        "VALUE read as JSON when it parses (0.5, true, [2, 3]) and as a string otherwise; repeat them for "
        "several options. With --schedule onecycle, the weight decay, label smoothing, Nesterov and cycle "
        "shape you leave out come from helpers.cli_train.ONECYCLE_RECIPE instead (--no-recipe: these "
        "defaults)."
    )


def _key_value(text: str) -> tuple[str, Any]:
    key, separator, raw = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE. Received: {text!r}")
    raw = raw.strip()
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def _on_off(text: str) -> bool | str:
    lowered = text.lower()
    if lowered in ("on", "true", "yes", "1"):
        return True
    if lowered in ("off", "false", "no", "0"):
        return False
    return text


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the configuration options shared by ``train`` and ``lr-find``.

    Used in: helpers.cli (the ``train`` and ``lr-find`` subcommands).
    """
    parser.epilog = _train_epilog()
    add = parser.add_argument
    add("--model", help="model name, e.g. resnet20 (see `python -m helpers models`); required unless "
        "--from-record")
    add("--dataset", choices=DATASETS, help="required unless --from-record")
    add("--data-dir", default=None,
        help="directory (or archive) holding the data; default: $CIFAR_DATA_DIR, else the Keras download")
    add("--epochs", dest="num_epochs", type=int, default=None, help="number of epochs")
    add("--batch-size", type=int, default=None, help="global batch size")
    add("--train-size", type=int, default=None, help="stratified training subset size")
    add("--validation-size", type=int, default=None, help="validation images held out (0: none)")
    add("--optimizer", choices=OPTIMIZERS, default=None)
    add("--lr", dest="learning_rate", type=float, default=None,
        help="learning rate (peak / maximum for cosine, clr, onecycle); for onecycle without --lr, "
             "the peak comes from an LR range test read as Smith reads it (cached), times "
             f"ONECYCLE_PEAK_FACTOR ({ONECYCLE_PEAK_FACTOR:g}) unless --no-recipe (1) or --peak-factor")
    add("--momentum", type=float, default=None, help="SGD momentum")
    add("--nesterov", nargs="?", const=True, type=_on_off, default=None, metavar="on|off",
        help="Nesterov momentum (--nesterov alone: on)")
    add("--weight-decay", type=float, default=None, help="decay coefficient on conv/dense kernels")
    add("--weight-decay-mode", choices=WEIGHT_DECAY_MODES, default=None,
        help="coupled: L2 as in the papers (default); decoupled: AdamW style")
    add("--schedule", choices=SCHEDULES, default=None)
    add("--schedule-option", dest="schedule_options", action="append", type=_key_value, default=None,
        metavar="KEY=VALUE", help="schedule option, repeatable")
    add("--model-option", dest="model_options", action="append", type=_key_value, default=None,
        metavar="KEY=VALUE", help="model builder option, repeatable")
    add("--no-augment", dest="augment", action="store_false", default=None,
        help="train without crop-and-flip augmentation")
    add("--label-smoothing", type=float, default=None)
    add("--seed", type=int, default=None, help="seed for weights, data order and augmentation")
    add("--data-seed", type=int, default=None, help="seed for the validation split and subset")
    add("--mixed-precision", type=_on_off, default=None,
        help="off, on (float16 on GPU, bfloat16 on CPU), mixed_float16 or mixed_bfloat16")
    add("--jit-compile", type=_on_off, default=None, help="XLA: off, on or auto")
    add("--strategy", choices=[name for name in STRATEGIES if name], default=None,
        help="tf.distribute strategy")
    add("--nondeterministic", dest="deterministic", action="store_false", default=None,
        help="allow nondeterministic (faster on GPU) kernels and pipelines")
    add("--no-gradient-norms", dest="record_gradient_norms", action="store_false", default=None,
        help="skip the per-layer gradient-norm diagnostics")
    add("--steps-per-execution", type=lambda text: text if text == "auto" else int(text), default=None)
    add("--name", default=None, help="free-text label (not part of the run id)")
    add("--runs-dir", default=None, help="where run records live (default: runs/ in the project)")
    add("--progress", choices=["auto", *PROGRESS_MODES], default="auto",
        help="progress display on stderr")
    add("--no-resume", dest="resume", action="store_false", help="discard an unfinished run's checkpoint")
    add("--json", action="store_true", help="print exactly one JSON object on stdout")


def add_from_record_argument(parser: argparse.ArgumentParser) -> None:
    """Adds ``--from-record`` to ``train``.

    Used in: helpers.cli (the ``train`` subcommand).
    """
    parser.add_argument(
        "--from-record", metavar="PATH", default=None,
        help="retrain exactly the configuration of this run record (a record.json or its run folder) "
             "into a fresh folder (default: runs/retrain/<run id>-<time>) and print the new record beside "
             "the old one; only --data-dir, --runs-dir, --progress and --json may be given with it")


def add_recipe_argument(parser: argparse.ArgumentParser) -> None:
    """Adds ``--no-recipe`` and ``--peak-factor`` to ``train``.

    Used in: helpers.cli (the ``train`` subcommand).
    """
    parser.add_argument(
        "--no-recipe", dest="recipe", action="store_false",
        help="with --schedule onecycle: leave out ONECYCLE_RECIPE, so the options you leave out keep the "
             "configuration's own defaults (listed at the end of this help) and the schedule's own cycle shape")
    parser.add_argument(
        "--peak-factor", type=_positive_float, default=None, metavar="F",
        help="with --schedule onecycle and no --lr: the peak is F x the LR range test's reading (default: "
             f"ONECYCLE_PEAK_FACTOR, {ONECYCLE_PEAK_FACTOR:g}, with the recipe; 1 with --no-recipe)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number. Received: {text!r}")
    return value


def add_lr_find_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the range test's own options to ``lr-find``.

    Used in: helpers.cli (the ``lr-find`` subcommand).
    """
    parser.add_argument("--min-lr", type=float, default=1e-5, help="first rate of the ramp")
    parser.add_argument("--max-lr", type=float, default=10.0, help="last rate of the ramp")
    parser.add_argument("--iterations", type=int, default=100, help="updates in the ramp")


_CONFIG_ARGUMENTS = (
    "model", "dataset", "data_dir", "num_epochs", "batch_size", "train_size", "validation_size",
    "optimizer", "learning_rate", "momentum", "nesterov", "weight_decay", "weight_decay_mode",
    "schedule", "schedule_options", "model_options", "augment", "label_smoothing", "seed",
    "data_seed", "mixed_precision", "jit_compile", "strategy", "deterministic",
    "record_gradient_norms", "steps_per_execution", "name",
)


def config_from_arguments(args: argparse.Namespace):
    """The :class:`ExperimentConfig` the parsed options describe.

    Raises:
        ValueError: for invalid values (the message names the field), an
            unknown model or an option the model does not take; before any
            data is read or TensorFlow imported.

    Used in: helpers.cli
    """
    for required in ("model", "dataset"):
        if getattr(args, required, None) is None:
            raise ValueError(f"--{required} is required (or, for train, --from-record PATH). "
                             f"Received: no --{required}")
    values: dict[str, Any] = {}
    for name in _CONFIG_ARGUMENTS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name in ("model_options", "schedule_options"):
            value = dict(value)
        values[name] = value
    config = ExperimentConfig(**values)
    engine.check_names(config)
    return config


# Steps of the range test that sets one-cycle's peak when --lr is not given.
ONECYCLE_RANGE_TEST_ITERATIONS = 200

# `train --schedule onecycle`'s weight decay, label smoothing, Nesterov and cycle shape
# when those options are left out: what benchmarks/onecycle_recipe.py chooses
# on the validation split (its "chosen_on_validation"; it also reports whether
# this default is still that choice). "schedule_options" are one-cycle's
# (helpers.schedules); a --schedule-option the user gives wins over its key here.
ONECYCLE_RECIPE = {"weight_decay": 5e-4, "label_smoothing": 0.1, "nesterov": False,
                   "schedule_options": {"pct_start": 0.3, "div_factor": 25.0, "cycle_momentum": False,
                                        "fall": "cosine"}}

# With the recipe, one-cycle's peak is this multiple of the range test's
# reading (benchmarks/onecycle_recipe.py's last selection step, "peaks",
# chosen on the validation split). The range test ramps the rate on a fresh
# net, while one-cycle reaches its peak only after pct_start of the run, on a
# net that has already trained; a multiple above 1 allows for that. Chosen:
# ResNet-20, 10 epochs, seed 0, final validation accuracy 83.86% at 2 x the
# reading 0.178 against 83.02% at the reading itself (README, one-cycle).
ONECYCLE_PEAK_FACTOR = 2.0


def with_onecycle_recipe(config, args: argparse.Namespace):
    """``config`` with ``ONECYCLE_RECIPE``'s values for the options ``args`` leaves out.

    Weight decay and label smoothing are taken whole when left out; the
    recipe's schedule options are taken key by key, under the user's own
    ``--schedule-option`` values.

    Used in: python -m helpers train --schedule onecycle
    """
    left_out = {name: value for name, value in ONECYCLE_RECIPE.items()
                if name != "schedule_options" and getattr(args, name, None) is None}
    given = dict(getattr(args, "schedule_options", None) or {})
    recipe_options = {key: value for key, value in ONECYCLE_RECIPE.get("schedule_options", {}).items()
                      if key not in given}
    if recipe_options:
        left_out["schedule_options"] = {**recipe_options, **given}
    return config.replace(**left_out) if left_out else config


def onecycle_peak_from_range_test(config, runs_dir=None, progress="auto", factor=1.0):
    """``config`` with its one-cycle peak set from an LR range test, read as Smith reads it.

    The test runs on ``config`` itself (its model, data, batch, weight decay
    and label smoothing) for ``ONECYCLE_RANGE_TEST_ITERATIONS`` steps, and
    is cached under ``<runs_dir>/lr_find/`` like 05_cyclical_lr's, so a
    second call costs nothing. The peak is the rate where the smoothed loss
    stops falling: its minimum before it first climbs back
    (``helpers.range_reading.read_range_test``), times ``factor``.

    Raises:
        ValueError: when ``factor`` is not a positive number.

    Used in: ``python -m helpers train --schedule onecycle`` without ``--lr``
    """
    from helpers import studies

    if not (isinstance(factor, (int, float)) and factor > 0):
        raise ValueError(f"The one-cycle peak factor must be a positive number. Received: {factor!r}")
    range_test = studies.learning_rate_range_test(config, ONECYCLE_RANGE_TEST_ITERATIONS, runs_dir,
                                                  progress=progress != "none")
    reading = studies.range_test_reading(range_test).max_learning_rate
    peak = reading * factor
    if factor == 1:
        how = "the LR range test's maximum rate"
    else:
        how = f"{factor:g} x the LR range test's maximum rate {reading:.4g}"
    print(f"one-cycle peak rate {peak:.4g}: {how} (Smith's reading, {ONECYCLE_RANGE_TEST_ITERATIONS} steps, "
          "cached); pass --lr to set it yourself", file=sys.stderr)
    return config.replace(learning_rate=peak)


def _print_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, indent=1, allow_nan=False) + "\n")
    sys.stdout.flush()


def train_main(args: argparse.Namespace) -> int:
    """Handler of ``python -m helpers train``; returns the exit status.

    Exit status 0 for a completed run, 3 for a diverged one (its record is
    printed all the same), 2 for bad input (via helpers.cli).

    Used in: helpers.cli
    """
    if getattr(args, "from_record", None):
        return _retrain_main(args)
    config = config_from_arguments(args)
    progress = "auto" if args.progress == "auto" else args.progress
    recipe = getattr(args, "recipe", True)
    if config.schedule == "onecycle" and recipe:
        config = with_onecycle_recipe(config, args)
    peak_factor = getattr(args, "peak_factor", None)
    if peak_factor is not None and config.schedule != "onecycle":
        raise ValueError("--peak-factor scales one-cycle's peak; use it with --schedule onecycle. "
                         f"Received: --schedule {config.schedule} --peak-factor {peak_factor:g}")
    if peak_factor is not None and args.learning_rate is not None:
        raise ValueError("--lr sets the peak itself and --peak-factor multiplies the range test's reading; "
                         f"give one of them. Received: --lr {args.learning_rate:g} --peak-factor {peak_factor:g}")
    if config.schedule == "onecycle" and args.learning_rate is None:
        if peak_factor is None:
            peak_factor = ONECYCLE_PEAK_FACTOR if recipe else 1.0
        config = onecycle_peak_from_range_test(config, runs_dir=args.runs_dir, progress=progress,
                                               factor=peak_factor)
    try:
        record = engine.run(config, runs_dir=args.runs_dir, progress=progress, resume=args.resume)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        _print_json(record.to_dict())
    else:
        print(f"run        {record.run_id}  ({record.status})")
        print(f"record     {record.path}")
        print(f"epochs     {record.epochs_completed}")
        for key in ("accuracy", "top5_accuracy", "loss"):
            if key in record.test:
                print(f"test {key:<14}{record.test_metric(key):.4f}")
        print(f"wall       {record.wall_seconds:.1f} s")
        if record.train_images_per_second:
            print(f"images/s   {record.train_images_per_second:.1f}")
    return 0 if record.status == "completed" else 3


def _retrain_main(args: argparse.Namespace) -> int:
    """``train --from-record PATH``: the same configuration, trained again, printed beside the old record."""
    import datetime as dt
    from pathlib import Path

    from helpers import config as project_config
    from helpers.records import load_record

    given = [f"--{name.replace('_', '-')}" for name in _CONFIG_ARGUMENTS
             if name != "data_dir" and getattr(args, name, None) is not None]
    if getattr(args, "recipe", True) is False:
        given.append("--no-recipe")
    if getattr(args, "peak_factor", None) is not None:
        given.append("--peak-factor")
    if given:
        raise ValueError(f"--from-record retrains the record's own configuration; leave out {', '.join(given)}. "
                         f"Received: {' '.join(given)}")
    old = load_record(args.from_record)
    config = old.config if args.data_dir is None else old.config.replace(data_dir=args.data_dir)
    engine.check_names(config)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    runs_dir = Path(args.runs_dir) if args.runs_dir else project_config.RUNS_DIR / "retrain" / f"{old.run_id}-{stamp}"
    if (runs_dir / old.run_id).exists():
        raise ValueError(f"{runs_dir / old.run_id} exists already, so the cache would answer instead of training; "
                         f"pass another --runs-dir. Received: --runs-dir {runs_dir}")
    new = engine.run(config, runs_dir=runs_dir, progress=args.progress, resume=False)
    rows = [("run id", old.run_id, new.run_id), ("status", old.status, new.status),
            ("epochs", old.epochs_completed, new.epochs_completed)]
    for key in ("accuracy", "top5_accuracy", "loss"):
        if key in old.test or key in new.test:
            rows.append((f"test {key}", old.test_metric(key), new.test_metric(key)))
    for key in ("loss", "val_accuracy"):
        if key in old.history and key in new.history and old.epochs_completed and new.epochs_completed:
            rows.append((f"final {key}", old.final(key), new.final(key)))
    hardware_old = (old.environment.get("hardware") or {})
    hardware_new = (new.environment.get("hardware") or {})
    rows.append(("hardware", hardware_old.get("cpu"), hardware_new.get("cpu")))
    rows.append(("instruction set", (hardware_old.get("instruction_set") or {}).get("widest"),
                 (hardware_new.get("instruction_set") or {}).get("widest")))
    if args.json:
        _print_json({"old": old.to_dict(), "new": new.to_dict(), "same_run_id": old.run_id == new.run_id,
                     "test_accuracy_difference": new.test_metric("accuracy") - old.test_metric("accuracy")})
    else:
        print(f"{'':18}{'committed record':>28}  {'this retraining':>28}")
        for name, before, after in rows:
            text = [f"{value:.4f}" if isinstance(value, float) else str(value) for value in (before, after)]
            print(f"{name:18}{text[0]:>28}  {text[1]:>28}")
        print(f"new record         {new.path}")
        if old.run_id != new.run_id:
            print("note: the run ids differ, so the data differ from the committed record's "
                  "(another copy of CIFAR, or other files in --data-dir).")
    return 0 if new.status == "completed" else 3


def lr_find_main(args: argparse.Namespace) -> int:
    """Handler of ``python -m helpers lr-find``; returns the exit status.

    Used in: helpers.cli
    """
    config = config_from_arguments(args)
    result = engine.find_learning_rate(
        config,
        min_learning_rate=getattr(args, "min_lr", 1e-5),
        max_learning_rate=getattr(args, "max_lr", 10.0),
        num_iterations=getattr(args, "iterations", 100),
        progress=args.progress,
    )
    payload = {"config": config.to_dict(), **result.to_dict()}
    if args.json:
        payload = {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                   for key, value in payload.items()}
        _print_json(payload)
        return 0
    print(f"{'learning_rate':>14}  {'loss':>10}  {'smoothed':>10}")
    for rate, loss, smoothed in zip(result.learning_rates, result.losses, result.smoothed_losses):
        print(f"{rate:14.6g}  {loss:10.4f}  {smoothed:10.4f}")
    print(f"suggested maximum rate {result.suggested_max_learning_rate:.4g}, "
          f"base rate {result.suggested_base_learning_rate:.4g}"
          + ("  (stopped early: the loss diverged)" if result.stopped_early else ""))
    return 0
