"""The experiment engine: one configuration in, one reproducible run record out.

``run(config)`` looks the run up, else trains it. A run's id hashes the
configuration's id fields and the *content* of the data it trains on
(:mod:`helpers.runs`); a run whose record says ``completed`` or ``diverged``
is returned at once, without loading the data, building the model or
importing TensorFlow, so re-rendering the report retrains nothing. Otherwise
:func:`helpers.training.train` trains it with ``model.fit``, resuming from
its last checkpoint, and writes its :class:`~helpers.records.RunRecord`.

Where each part lives:

* :mod:`helpers.runs`: run ids, the data-identity memo, the run cache;
* :mod:`helpers.training`: the training loop, divergence, the record,
  ``load_trained_model`` and ``find_learning_rate``;
* :mod:`helpers.compilation`: the model, its optimizer (weight decay on
  kernels only), loss and metrics;
* :mod:`helpers.checkpoints`: per-epoch checkpoints and the run lock;
* :mod:`helpers.diagnostics`: gradient norms and gates on a fixed batch;
* :mod:`helpers.distribution`: tf.distribute strategies;
* :mod:`helpers.progress`: progress bars and messages;
* :func:`helpers.environment.describe_environment`: the machine stamp.

The names below are the engine's public face; notebooks, the command line,
tests and benchmarks import them from here. Those that need TensorFlow are
loaded on first use, so ``import helpers.engine`` stays cheap.
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from typing import Any

from helpers import config as project_config
from helpers import model_registry, runs
from helpers.checkpoints import RunLock
from helpers.experiment import SCHEDULES, ExperimentConfig
from helpers.progress import Reporter, resolve_progress
from helpers.records import RunRecord, list_records, load_record
from helpers.runs import resolve_run_id

__all__ = [
    "run",
    "check_names",
    "resolve_run_id",
    "load_record",
    "list_records",
    "load_trained_model",
    "find_learning_rate",
    "make_strategy",
    "split_cpu_into_logical_devices",
    "RunRecord",
    "ExperimentConfig",
]

# Public names that import TensorFlow, and the module that holds each.
_LAZY = {
    "load_trained_model": "helpers.training",
    "find_learning_rate": "helpers.training",
    "make_strategy": "helpers.distribution",
    "split_cpu_into_logical_devices": "helpers.distribution",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def run(
    config: ExperimentConfig,
    *,
    runs_dir: str | os.PathLike | None = None,
    data: Any = None,
    progress: bool | str | None = True,
    resume: bool = True,
) -> RunRecord:
    """Trains one configuration, or returns its cached record.

    Args:
        config: What to train.
        runs_dir: Where records and checkpoints live; defaults to
            ``helpers.config.RUNS_DIR``. The run writes
            ``<runs_dir>/<run_id>/record.json`` (after every epoch, status
            "running", and at the end), per-epoch checkpoints while training
            and ``model.weights.h5`` when it completes.
        data: Optional pre-loaded ``helpers.data.CifarData`` (or an object
            with the same split attributes, e.g. synthetic arrays in tests).
            Its validation split must have ``config.validation_size`` images;
            ``config.train_size`` selects a stratified subset of its training
            split. The run id then hashes these arrays, so the same arrays
            give the same id as loading them through the configuration.
        progress: True/"auto", "bar", "lines", or False/"none"; see
            :func:`helpers.progress.resolve_progress`.
        resume: Continue from the last checkpoint of an unfinished run with
            the same id (True), or discard it and start over (False).

    Returns:
        The :class:`RunRecord`, status "completed" or "diverged". A cached
        finished record is returned without loading data or building a model.

    Raises:
        ValueError: for a configuration the model, schedule or data reject;
            an unknown model name or option before any data is read.
        helpers.data.CifarDataError: when the data cannot be found.
        RuntimeError: when another live process is training the same run.
        KeyboardInterrupt: re-raised after the record was saved as
            "interrupted" (the next call resumes it). Other errors likewise
            mark the record "interrupted" and propagate; a diverging loss
            never raises.

    Used in: 01_vgg_gradients through 07_cifar100.
    """
    if not isinstance(config, ExperimentConfig):
        raise ValueError(f"config must be an ExperimentConfig. Received: {type(config).__name__}")
    started = time.perf_counter()
    reporter = Reporter(resolve_progress(progress))
    runs_dir = Path(runs_dir) if runs_dir is not None else project_config.RUNS_DIR
    check_names(config)
    strategy = None
    if config.strategy is not None:
        # A multi-worker strategy must exist before TensorFlow runs any op.
        strategy = importlib.import_module("helpers.distribution").make_strategy(config.strategy)

    run_id, run_data = runs.resolve_identity(config, data, runs_dir)
    run_dir = runs.run_directory(runs_dir, run_id)
    cached = _cached_run(run_dir, run_id, config, reporter)
    if cached is not None:
        return cached

    # Not cached: from here on TensorFlow is imported.
    training = importlib.import_module("helpers.training")
    with RunLock(run_dir):
        # Another process may have finished this run since the check above
        # (while TensorFlow was imported, or while it held the lock): training
        # now would start over and overwrite its completed record.
        # A damaged record was named by the first check already: not twice.
        cached = _cached_run(run_dir, run_id, config, reporter, warn=lambda message: None)
        if cached is not None:
            return cached
        if run_data is None:
            run_data = runs.load_run_data(config)
        return training.train(config, run_data, run_id=run_id, run_dir=run_dir, strategy=strategy,
                              reporter=reporter, resume=resume, is_chief=runs.is_chief(),
                              started=started)


def _cached_run(run_dir: Path, run_id: str, config: ExperimentConfig, reporter, warn=None) -> RunRecord | None:
    """The finished record of this run, or None when it must be trained (``warn``: reporter.warn)."""
    cached = runs.cached_record(run_dir, warn or reporter.warn)
    if cached is None or cached.config.id_fields() != config.id_fields():
        return None
    # The caller's label, data directory and steps per execution (none of
    # which changes the result) replace the stored ones in the copy
    # returned, so legends read what this notebook called the run.
    cached.config = config
    reporter.log(f"[{run_id}] cached: {cached.status}, {cached.epochs_completed} epochs ({config.label})")
    return cached


def check_names(config: ExperimentConfig) -> None:
    """Refuses an unknown model, model option or schedule, before any data is read.

    Raises:
        ValueError: naming the allowed names or options.

    Used in: run, helpers.cli_train
    """
    model_registry.check_model(config.model, config.model_options)
    if config.schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule. Allowed names: {', '.join(SCHEDULES)}. "
                         f"Received: schedule={config.schedule!r}")

