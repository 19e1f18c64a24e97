"""Run records: one JSON file per training run, and the ways to read them back.

A record holds everything a report number needs: the configuration, the data
it ran on, software versions, hardware, git revision, per-epoch history, the
test metrics measured once at the end, timings, diagnostics and a status.
It is written atomically (a temporary file renamed over the old one), so a
killed process leaves either the previous record or the new one, never half
of one.

This module imports neither TensorFlow nor Keras: the report reads hundreds
of records without paying for either.

Layout: ``<runs_dir>/<run_id>/record.json`` beside the run's checkpoints.

Non-finite numbers (a diverged loss) are written as JSON ``null`` so the
files stay strict JSON; :meth:`RunRecord.curve` turns them back into NaN.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from helpers import atomic
from helpers.experiment import ExperimentConfig

RECORD_SCHEMA_VERSION = 1
RECORD_FILE_NAME = "record.json"

# What the per-epoch measurements on training images were taken on. 1: the
# first N training images and the first batch, which in a copy of CIFAR
# stored sorted by class are one or two classes. 2: a class-stratified,
# seeded subset (``helpers.training.measurement_indices``). A finished
# record of version 1 that holds such measurements is not served from the
# cache (:func:`stale_measurements`); its run id stays the same. 3: an
# epsilon-ResNet built without gates (epsilon 0) also records its blocks'
# largest residual responses (:func:`measures_block_responses`); a version-2
# record of such a run lacks them and is retrained.
MEASUREMENT_VERSION = 3

# A finished result: served from the cache instead of training again.
FINISHED_STATUSES = ("completed", "diverged")
STATUSES = ("running", "completed", "diverged", "interrupted")


def _json_ready(value: Any) -> Any:
    """Replaces NaN and infinities by None, numpy scalars by Python numbers."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Writes strict JSON to ``path`` atomically (see :mod:`helpers.atomic`).

    After a crash the path holds either the old content or the new, complete
    one. Non-finite numbers are written as null.
    """
    atomic.write_text(path, json.dumps(_json_ready(payload), indent=1, allow_nan=False))


# The type of each field a record file may hold (None allowed where the
# attribute's default is None), checked when a record is read so that a
# file of the wrong shape is reported as damaged instead of failing later.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "status": (str,), "history": (dict,), "test": (dict,),
    "test_predictions": (dict,), "validation_predictions": (dict,),
    "diverged_epoch": (int, type(None)), "wall_seconds": (int, float),
    "train_images_per_second": (int, float, type(None)), "diagnostics": (dict,), "data": (dict,),
    "environment": (dict,), "parameter_count": (int, type(None)), "schedule": (dict,),
    "sessions": (list,), "created": (str, type(None)), "finished": (str, type(None)),
    "error": (str, type(None)), "notes": (list,), "schema_version": (int,),
    "measurement_version": (int,),
}


def _check_shape(payload: Mapping[str, Any]) -> None:
    """Raises ValueError naming the first field of the wrong type or shape."""
    for key, types in _FIELD_TYPES.items():
        if key in payload and (not isinstance(payload[key], types) or isinstance(payload[key], bool)):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in types)
            raise ValueError(f"field {key!r} must be {names}. Received: {type(payload[key]).__name__}")
    if payload["status"] not in STATUSES:
        raise ValueError(f"field 'status' must be one of {list(STATUSES)}. Received: {payload['status']!r}")
    for key, values in payload.get("history", {}).items():
        if not isinstance(values, list):
            raise ValueError(f"history[{key!r}] must be a list. Received: {type(values).__name__}")
    if not isinstance(payload["config"], Mapping):
        raise ValueError(f"field 'config' must be an object. Received: {type(payload['config']).__name__}")


@dataclasses.dataclass
class RunRecord:
    """One training run, as stored in ``record.json``.

    Attributes:
        run_id: Hash of the configuration's id fields and the data identity.
        status: "completed", "diverged" (loss became NaN or infinite),
            "interrupted" (stopped by the user or an error; resumable) or
            "running" (written while training, after every epoch).
        config: The full :class:`ExperimentConfig`.
        history: Per-epoch lists, one entry per epoch, epoch 1 first: "epoch",
            "loss", "accuracy", ("top5_accuracy" with more than 10 classes),
            the same with a "val_" prefix when there is a validation split,
            "learning_rate" (at the epoch's first step), "momentum" (when the
            schedule cycles it), "epoch_seconds" (training and validation),
            "train_seconds" (training only). Two-output models add
            per-output entries ("logits_loss", "side_logits_loss", ...).
        test: Test-split metrics measured once after the last epoch:
            "loss", "accuracy" and, with more than 10 classes, "top5_accuracy".
        test_predictions: The final weights' predictions on the same test
            images, per image (a predict pass right after ``evaluate``), for
            paired comparisons between arms
            (``helpers.intervals``): "images" (count), "labels_digest"
            (sha256 of the test labels in order, so two records can be
            checked to be scored on the same images), and per metric
            ("accuracy", "top5_accuracy") the per-image 0/1 scores packed
            as bits, base64 (:func:`pack_bits`). Empty in records written
            before it existed.
        validation_predictions: The final weights' predicted class for
            every validation image, in the validation split's order (a
            predict pass after the test predictions), so that a confusion
            matrix can be drawn from the record alone, without the weights
            (committed records are JSON only): "images" (count),
            "labels_digest" (sha256 of the validation labels in order, as
            :func:`labels_digest`, to check the split is the one the
            predictions were made on) and "predicted" (the classes as
            uint8, or little-endian uint16 beyond 255 classes, base64;
            :func:`pack_classes`). Read with :meth:`validation_predicted`.
            Empty for runs without a validation split and in records
            written before it existed.
        diverged_epoch: The epoch (1-based) whose loss became non-finite.
        wall_seconds: Time spent in ``run`` over all sessions of this run
            (resumes add up), from data loading to the final record.
        train_images_per_second: Training images per second of pure training
            time, excluding each session's first epoch (graph tracing) when
            there are later ones.
        diagnostics: "gradient_norms" {layer: [norm per epoch]} with entry 0
            measured before the first step and entry e after epoch e, listed
            in "gradient_norm_epochs"; for gated models "gates"
            {block: [state per epoch]} (same epochs),
            "gate_responses" {block: [largest |F| per epoch]}, the value
            each gate compares with epsilon, and "discarded_blocks" [count
            per epoch] (inference mode, as the trained net is evaluated) and
            "discarded_blocks_training" [count per epoch] (the same probe
            batch in training mode, batch norm on batch statistics, as
            ``fit`` sees the gates).
        data: Dataset, source, sizes and content identity of the data used.
        environment: "git" {"revision", "dirty"} (None outside a git
            checkout), "versions" {python, tensorflow, keras, numpy},
            "hardware" {cpu, logical_cores, gpus, platform}, "dtype_policy",
            "replicas", "steps_per_execution" (of the latest session).
        parameter_count: Trainable plus non-trainable parameters.
        schedule: The schedule's own description.
        sessions: One entry per process that worked on this run: first
            epoch trained, seed used for the data order, start time.
        created, finished: ISO-8601 UTC timestamps.
        error: For "interrupted" runs, what stopped them.
        notes: Remarks from the engine (e.g. an option that was ignored).
        measurement_version: How the training-image measurements
            ("train_eval_*" in the history, the diagnostics) chose their
            images; see ``MEASUREMENT_VERSION``. 1 in records written
            before the field existed.

    Used in: every notebook's Findings and the summary table.
    """

    run_id: str
    status: str
    config: ExperimentConfig
    history: dict[str, list] = dataclasses.field(default_factory=dict)
    test: dict[str, Any] = dataclasses.field(default_factory=dict)
    test_predictions: dict[str, Any] = dataclasses.field(default_factory=dict)
    validation_predictions: dict[str, Any] = dataclasses.field(default_factory=dict)
    diverged_epoch: int | None = None
    wall_seconds: float = 0.0
    train_images_per_second: float | None = None
    diagnostics: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    environment: dict[str, Any] = dataclasses.field(default_factory=dict)
    parameter_count: int | None = None
    schedule: dict[str, Any] = dataclasses.field(default_factory=dict)
    sessions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    created: str | None = None
    finished: str | None = None
    error: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    schema_version: int = RECORD_SCHEMA_VERSION
    measurement_version: int = MEASUREMENT_VERSION
    path: Path | None = dataclasses.field(default=None, compare=False, repr=False)

    # -- I/O ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The record as strict-JSON-ready data (non-finite numbers -> None).

        Besides the attributes, it repeats a few values at the top level for
        readers that want them without digging: "seed", "name",
        "epochs_completed".
        """
        payload = {
            "schema_version": self.schema_version,
            "measurement_version": self.measurement_version,
            "run_id": self.run_id,
            "name": self.config.name,
            "status": self.status,
            "seed": self.config.seed,
            "epochs_completed": self.epochs_completed,
            "diverged_epoch": self.diverged_epoch,
            "config": self.config.to_dict(),
            "history": self.history,
            "test": self.test,
            "test_predictions": self.test_predictions,
            "validation_predictions": self.validation_predictions,
            "wall_seconds": self.wall_seconds,
            "train_images_per_second": self.train_images_per_second,
            "diagnostics": self.diagnostics,
            "data": self.data,
            "environment": self.environment,
            "parameter_count": self.parameter_count,
            "schedule": self.schedule,
            "sessions": self.sessions,
            "created": self.created,
            "finished": self.finished,
            "error": self.error,
            "notes": self.notes,
        }
        return _json_ready(payload)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], path: Path | None = None) -> "RunRecord":
        """Rebuilds a record from :meth:`to_dict` output.

        Raises:
            ValueError: if the payload is not a run record of a known schema.
        """
        where = f" ({path})" if path else ""
        required = ("run_id", "status", "config")
        if not isinstance(payload, Mapping) or any(key not in payload for key in required):
            raise ValueError(f"Not a run record{where}: expected keys {list(required)}. "
                             f"Received: {sorted(payload) if isinstance(payload, Mapping) else type(payload).__name__}")
        version = payload.get("schema_version", 1)
        if isinstance(version, int) and version > RECORD_SCHEMA_VERSION:
            raise ValueError(
                f"Run record{where} has schema version {version}, newer than this code's "
                f"{RECORD_SCHEMA_VERSION}: update the project. Received: {version}"
            )
        try:
            _check_shape(payload)
            config = ExperimentConfig.from_dict(payload["config"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"Not a run record{where}: {error}") from None
        fields = {field.name for field in dataclasses.fields(cls)}
        values = {key: payload[key] for key in fields if key in payload and key not in ("config", "path")}
        # Records written before the field existed measured on the first images.
        values.setdefault("measurement_version", 1)
        return cls(config=config, path=path, **values)

    @classmethod
    def from_json(cls, text: str, path: Path | None = None) -> "RunRecord":
        return cls.from_dict(json.loads(text), path=path)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the record atomically to ``path`` and remembers it."""
        write_json_atomic(path, self.to_dict())
        self.path = Path(path)
        return self.path

    # -- reading --------------------------------------------------------------

    @property
    def epochs_completed(self) -> int:
        return len(self.history.get("epoch", []))

    @property
    def finished_ok(self) -> bool:
        """True for a result worth caching: completed or diverged."""
        return self.status in FINISHED_STATUSES

    def curve(self, metric: str) -> list[float]:
        """The per-epoch values of ``metric`` with missing values as NaN.

        Raises:
            KeyError: naming the metrics that exist, if ``metric`` does not.
        """
        if metric not in self.history:
            raise KeyError(
                f"Metric {metric!r} is not in run {self.run_id}'s history; it has "
                f"{sorted(self.history)}."
            )
        return [math.nan if value is None else float(value) for value in self.history[metric]]

    def final(self, metric: str) -> float:
        """The last epoch's value of ``metric`` (NaN if it was not finite)."""
        values = self.curve(metric)
        if not values:
            raise ValueError(f"Run {self.run_id} has no epochs recorded. Received: metric={metric!r}")
        return values[-1]

    def best(self, metric: str, mode: str = "auto") -> float:
        """The best value of ``metric`` over the epochs, ignoring NaN.

        Args:
            metric: A history key, e.g. "val_accuracy".
            mode: "max", "min" or "auto" (min for names containing "loss").

        Returns:
            The best finite value, or NaN if there is none.
        """
        if mode == "auto":
            mode = "min" if "loss" in metric else "max"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto'. Received: {mode!r}")
        values = [value for value in self.curve(metric) if math.isfinite(value)]
        if not values:
            return math.nan
        return min(values) if mode == "min" else max(values)

    def best_epoch(self, metric: str, mode: str = "auto") -> int | None:
        """The 1-based epoch at which :meth:`best` was reached (first such)."""
        best = self.best(metric, mode)
        if math.isnan(best):
            return None
        return self.history["epoch"][self.curve(metric).index(best)]

    def test_metric(self, metric: str = "accuracy") -> float:
        """A test metric, NaN if missing or not finite."""
        value = self.test.get(metric)
        return math.nan if value is None else float(value)

    def test_correct(self, metric: str = "accuracy") -> np.ndarray | None:
        """Per-image 0/1 test scores of ``metric`` ("accuracy" or
        "top5_accuracy"), in the test split's order; None when the record
        holds none (written before per-image scores were kept).

        Raises:
            ValueError: naming the record's file, when the stored scores are
                damaged (not base64, or a different count of images).
        """
        packed = self.test_predictions.get(metric)
        if packed is None:
            return None
        images = int(self.test_predictions.get("images", 0))
        try:
            return unpack_bits(packed, images)
        except ValueError as error:
            raise ValueError(f"Run record {self.path or self.run_id}: damaged per-image test scores for "
                             f"{metric!r} ({error}). Delete the run folder to retrain it.") from None

    def validation_predicted(self) -> np.ndarray | None:
        """The final weights' predicted class of every validation image, in
        the validation split's order, as int64; None when the record holds
        none (no validation split, or written before they were kept).

        Compare ``validation_predictions["labels_digest"]`` with
        :func:`labels_digest` of the validation labels before pairing them.

        Raises:
            ValueError: naming the record's file, when the stored classes are
                damaged (not base64, or a different count of images).
        """
        return self._validation_classes("predicted", "validation predictions")

    def _validation_classes(self, key: str, what: str) -> np.ndarray | None:
        """``validation_predictions[key]`` unpacked; None when absent; ValueError naming the file if damaged."""
        packed = self.validation_predictions.get(key)
        if packed is None:
            return None
        images = int(self.validation_predictions.get("images", 0))
        try:
            return unpack_classes(packed, images)
        except ValueError as error:
            raise ValueError(f"Run record {self.path or self.run_id}: damaged {what} "
                             f"({error}). Delete the run folder to retrain it.") from None

    def validation_labels(self) -> np.ndarray | None:
        """The true labels the validation predictions were made on, as int64;
        None for records that store none (older ones keep only their digest).

        Raises:
            ValueError: naming the record's file, when they are damaged or do
                not match their digest.
        """
        labels = self._validation_classes("labels", "validation labels")
        if labels is None:
            return None
        if labels_digest(labels) != self.validation_predictions.get("labels_digest"):
            raise ValueError(f"Run record {self.path or self.run_id}: its validation labels do not match "
                             "their digest. Delete the run folder to retrain it.")
        return labels

    def summary(self) -> dict[str, Any]:
        """One flat row for results tables."""
        row = {
            "run_id": self.run_id,
            "name": self.config.label,
            "model": self.config.model,
            "dataset": self.config.dataset,
            "status": self.status,
            "epochs": self.epochs_completed,
            "seed": self.config.seed,
            "test_accuracy": self.test_metric("accuracy"),
            "wall_seconds": self.wall_seconds,
            "images_per_second": self.train_images_per_second,
        }
        if "top5_accuracy" in self.test:
            row["test_top5_accuracy"] = self.test_metric("top5_accuracy")
        if "val_accuracy" in self.history:
            row["best_val_accuracy"] = self.best("val_accuracy")
        return row


def pack_bits(scores) -> str:
    """0/1 scores as base64 of their packed bits (10,000 images: 1,668 characters)."""
    array = np.asarray(scores).astype(bool).ravel()
    return base64.b64encode(np.packbits(array).tobytes()).decode("ascii")


def unpack_bits(text: str, count: int) -> np.ndarray:
    """The inverse of :func:`pack_bits`: ``count`` scores as a uint8 array of 0/1.

    Raises:
        ValueError: when ``text`` is not base64 or holds too few bits.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as error:
        raise ValueError(f"not base64: {error}") from None
    if len(raw) != (count + 7) // 8:
        raise ValueError(f"{len(raw) * 8} bits stored for {count} images")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[:count]


def pack_classes(predicted, labels, num_classes: int) -> dict[str, Any]:
    """Predicted classes as a record's ``validation_predictions`` entry.

    Args:
        predicted: One class index per image.
        labels: The true labels of the same images, in the same order: kept
            (same encoding) with their digest, so a confusion matrix needs
            only the record, whatever copy of the data a reader has.
        num_classes: Up to 255 classes are stored one byte per image,
            beyond that two (little-endian uint16).

    Returns:
        {"images", "labels_digest", "predicted", "labels"}: strict JSON;
        10,000 images take 13,336 base64 characters each as uint8.

    Raises:
        ValueError: when ``predicted`` and ``labels`` differ in length or a
            class is outside 0..num_classes - 1.
    """
    predicted = np.asarray(predicted).ravel()
    labels = np.asarray(labels).ravel()
    if predicted.shape[0] != labels.shape[0]:
        raise ValueError(f"{predicted.shape[0]} predictions for {labels.shape[0]} labels. "
                         f"Received: predicted of shape {predicted.shape}")
    if predicted.size and (predicted.min() < 0 or predicted.max() >= num_classes):
        raise ValueError(f"Predicted classes must lie in 0..{num_classes - 1}. "
                         f"Received: {int(predicted.min())}..{int(predicted.max())}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"Labels must lie in 0..{num_classes - 1}. "
                         f"Received: {int(labels.min())}..{int(labels.max())}")
    dtype = np.dtype(np.uint8) if num_classes <= 255 else np.dtype("<u2")
    return {"images": int(labels.shape[0]), "labels_digest": labels_digest(labels),
            "predicted": base64.b64encode(predicted.astype(dtype).tobytes()).decode("ascii"),
            "labels": base64.b64encode(labels.astype(dtype).tobytes()).decode("ascii")}


def unpack_classes(text: str, count: int) -> np.ndarray:
    """The inverse of :func:`pack_classes`' "predicted": ``count`` classes as int64.

    The width (one or two bytes a class) follows from the length.

    Raises:
        ValueError: when ``text`` is not base64 or its length fits neither width.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as error:
        raise ValueError(f"not base64: {error}") from None
    if len(raw) == count:
        dtype = np.dtype(np.uint8)
    elif len(raw) == 2 * count:
        dtype = np.dtype("<u2")
    else:
        raise ValueError(f"{len(raw)} bytes stored for {count} images")
    return np.frombuffer(raw, dtype=dtype).astype(np.int64)


def labels_digest(labels) -> str:
    """sha256 of a label vector (as int64), to check that two runs, or a run and
    the data at hand, have the same images in the same order."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(labels, dtype=np.int64).ravel()).tobytes()).hexdigest()


def record_path(runs_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(runs_dir) / run_id / RECORD_FILE_NAME


def load_record(run_id_or_path: str | os.PathLike, runs_dir: str | os.PathLike | None = None) -> RunRecord:
    """Reads one record, given its run id, its run directory or its file.

    Args:
        run_id_or_path: A run id (looked up in ``runs_dir``), a run directory
            or a ``record.json`` path.
        runs_dir: Defaults to ``helpers.config.RUNS_DIR``.

    Raises:
        FileNotFoundError: naming where it looked.
        ValueError: for a file that is not a run record.

    Used in: 08_summary (studies.cached_record), 07_cifar100 (training.load_trained_model)
    """
    candidate = Path(run_id_or_path)
    if candidate.is_dir():
        candidate = candidate / RECORD_FILE_NAME
    elif not candidate.is_file():
        if runs_dir is None:
            from helpers import config

            runs_dir = config.RUNS_DIR
        candidate = record_path(runs_dir, str(run_id_or_path))
    if not candidate.is_file():
        raise FileNotFoundError(
            f"No run record at {candidate}. Pass a run id present in the runs "
            "directory, a run directory or a record.json path."
        )
    try:
        return RunRecord.from_json(candidate.read_text(encoding="utf-8"), path=candidate)
    except json.JSONDecodeError as error:
        raise ValueError(f"{candidate}: not valid JSON ({error}). Received: a damaged record") from None


def list_records(
    runs_dir: str | os.PathLike | None = None,
    statuses: Iterable[str] | None = None,
) -> list[RunRecord]:
    """Every readable record under ``runs_dir``, oldest first.

    Args:
        runs_dir: Defaults to ``helpers.config.RUNS_DIR``; a missing
            directory gives an empty list.
        statuses: Keep only records with one of these statuses.

    Unreadable or foreign files are skipped, so one damaged record never
    hides the others.

    Used in: no notebook or module (re-exported by helpers.engine for scripts).
    """
    if runs_dir is None:
        from helpers import config

        runs_dir = config.RUNS_DIR
    runs_dir = Path(runs_dir)
    wanted = set(statuses) if statuses is not None else None
    records = []
    if not runs_dir.is_dir():
        return records
    for path in sorted(runs_dir.glob(f"*/{RECORD_FILE_NAME}")):
        try:
            record = RunRecord.from_json(path.read_text(encoding="utf-8"), path=path)
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if wanted is None or record.status in wanted:
            records.append(record)
    records.sort(key=lambda record: (record.created or "", record.run_id))
    return records


def measures_block_responses(config: ExperimentConfig) -> bool:
    """Whether a run records its blocks' residual responses without gates: an epsilon-ResNet at epsilon 0.

    06_sparse_gates sets them against the gated arms' responses: whether any
    epsilon would keep every gate open at initialisation yet shut one by the
    end of training.

    Used in: helpers.training.train, :func:`stale_measurements`
    """
    from helpers.model_registry import DEFAULT_EPSILON

    if not str(config.model).startswith("eps_resnet"):
        return False
    return float(dict(config.model_options).get("epsilon", DEFAULT_EPSILON)) == 0.0


def checkpoint_must_restart(config: ExperimentConfig, measurement_version: int) -> bool:
    """Whether a checkpoint written at ``measurement_version`` must restart ``config``'s run.

    Version 1 measured on the first training images: always restart. Version
    2 lacks block responses where :func:`measures_block_responses` wants them.

    Used in: helpers.training.train
    """
    if measurement_version < 2:
        return True
    return measurement_version < 3 and measures_block_responses(config)


def stale_measurements(record: RunRecord) -> str | None:
    """Why a record's training-image measurements must be taken again, or None.

    A record of measurement version 1 evaluated ``train_eval_size`` images
    and measured gradient norms and gates on the *first* training images.
    In a copy of CIFAR stored sorted by class (the one the project is tested
    on is) those are one or two classes, so the numbers describe airplanes,
    not the training set. Test, validation and the running training metrics
    are not affected, but the record is retrained rather than half-trusted.

    Used in: helpers.runs.cached_record, helpers.committed
    """
    if record.measurement_version >= MEASUREMENT_VERSION:
        return None
    if record.measurement_version >= 2:
        if measures_block_responses(record.config) and not (record.diagnostics or {}).get("block_responses"):
            return (f"it holds no residual responses of its blocks (measurement version "
                    f"{record.measurement_version}), which an epsilon-ResNet without gates now records")
        return None
    measured = [name.replace("_", " ") for name in ("gradient_norms", "gates")
                if (record.diagnostics or {}).get(name)]
    if any(key.startswith("train_eval_") for key in record.history or {}):
        measured.insert(0, "train_eval accuracy")
    if not measured:
        return None
    verb = "was" if measured == ["train_eval accuracy"] else "were"
    return (f"its {' and '.join(measured)} {verb} measured on the first training images (measurement version "
            f"{record.measurement_version}; a copy sorted by class makes them one or two classes)")
