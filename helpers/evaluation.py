"""Evaluations of a trained run: validation predictions and confusion matrices.

Everything here uses the validation split; the test split is touched only by
the engine, once, at the end of each run. The predictions come from the run
record when it stores them, so the report re-renders from JSON-only records;
only older records need the trained weights.
"""

from __future__ import annotations

import numpy as np

from helpers.records import RunRecord, labels_digest


def _run_data(record: RunRecord):
    from helpers.data import load_cifar

    config = record.config
    return load_cifar(config.dataset, config.data_dir, validation_size=config.validation_size,
                      train_size=config.train_size, seed=config.data_seed)


def validation_predictions(record: RunRecord, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, object]:
    """Predicted and true labels on the run's validation split.

    The predictions come from the record itself when it stores them
    (``record.validation_predictions``, kept by every run since they were
    added), so committed JSON-only records need no weights; older records
    fall back to the run's final weights, which are loaded and run over the
    validation split. The true labels come from the record too when it
    stores them (then neither the data nor the weights are needed, and a
    reader's copy of the data does not matter); otherwise from the run's
    data, loaded as the run loaded it, and checked against the digest
    stored beside the predictions.

    Args:
        record: A finished run's record.
        batch_size: Batch size of the prediction pass (fallback only).

    Returns:
        (predicted labels, true labels, the CifarData used or None when the
        record held both).

    Raises:
        ValueError: if the record stores no validation predictions and its
            final weights are not in the runs directory (it did not
            complete, or its weights were not kept): retrain it with
            ``python -m helpers train --from-record PATH``; if the stored
            predictions do not match the validation labels of the data at
            hand (other data, or another validation split); if they are
            damaged.

    Used in: 07_cifar100 (through superclass_confusion)
    """
    stored = record.validation_predicted()
    if stored is not None:
        labels = record.validation_labels()
        if labels is not None:
            # The record holds both: no data and no weights needed.
            return stored, labels, None
    model = None
    if stored is None:
        from helpers.training import load_trained_model

        try:
            model = load_trained_model(record)
        except FileNotFoundError as error:
            where = f" (PATH: {record.path})" if record.path is not None else ""
            raise ValueError(
                f"Run {record.run_id}: the record has no stored validation predictions and its weights "
                f"are not in the runs directory, so its validation predictions cannot be had; retrain it "
                f"with `python -m helpers train --from-record PATH`{where}. Received: {error}"
            ) from None
    data = _run_data(record)
    true = np.asarray(data.y_val)
    if stored is not None:
        _check_validation_labels(record, true)
        return stored, true, data
    from helpers.pipeline import make_splits
    from helpers.training import predict_logits

    validation = make_splits(data, batch_size=batch_size, splits=("validation",)).validation
    return np.argmax(predict_logits(model, validation), axis=1), true, data


def _check_validation_labels(record: RunRecord, labels: np.ndarray) -> None:
    """Raises ValueError unless ``labels`` are the ones the record's validation predictions were made on."""
    stored = record.validation_predictions
    images = int(stored.get("images", -1))
    if images != labels.shape[0] or stored.get("labels_digest") != labels_digest(labels):
        raise ValueError(
            f"Run {record.run_id}: its stored validation predictions were made on other validation "
            f"labels than the data loaded now ({images} images, digest "
            f"{str(stored.get('labels_digest'))[:12]}); check the configuration's data_dir, "
            f"validation_size and data_seed. Received: {labels.shape[0]} images, digest "
            f"{labels_digest(labels)[:12]}"
        )


def confusion_matrix(true_labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true, predicted].

    Used in: 07_cifar100
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true_labels), np.asarray(predicted)), 1)
    return matrix


def superclass_confusion(record: RunRecord) -> tuple[np.ndarray, tuple[str, ...]]:
    """The validation confusion matrix of a CIFAR-100 run folded into its 20 superclasses.

    Drawn from the predictions stored in the record, so it needs the data
    but not the trained weights (see :func:`validation_predictions`).

    Returns:
        (20 x 20 counts, superclass names).

    Raises:
        ValueError: for a run that is not on CIFAR-100, or one whose
            validation predictions cannot be had (see
            :func:`validation_predictions`).

    Used in: 07_cifar100
    """
    if record.config.dataset != "cifar100":
        raise ValueError(f"Superclasses exist only for cifar100. Received: {record.config.dataset!r}")
    from helpers.data import CIFAR100_COARSE_CLASS_NAMES, CIFAR100_FINE_TO_COARSE

    predicted, true, _ = validation_predictions(record)
    mapping = np.asarray(CIFAR100_FINE_TO_COARSE)
    return (confusion_matrix(mapping[true], mapping[predicted], len(CIFAR100_COARSE_CLASS_NAMES)),
            CIFAR100_COARSE_CLASS_NAMES)
