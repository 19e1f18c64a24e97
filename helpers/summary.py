"""The series' summary table: this execution's results beside the quoted ones.

Rows are headline experiments of notebooks 01-07. The "this run" columns are
read from the run records of the given profile's configurations, looked up
by run id (``helpers.engine.resolve_run_id``): nothing is trained here, and a
run that has not been executed shows as "not run".
"""

from __future__ import annotations

import datetime as _datetime
import math
import platform

from helpers import studies
from helpers.profiles import Profile
from helpers.references import references_for


def _cached_record(config, runs_dir=None):
    from helpers import config as project_config
    from helpers.engine import resolve_run_id
    from helpers.records import load_record

    run_id = resolve_run_id(config, runs_dir=runs_dir)
    try:
        return load_record(run_id, runs_dir or project_config.RUNS_DIR)
    except FileNotFoundError:
        return None


def _headline_configs(profile: Profile, data_dir=None, runs_dir=None) -> list[tuple[str, str, object]]:
    """(summary row, arm description, config) for every headline arm."""
    rows = []
    vgg = studies.vgg_arms(profile, data_dir)
    rows += [("VGG-19 on CIFAR-10", "no BN, Glorot, SGD high rate (the student's set-up)",
              vgg["no BN, Glorot, SGD high rate"]),
             ("VGG-19 on CIFAR-10", "batch norm, SGD high rate", vgg["BN, Glorot, SGD high rate"])]
    for label, config in studies.schedule_arms(profile, data_dir).items():
        rows.append(("ResNet-20 on CIFAR-10", f"schedule: {label}", config))
    depth = studies.depth_arms(profile, data_dir)
    if "ResNet-56" in depth:
        rows.append(("ResNet-56 on CIFAR-10", "step decay", depth["ResNet-56"]))
    for label, config in studies.warmup_arms(profile, data_dir).items():
        rows.append(("ResNet-110 on CIFAR-10", label, config))
    stems = studies.stem_arms(profile, data_dir)
    rows += [("ResNet-50 on CIFAR-10", "ImageNet stem (the student's)", stems["resnet50 imagenet stem"]),
             ("ResNet-50 on CIFAR-10", "CIFAR stem", stems["resnet50 cifar stem"])]
    dropout = studies.dropout_arms(profile, data_dir)
    rows += [("ResNet-18 + dropout on CIFAR-10", "student dropout + aug + wd, plateau", dropout["aug + wd + student dropout"]),
             ("ResNet-18 + dropout on CIFAR-10", "no dropout, aug + wd, plateau", dropout["augmentation + weight decay"])]
    base = studies.cyclical_base(profile, data_dir)
    range_test = studies.learning_rate_range_test(base, profile.lr_find_iterations, runs_dir,
                                                  cached_only=True)
    if range_test is not None:
        cyclical = studies.cyclical_arms(profile, range_test.suggested_base_learning_rate,
                                         range_test.suggested_max_learning_rate, data_dir)
        model = "ResNet-56" if profile.name == "full" else "ResNet-20"
        for label, config in cyclical.items():
            rows.append((f"One-cycle {model} on CIFAR-10" if model == "ResNet-56" else f"Cyclical LR, {model} on CIFAR-10",
                         label, config))
    for label, config in studies.gate_arms(profile, data_dir).items():
        row = "epsilon-ResNet-110 on CIFAR-10" if profile.epsilon_depth == 110 else f"epsilon-ResNet-{profile.epsilon_depth} on CIFAR-10"
        rows.append((row, label, config))
    for label, config in studies.cifar100_arms(profile, data_dir).items():
        row = "ResNet-18 on CIFAR-100" if label.startswith("resnet18") else f"{label} on CIFAR-100"
        rows.append((row, label, config))
    return rows


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{100 * value:.2f}"


def summary_table(profile: Profile, data_dir=None, runs_dir=None):
    """One row per headline arm: this run's test top-1 (and top-5), status,
    epochs, and the student's and published numbers with sources.

    Returns:
        A pandas DataFrame (rendered as the report's summary table).

    Used in: 08_summary
    """
    import pandas as pd

    rows = []
    for experiment, arm, config in _headline_configs(profile, data_dir, runs_dir):
        record = _cached_record(config, runs_dir)
        references = references_for(experiment)
        student = "; ".join(f"{r.value:g} ({r.metric})" for r in references if r.who == "student")
        published = "; ".join(f"{r.value:g} ({r.metric}; {r.source})" for r in references if r.who == "published")
        rows.append({
            "experiment": experiment,
            "arm": arm,
            "status": record.status if record else "not run",
            "epochs": record.epochs_completed if record else None,
            "test top-1 %": _fmt(record.test_metric("accuracy")) if record else "",
            "test top-5 %": _fmt(record.test.get("top5_accuracy")) if record else "",
            "best val %": _fmt(record.best("val_accuracy")) if record and "val_accuracy" in record.history else "",
            "student %": student,
            "published %": published,
            "run id": record.run_id if record else "",
        })
    return pd.DataFrame(rows)


def stamp(profile: Profile) -> str:
    """Profile, date, hardware and software line for the report.

    Used in: 08_summary
    """
    from helpers.engine import describe_environment  # what run records carry

    environment = describe_environment()
    versions = environment.get("versions", {})
    hardware = environment.get("hardware", {})
    git = environment.get("git") or {}
    return (
        f"Profile {profile.name} ({profile.description}); executed "
        f"{_datetime.datetime.now(_datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{hardware.get('cpu', platform.processor())} ({hardware.get('logical_cores')} logical cores"
        f"{', GPUs: ' + ', '.join(hardware['gpus']) if hardware.get('gpus') else ', no GPU'}); "
        f"Python {versions.get('python')}, TensorFlow {versions.get('tensorflow')}, "
        f"Keras {versions.get('keras')}; git {str(git.get('revision'))[:10]}"
        f"{' (uncommitted changes)' if git.get('dirty') else ''}."
    )
