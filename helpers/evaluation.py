"""Evaluations that need a trained model: predictions and confusion matrices.

Everything here uses the validation split; the test split is touched only by
the engine, once, at the end of each run.
"""

from __future__ import annotations

import numpy as np

from helpers.records import RunRecord


def _run_data(record: RunRecord):
    from helpers.data import load_cifar

    config = record.config
    return load_cifar(config.dataset, config.data_dir, validation_size=config.validation_size,
                      train_size=config.train_size, seed=config.data_seed)


def validation_predictions(record: RunRecord, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, object]:
    """Predicted and true labels on the run's validation split.

    Returns:
        (predicted labels, true labels, the CifarData used).

    Raises:
        FileNotFoundError: if the run did not complete (no final weights).

    Used in: 07_cifar100
    """
    from helpers.pipeline import make_splits
    from helpers.training import load_trained_model, predict_logits

    data = _run_data(record)
    model = load_trained_model(record)
    validation = make_splits(data, batch_size=batch_size, splits=("validation",)).validation
    return np.argmax(predict_logits(model, validation), axis=1), data.y_val, data


def confusion_matrix(true_labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true, predicted].

    Used in: 07_cifar100
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true_labels), np.asarray(predicted)), 1)
    return matrix


def superclass_confusion(record: RunRecord) -> tuple[np.ndarray, tuple[str, ...]]:
    """The validation confusion matrix of a CIFAR-100 run folded into its 20 superclasses.

    Returns:
        (20 x 20 counts, superclass names).

    Raises:
        ValueError: for a run that is not on CIFAR-100.

    Used in: 07_cifar100
    """
    if record.config.dataset != "cifar100":
        raise ValueError(f"Superclasses exist only for cifar100. Received: {record.config.dataset!r}")
    from helpers.data import CIFAR100_COARSE_CLASS_NAMES, CIFAR100_FINE_TO_COARSE

    predicted, true, _ = validation_predictions(record)
    mapping = np.asarray(CIFAR100_FINE_TO_COARSE)
    return (confusion_matrix(mapping[true], mapping[predicted], len(CIFAR100_COARSE_CLASS_NAMES)),
            CIFAR100_COARSE_CLASS_NAMES)
