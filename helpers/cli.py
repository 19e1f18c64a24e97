"""``python -m helpers``: the command line of CIFAR Lab.

Subcommands:
    data      where the data comes from, split sizes, classes, statistics
    models    every registered model with its parameters and MACs
    train     one experiment through the engine (cached, resumable)
    lr-find   the LR range test for one configuration
    report    execute the notebook series and render report/

With ``--json`` a subcommand prints exactly one JSON object on stdout; logs
and progress go to stderr. Errors print one message on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from helpers.experiment import DATASETS

def _print_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def _data_main(args: argparse.Namespace) -> int:
    from helpers.data import load_cifar

    loaded = load_cifar(args.dataset, data_dir=args.data_dir,
                        validation_size=args.validation_size, seed=args.seed)
    summary = loaded.summary()
    if args.json:
        _print_json(summary)
        return 0
    print(f"dataset      {summary['dataset']}")
    print(f"source       {summary['source']}{'  (decoded arrays from cache)' if loaded.from_cache else ''}")
    print(f"train        {summary['train']}")
    print(f"validation   {summary['validation']}  (stratified, seed {summary['seed']})")
    print(f"test         {summary['test']}")
    print(f"image shape  {summary['image_shape']}")
    print(f"classes      {summary['num_classes']}: {', '.join(summary['class_names'])}")
    if summary["coarse_class_names"]:
        print(f"superclasses {len(summary['coarse_class_names'])}: {', '.join(summary['coarse_class_names'])}")
    print(f"mean (RGB)   {summary['mean']}  (training split, 0..1 units)")
    print(f"std  (RGB)   {summary['std']}")
    return 0


def _models_main(args: argparse.Namespace) -> int:
    from helpers.models import describe_models

    table = describe_models()
    if args.json:
        _print_json(table)
        return 0
    print(f"{'model':<22}{'params (10)':>14}{'params (100)':>14}{'MACs/image (10)':>18}")
    for name, row in table.items():
        print(f"{name:<22}{row['params_10']:>14,}{row['params_100']:>14,}{row['macs_10']:>18,}")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="describe the data source and splits")
    data.add_argument("--dataset", choices=DATASETS, required=True)
    data.add_argument("--data-dir", default=None,
                      help="directory (or archive) holding the data; default: $CIFAR_DATA_DIR, else the Keras download")
    data.add_argument("--validation-size", type=int, default=5000)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    data.set_defaults(handler=_data_main)

    models = commands.add_parser("models", help="list registered models with size and cost")
    models.add_argument("--json", action="store_true")
    models.set_defaults(handler=_models_main)

    try:
        from helpers import cli_train
    except ImportError:  # the engine is optional until it lands
        cli_train = None
    if cli_train is not None:
        train = commands.add_parser("train", help="run one experiment (cached, resumable)")
        cli_train.add_train_arguments(train)
        cli_train.add_from_record_argument(train)
        cli_train.add_recipe_argument(train)
        train.set_defaults(handler=cli_train.train_main)
        lr_find = commands.add_parser("lr-find", help="LR range test for one configuration")
        cli_train.add_train_arguments(lr_find)
        if hasattr(cli_train, "add_lr_find_arguments"):
            cli_train.add_lr_find_arguments(lr_find)
        lr_find.set_defaults(handler=cli_train.lr_find_main)

    from helpers import series

    records = commands.add_parser("records", help="a profile's runs: which are finished, their measured "
                                  "budget per notebook; --export copies them into records/<profile>/")
    series.add_arguments(records)
    records.set_defaults(handler=series.records_main)

    try:
        # helpers.report checks at import that the report extra is installed.
        from helpers import report
    except ImportError as error:
        missing = error.name or str(error)
        # Say what to install instead of argparse's "invalid choice: 'report'".
        render = commands.add_parser("report", help="execute the notebooks and render report/ "
                                     "(needs the report extra)")
        render.set_defaults(handler=lambda args: _missing_report_extra(missing), takes_any_arguments=True)
    else:
        render = commands.add_parser("report", help="execute the notebooks and render report/")
        report.add_report_arguments(render)
        render.set_defaults(handler=report.report_main)
    return parser


def _missing_report_extra(missing: str) -> int:
    print(f"error: the report needs the package {missing!r}, which is not installed. Install the "
          "report extra: pip install -c constraints.txt -e \".[report]\"", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the process exit status.

    TensorFlow's C++ start-up lines are silenced by importing ``helpers``
    (see ``helpers/__init__.py``), which this module's import already did.
    """
    parser = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        # Domain errors (CifarDataError is a ValueError) carry their own
        # advice; a traceback would only bury it.
        print(f"error: {error}", file=sys.stderr)
        return 2
