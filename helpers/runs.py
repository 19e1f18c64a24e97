"""Run identity: which run a configuration names, where it lives, whether it is done.

A run's id hashes the configuration's id fields
(:meth:`ExperimentConfig.id_fields`), the schema version and a digest of the
exact pixels and labels of the train, validation and test splits it trains
on: ``<model>-<dataset>-<12 hex digits>``. Moving the data keeps every id; a
different copy of the dataset gets runs of its own.

Computing the data digest needs the decoded arrays; the data module's source
fingerprint (path, size, mtime and a content sample of the archive) does
not. The data-identity memo (``<runs_dir>/.data_identities.json``) maps the
one to the other, so looking up a run whose data was hashed before costs a
file ``stat``: the run cache answers without reading the data.

This module imports neither TensorFlow nor Keras: a cache hit never pays for
them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import weakref
from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers import config as project_config
from helpers import data as data_module
from helpers.experiment import CONFIG_SCHEMA_VERSION, ExperimentConfig, canonical_json
from helpers.records import FINISHED_STATUSES, RECORD_FILE_NAME, RunRecord, stale_measurements, write_json_atomic

DATA_IDENTITY_FILE = ".data_identities.json"


@dataclasses.dataclass(frozen=True, eq=False)
class RunData:
    """The arrays one run trains on, with where they came from."""

    name: str
    source: str
    source_fingerprint: str | None
    num_classes: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def content_digest(data: RunData) -> str:
    """20 hex digits of sha256 over the dataset name, class count and every split's bytes."""
    digest = hashlib.sha256()
    digest.update(f"{data.name}|{data.num_classes}".encode())
    for array in (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test):
        array = np.ascontiguousarray(array)
        digest.update(f"|{array.dtype.str}{array.shape}|".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:20]


def as_run_data(data: Any, config: ExperimentConfig) -> RunData:
    """Checks a caller's CifarData-like object against the configuration.

    The validation split is taken as given (its size must match the
    configuration); a ``train_size`` smaller than the data's training split
    takes the same stratified subset ``load_cifar`` would, and likewise
    ``test_size``.

    Raises:
        ValueError: naming what does not match.
    """
    required = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    missing = [name for name in required if not hasattr(data, name)]
    if missing:
        raise ValueError(
            f"data must be a helpers.data.CifarData (or alike) with {list(required)}. "
            f"Received: an object of type {type(data).__name__} lacking {missing}"
        )
    name = getattr(data, "name", config.dataset)
    if name != config.dataset:
        raise ValueError(
            f"data holds {name!r} but the configuration says dataset={config.dataset!r}. "
            f"Received: data.name={name!r}"
        )
    num_classes = int(getattr(data, "num_classes", 0) or (10 if config.dataset == "cifar10" else 100))
    x_train, y_train = np.asarray(data.x_train), np.asarray(data.y_train)
    x_val, y_val = np.asarray(data.x_val), np.asarray(data.y_val)
    if x_val.shape[0] != config.validation_size:
        raise ValueError(
            f"data has a validation split of {x_val.shape[0]} images but the configuration "
            f"asks for validation_size={config.validation_size}; set validation_size to "
            f"{x_val.shape[0]} or load the data with the configuration's size. "
            f"Received: validation_size={config.validation_size}"
        )
    if config.train_size is not None and config.train_size != x_train.shape[0]:
        if config.train_size > x_train.shape[0]:
            raise ValueError(
                f"train_size={config.train_size} exceeds the {x_train.shape[0]} training "
                f"images of the data passed in. Received: train_size={config.train_size}"
            )
        chosen, _ = data_module.stratified_split(y_train, config.train_size, config.data_seed + 1)
        x_train, y_train = x_train[chosen], y_train[chosen]
    x_test, y_test = np.asarray(data.x_test), np.asarray(data.y_test)
    if config.test_size is not None and config.test_size != x_test.shape[0]:
        if config.test_size > x_test.shape[0]:
            raise ValueError(
                f"test_size={config.test_size} exceeds the {x_test.shape[0]} test images of "
                f"the data passed in. Received: test_size={config.test_size}"
            )
        chosen, _ = data_module.stratified_split(y_test, config.test_size, data_module.TEST_SUBSET_SEED)
        x_test, y_test = x_test[chosen], y_test[chosen]
    return RunData(
        name=name,
        source=str(getattr(data, "source", "in-memory arrays")),
        source_fingerprint=getattr(data, "source_fingerprint", None),
        num_classes=num_classes,
        x_train=x_train, y_train=y_train,
        x_val=x_val, y_val=y_val,
        x_test=x_test, y_test=y_test,
    )


def load_run_data(config: ExperimentConfig) -> RunData:
    """The splits ``config`` names, loaded through ``helpers.data.load_cifar``.

    Raises:
        helpers.data.CifarDataError: when the data cannot be found.
    """
    loaded = data_module.load_cifar(
        config.dataset,
        data_dir=config.data_dir,
        validation_size=config.validation_size,
        train_size=config.train_size,
        test_size=config.test_size,
        seed=config.data_seed,
    )
    return as_run_data(loaded, config)


class DataIdentityMemo:
    """Remembers content digests of loaded splits, keyed by source fingerprint.

    The second and later lookups of a configuration's data cost a file
    ``stat`` instead of decoding the data.
    """

    def __init__(self, runs_dir: Path):
        self.path = Path(runs_dir) / DATA_IDENTITY_FILE

    @staticmethod
    def key(fingerprint: str, config: ExperimentConfig) -> str:
        return (f"{fingerprint}|val={config.validation_size}|train={config.train_size}"
                f"|test={config.test_size}|seed={config.data_seed}")

    def _entries(self) -> dict:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> str | None:
        digest = self._entries().get(key)
        return digest if isinstance(digest, str) else None

    def put(self, key: str, digest: str) -> None:
        entries = self._entries()
        entries[key] = digest
        try:
            write_json_atomic(self.path, entries)
        except OSError:
            pass  # a read-only runs directory only loses the shortcut


def source_fingerprint(config: ExperimentConfig) -> str | None:
    """The data module's cheap source fingerprint, or None if unavailable."""
    try:
        source, _ = data_module.resolve_source(config.dataset, config.data_dir)
        return data_module.source_fingerprint(source, data_module.DATASETS[config.dataset])
    except (AttributeError, KeyError, OSError):
        return None


def make_run_id(config: ExperimentConfig, data_digest: str) -> str:
    """``<model>-<dataset>-<12 hex digits>`` for a configuration and a data digest."""
    payload = {"schema": CONFIG_SCHEMA_VERSION, "config": config.id_fields(), "data": data_digest}
    digest = hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:12]
    model = re.sub(r"[^a-z0-9]+", "_", config.model.lower()).strip("_")[:40] or "model"
    return f"{model}-{config.dataset}-{digest}"


# Content digests of caller-supplied data objects, per subset: a notebook that
# loads the data once and runs many configurations hashes it once per subset.
# (The arrays of a CifarData are treated as immutable, as the dataclass is.)
_SUPPLIED_DATA_DIGESTS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def resolve_identity(config: ExperimentConfig, data: Any, runs_dir: Path) -> tuple[str, RunData | None]:
    """The run id, and the data when it had to be loaded (None when the memo knew it).

    Raises:
        helpers.data.CifarDataError: if the data cannot be found.
    """
    if data is not None:
        run_data = as_run_data(data, config)
        key = (config.train_size, config.data_seed, config.validation_size)
        try:
            digests = _SUPPLIED_DATA_DIGESTS.setdefault(data, {})
        except TypeError:  # not weak-referenceable: hash every time
            digests = {}
        if key not in digests:
            digests[key] = content_digest(run_data)
        return make_run_id(config, digests[key]), run_data
    fingerprint = source_fingerprint(config)
    memo = DataIdentityMemo(runs_dir)
    if fingerprint is not None:
        digest = memo.get(memo.key(fingerprint, config))
        if digest is not None:
            return make_run_id(config, digest), None
    run_data = load_run_data(config)
    digest = content_digest(run_data)
    if run_data.source_fingerprint or fingerprint:
        memo.put(memo.key(run_data.source_fingerprint or fingerprint, config), digest)
    return make_run_id(config, digest), run_data


def resolve_run_id(
    config: ExperimentConfig,
    data: Any = None,
    runs_dir: str | os.PathLike | None = None,
) -> str:
    """The id ``helpers.engine.run(config, data=data)`` would store its record under.

    Raises:
        helpers.data.CifarDataError: if the data cannot be found.

    Used in: 05_cyclical_lr, 08_summary (the LR range test's cache key, studies.cached_record)
    """
    runs_dir = Path(runs_dir) if runs_dir is not None else project_config.RUNS_DIR
    run_id, _ = resolve_identity(config, data, runs_dir)
    return run_id


# -- where a run lives -------------------------------------------------------


def worker_task() -> tuple[str, int] | None:
    """This process's (task type, index) from ``TF_CONFIG``; None outside a cluster."""
    raw = os.environ.get(project_config.TF_CONFIG_ENV)
    if not raw:
        return None
    try:
        task = json.loads(raw).get("task", {})
        return str(task.get("type", "worker")), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError):
        return None


def is_chief() -> bool:
    """True unless ``TF_CONFIG`` makes this process a non-chief worker."""
    task = worker_task()
    if task is None:
        return True
    cluster = json.loads(os.environ[project_config.TF_CONFIG_ENV]).get("cluster", {})
    task_type, index = task
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and index == 0


def run_directory(runs_dir: Path, run_id: str) -> Path:
    """``<runs_dir>/<run_id>``; a non-chief worker keeps its copy in ``<type>-<index>`` below it."""
    run_dir = Path(runs_dir) / run_id
    if not is_chief():
        task_type, index = worker_task()
        run_dir = run_dir / f"{task_type}-{index}"
    return run_dir


def cached_record(run_dir: Path, warn: Callable[[str], None]) -> RunRecord | None:
    """The run's finished record ("completed" or "diverged"), else None.

    A record that cannot be read (cut short, not JSON, not a run record) is
    named through ``warn`` in one line, and None returned: the run is
    trained again and its record replaced. So is a finished record whose
    training-image measurements are stale
    (:func:`helpers.records.stale_measurements`).
    """
    path = run_dir / RECORD_FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        warn(f"{path}: cannot read the run record ({error.strerror}); the run will be retrained.")
        return None
    try:
        record = RunRecord.from_json(text)
    except json.JSONDecodeError as error:
        problem = "empty" if not text.strip() else f"cut short or not JSON ({error.msg} at character {error.pos})"
        warn(f"{path}: damaged run record, {problem}; the run will be retrained.")
        return None
    except ValueError as error:
        warn(f"{path}: damaged run record ({error}); the run will be retrained.")
        return None
    record.path = path
    if record.status not in FINISHED_STATUSES:
        return None
    stale = stale_measurements(record)
    if stale is not None:
        warn(f"{path}: {stale}; the run will be retrained under the same id.")
        return None
    return record
