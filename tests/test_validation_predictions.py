"""Validation predictions kept in the run record, so the report's confusion
matrices are drawn from committed JSON-only records, without the weights.

One tiny run (VGG-11 at 1/8 width, one epoch on 128 synthetic CIFAR-100
images) serves every test; tests that delete files work on a copy of its
folder.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers.records import RECORD_FILE_NAME, RunRecord, labels_digest, load_record, pack_classes, unpack_classes
from tests.engine_helpers import synthetic_cifar, tiny_config


@pytest.fixture(scope="module")
def data100():
    return synthetic_cifar(num_classes=100, seed=5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data100):
    """(record, runs_dir) of a completed one-epoch CIFAR-100 run."""
    from helpers import engine

    runs_dir = tmp_path_factory.mktemp("runs")
    config = tiny_config(dataset="cifar100", num_epochs=1, name="validation-predictions")
    record = engine.run(config, runs_dir=runs_dir, data=data100, progress=False)
    assert record.status == "completed"
    return record, runs_dir


@pytest.fixture()
def run_data(monkeypatch, data100):
    """Makes helpers.evaluation load the synthetic data instead of CIFAR files."""
    from helpers import evaluation

    monkeypatch.setattr(evaluation, "_run_data", lambda record: data100)
    return data100


def _copy_run(record: RunRecord, runs_dir, tmp_path, *, weights: bool, predictions: bool) -> RunRecord:
    """A copy of the run's folder, optionally without its final weights or stored predictions."""
    from helpers.training import FINAL_WEIGHTS

    run_dir = tmp_path / "runs" / record.run_id
    shutil.copytree(runs_dir / record.run_id, run_dir)
    if not weights:
        (run_dir / FINAL_WEIGHTS).unlink()
        assert not list(run_dir.glob("*.h5")) and not list(run_dir.glob("*.keras"))
    if not predictions:
        path = run_dir / RECORD_FILE_NAME
        payload = json.loads(path.read_text())
        del payload["validation_predictions"]
        path.write_text(json.dumps(payload))
    return load_record(run_dir)


def _fresh_predictions(record: RunRecord, data) -> np.ndarray:
    from helpers.pipeline import make_splits
    from helpers.training import load_trained_model, predict_logits

    model = load_trained_model(record)
    validation = make_splits(data, batch_size=record.config.batch_size, splits=("validation",)).validation
    return predict_logits(model, validation).argmax(axis=1)


def test_run_stores_the_validation_classes_its_weights_predict(trained, data100):
    record, runs_dir = trained
    stored = record.validation_predictions
    assert set(stored) == {"images", "labels_digest", "predicted", "labels"}
    assert stored["images"] == len(data100.y_val) == record.data["num_validation"] == 32
    assert stored["labels_digest"] == labels_digest(data100.y_val)
    predicted = record.validation_predicted()
    assert predicted.dtype == np.int64 and predicted.shape == (32,)
    assert predicted.min() >= 0 and predicted.max() < 100
    # Strict JSON on disk, read back the same.
    text = (runs_dir / record.run_id / RECORD_FILE_NAME).read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    assert np.array_equal(load_record(record.run_id, runs_dir).validation_predicted(), predicted)
    # The final weights, loaded afresh, predict the same classes.
    assert np.array_equal(_fresh_predictions(record, data100), predicted)


def test_predictions_come_from_the_record_when_the_weights_are_gone(trained, run_data, tmp_path):
    from helpers import evaluation
    from helpers.data import CIFAR100_FINE_TO_COARSE

    record, runs_dir = trained
    copy = _copy_run(record, runs_dir, tmp_path, weights=False, predictions=True)
    with pytest.raises(FileNotFoundError):
        from helpers.training import load_trained_model

        load_trained_model(copy)
    predicted, true, data = evaluation.validation_predictions(copy)
    assert np.array_equal(predicted, record.validation_predicted())
    # The record holds the true labels too: no data was loaded.
    assert np.array_equal(true, run_data.y_val) and data is None

    matrix, names = evaluation.superclass_confusion(copy)
    assert matrix.shape == (20, 20) and len(names) == 20 and matrix.sum() == 32
    mapping = np.asarray(CIFAR100_FINE_TO_COARSE)
    assert np.trace(matrix) == np.sum(mapping[predicted] == mapping[run_data.y_val])


def test_without_predictions_or_weights_the_error_names_the_run(trained, run_data, tmp_path):
    from helpers import evaluation

    record, runs_dir = trained
    copy = _copy_run(record, runs_dir, tmp_path, weights=False, predictions=False)
    with pytest.raises(ValueError, match=rf"{record.run_id}.*no stored validation predictions.*"
                                         r"weights are not in the runs directory.*--from-record PATH"):
        evaluation.validation_predictions(copy)
    with pytest.raises(ValueError, match=record.run_id):
        evaluation.superclass_confusion(copy)


def test_old_record_without_the_key_loads_and_falls_back_to_the_weights(trained, run_data, tmp_path):
    from helpers import evaluation

    record, runs_dir = trained
    copy = _copy_run(record, runs_dir, tmp_path, weights=True, predictions=False)
    assert copy.validation_predictions == {} and copy.validation_predicted() is None
    assert copy.test_correct("accuracy") is not None  # the rest of the record reads as before
    predicted, true, _ = evaluation.validation_predictions(copy, batch_size=record.config.batch_size)
    assert np.array_equal(predicted, record.validation_predicted())
    assert np.array_equal(true, run_data.y_val)


def test_stored_labels_make_the_readers_data_irrelevant(trained, monkeypatch):
    """A reader with another copy of CIFAR (other order, other pixels) gets the
    record's own confusion matrix: the data is never loaded."""
    from helpers import evaluation

    record, _ = trained

    def no_data(_):
        raise AssertionError("the data must not be loaded")

    monkeypatch.setattr(evaluation, "_run_data", no_data)
    predicted, true, data = evaluation.validation_predictions(record)
    assert data is None and np.array_equal(true, record.validation_labels())
    matrix, _ = evaluation.superclass_confusion(record)
    assert matrix.sum() == len(true)


def test_stored_predictions_without_labels_are_checked_against_the_data(trained, monkeypatch, data100):
    from helpers import evaluation

    record, _ = trained
    older = RunRecord.from_json(record.to_json())
    older.validation_predictions = {key: value for key, value in older.validation_predictions.items()
                                    if key != "labels"}
    other = synthetic_cifar(num_classes=100, seed=6)
    monkeypatch.setattr(evaluation, "_run_data", lambda _: other)
    with pytest.raises(ValueError, match=rf"{record.run_id}.*other validation labels"):
        evaluation.validation_predictions(older)
    monkeypatch.setattr(evaluation, "_run_data", lambda _: data100)
    predicted, true, data = evaluation.validation_predictions(older)
    assert data is data100 and np.array_equal(true, data100.y_val)


def test_damaged_validation_labels_are_named(trained):
    record, _ = trained
    damaged = RunRecord.from_json(record.to_json())
    labels = damaged.validation_labels().copy()
    labels[0] = (labels[0] + 1) % 100
    damaged.validation_predictions["labels"] = pack_classes(labels, labels, 100)["labels"]
    with pytest.raises(ValueError, match="do not match their digest"):
        damaged.validation_labels()


def test_minimal_record_dict_without_the_key_loads():
    record = RunRecord.from_dict({"run_id": "old", "status": "completed", "config": tiny_config().to_dict()})
    assert record.validation_predictions == {} and record.validation_predicted() is None
    assert "validation_predictions" in record.to_dict()
    with pytest.raises(ValueError, match="validation_predictions"):
        RunRecord.from_dict({"run_id": "bad", "status": "completed", "config": tiny_config().to_dict(),
                             "validation_predictions": "not an object"})


@pytest.mark.parametrize("num_classes, width", [(10, 1), (100, 1), (255, 1), (1000, 2)])
def test_classes_pack_and_unpack(num_classes, width):
    rng = np.random.default_rng(num_classes)
    labels = rng.integers(0, num_classes, 501)
    predicted = rng.integers(0, num_classes, 501)
    packed = pack_classes(predicted, labels, num_classes)
    assert packed["images"] == 501 and packed["labels_digest"] == labels_digest(labels)
    assert np.array_equal(unpack_classes(packed["predicted"], 501), predicted)
    assert np.array_equal(unpack_classes(packed["labels"], 501), labels)
    assert len(packed["predicted"]) == 4 * ((501 * width + 2) // 3)
    record = RunRecord(run_id="r", status="completed", config=tiny_config(), validation_predictions=packed)
    assert np.array_equal(RunRecord.from_json(record.to_json()).validation_predicted(), predicted)


def test_damaged_or_mismatched_classes_are_reported():
    with pytest.raises(ValueError, match="3 predictions for 4 labels"):
        pack_classes([0, 1, 2], [0, 1, 2, 3], 10)
    with pytest.raises(ValueError, match="0..9"):
        pack_classes([0, 10], [0, 1], 10)
    record = RunRecord(run_id="damaged", status="completed", config=tiny_config(),
                       validation_predictions={"images": 5, "labels_digest": "x", "predicted": "AAEC"})
    with pytest.raises(ValueError, match="damaged validation predictions"):
        record.validation_predicted()
    record.validation_predictions["predicted"] = "not base64!"
    with pytest.raises(ValueError, match="not base64"):
        record.validation_predicted()
