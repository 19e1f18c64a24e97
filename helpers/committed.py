"""Committed run records: the finished records of a profile's series, in the repository.

A profile's committed records live in ``records/<profile>/`` (``<run id>/record.json``
and the LR range test under ``lr_find/``), JSON only: no checkpoints, no
weights. They are what lets anyone re-render the committed report without
training (``python -m helpers report --profile standard --render-only``) and
retrain any one of them (``python -m helpers train --from-record PATH``).

Looking a run up here is by its **configuration** (the id fields,
``ExperimentConfig.config_hash``), not by its run id: a run id also hashes
the exact pixels it trained on, and a reader's copy of CIFAR (the Keras
download) is not byte-identical to the copy the records were trained on. So
the records answer whatever copy of the data the reader has, and each
record's ``data`` field says which copy it was trained on. Two committed
records with one configuration (trained on two copies of the data) are an
error, named with both paths.

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from helpers import config as project_config
from helpers.experiment import ExperimentConfig
from helpers.records import FINISHED_STATUSES, RECORD_FILE_NAME, RunRecord, stale_measurements

RANGE_TEST_DIR = "lr_find"


class MissingRunError(ValueError):
    """A run (or range test) the series needs is not among the records it may read."""


def records_dir(profile: str) -> Path:
    """``records/<profile>`` in the project: where that profile's committed records live."""
    return project_config.RECORDS_DIR / profile


class RecordFolder:
    """Finished run records and range tests in one folder, looked up by configuration.

    The folder is scanned once, on first use.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._records: dict[str, list[Path]] | None = None
        self._range_tests: dict[tuple[str, int], list[Path]] | None = None

    # -- scanning -------------------------------------------------------------

    def _scan(self) -> None:
        records: dict[str, list[Path]] = {}
        for path in sorted(self.path.glob(f"*/{RECORD_FILE_NAME}")):
            payload = _read_json(path)
            config = _config_of(payload, path)
            if payload.get("status") not in FINISHED_STATUSES:
                continue
            records.setdefault(config.config_hash, []).append(path)
        range_tests: dict[tuple[str, int], list[Path]] = {}
        for path in sorted((self.path / RANGE_TEST_DIR).glob("*.json")):
            payload = _read_json(path)
            config = _config_of(payload, path)
            iterations = len(payload.get("learning_rates") or [])
            stem_iterations = path.stem.rsplit("-", 1)[-1]
            if stem_iterations.isdigit():
                iterations = int(stem_iterations)
            range_tests.setdefault((config.config_hash, iterations), []).append(path)
        self._records, self._range_tests = records, range_tests

    @property
    def record_paths(self) -> dict[str, list[Path]]:
        if self._records is None:
            self._scan()
        return self._records

    @property
    def range_test_paths(self) -> dict[tuple[str, int], list[Path]]:
        if self._range_tests is None:
            self._scan()
        return self._range_tests

    # -- look-ups -------------------------------------------------------------

    def record_for(self, config: ExperimentConfig) -> RunRecord | None:
        """The finished record of ``config`` (any copy of the data), or None.

        Raises:
            ValueError: when two records share the configuration.
            MissingRunError: when the record's training-image measurements
                are stale (``helpers.records.stale_measurements``).
        """
        paths = self.record_paths.get(config.config_hash, [])
        if not paths:
            return None
        _only_one(paths, config)
        record = RunRecord.from_json(paths[0].read_text(encoding="utf-8"))
        record.path = paths[0]
        stale = stale_measurements(record)
        if stale is not None:
            raise MissingRunError(
                f"The committed record {paths[0]} cannot be rendered: {stale}. Retrain it with "
                f"`python -m helpers report --profile <profile>` (its run id stays the same), then export it "
                f"with `python -m helpers records --profile <profile> --export`.")
        return record

    def range_test_for(self, config: ExperimentConfig, iterations: int) -> dict[str, Any] | None:
        """The cached LR range test of ``config`` with ``iterations`` steps, or None."""
        paths = self.range_test_paths.get((config.config_hash, iterations), [])
        if not paths:
            return None
        _only_one(paths, config)
        return _read_json(paths[0])


def _only_one(paths: list[Path], config: ExperimentConfig) -> None:
    if len(paths) > 1:
        raise ValueError(f"{len(paths)} committed results share the configuration {config.label!r} "
                         f"(trained on different copies of the data?): {', '.join(map(str, paths))}. "
                         "Keep one of them.")


def _read_json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable committed record ({error}). Restore it from git "
                         "(git checkout -- records/) or delete it and retrain.") from error
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: not a run record (a JSON object was expected). Restore it from git.")
    return payload


def _config_of(payload: dict, path: Path) -> ExperimentConfig:
    try:
        return ExperimentConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: no valid configuration in this committed record ({error}). "
                         "Restore it from git.") from error


# -- the folder the notebooks read, when rendering without training -------------


def active_folder() -> RecordFolder | None:
    """The folder named by ``CIFAR_LAB_RECORDS_DIR``, or None when it is unset.

    ``python -m helpers report --render-only --profile P`` sets it for the
    notebooks' kernels: every run and range test is then read from that
    folder by configuration, nothing is trained, and a missing one is an
    error (:class:`MissingRunError`).
    """
    value = os.environ.get(project_config.RECORDS_DIR_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    cached = _ACTIVE.get(str(path))
    if cached is None:
        cached = _ACTIVE[str(path)] = RecordFolder(path)
    return cached


_ACTIVE: dict[str, RecordFolder] = {}


def missing_run(folder: RecordFolder, label: str, config: ExperimentConfig, what: str = "run") -> MissingRunError:
    """The error for a run the committed records lack: which one, and what to do."""
    return MissingRunError(
        f"The committed records in {folder.path} have no {what} for {label!r} (seed {config.seed}, "
        f"configuration {config.config_hash}); --render-only trains nothing. Train what is missing "
        f"with `python -m helpers report --profile <profile>` (without --render-only), then export it "
        f"with `python -m helpers records --profile <profile> --export`.")
