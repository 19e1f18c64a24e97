"""The experiment engine: configuration, records, cache, resume, divergence,
determinism, diagnostics and the ``train`` command line.

Training tests use a VGG-11 at 1/8 width on 128 synthetic images (a second
or two per epoch on two cores); the subprocess tests pay TensorFlow's import.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
import time

import numpy as np
import pytest

from helpers.experiment import ExperimentConfig, FrozenOptions
from helpers.records import MEASUREMENT_VERSION, RunRecord, list_records, load_record
from tests.engine_helpers import (
    PROJECT_ROOT,
    python_command,
    subprocess_env,
    synthetic_cifar,
    tiny_config,
)

# -- configuration ---------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"dataset": "mnist"},
        {"optimizer": "rmsprop"},
        {"learning_rate": 0.0},
        {"learning_rate": float("nan")},
        {"momentum": 1.0},
        {"weight_decay": -1e-4},
        {"batch_size": 0},
        {"batch_size": True},
        {"num_epochs": 1.5},
        {"train_size": 16},  # smaller than one batch of 128
        {"label_smoothing": 1.0},
        {"strategy": "tpu"},
        {"mixed_precision": "float16"},
        {"jit_compile": "sometimes"},
        {"steps_per_execution": 0},
        {"model_options": [("depth", 3)]},
        {"model_options": {"ratio": float("inf")}},
        {"model": ""},
    ],
)
def test_config_rejects_bad_values_with_received(changes):
    with pytest.raises(ValueError, match="Received"):
        ExperimentConfig(**{"model": "resnet20", **changes})


def test_run_hash_ignores_labels_and_tracks_every_id_field():
    base = ExperimentConfig(model="resnet20")
    for label_change in ({"name": "baseline"}, {"data_dir": "/elsewhere"}, {"steps_per_execution": 7}):
        assert base.replace(**label_change).config_hash == base.config_hash
    id_changes = {
        "model": "resnet56", "dataset": "cifar100", "model_options": {"width_multiplier": 0.5},
        "optimizer": "adam", "learning_rate": 0.05, "momentum": 0.8, "nesterov": True,
        "weight_decay": 5e-4, "weight_decay_mode": "decoupled", "batch_size": 64, "num_epochs": 3,
        "schedule": "onecycle", "schedule_options": {"pct_start": 0.4}, "augment": False,
        "train_size": 1000, "validation_size": 0, "data_seed": 1, "label_smoothing": 0.1,
        "seed": 1, "mixed_precision": True, "jit_compile": True, "strategy": "mirrored",
        "deterministic": False, "record_gradient_norms": False,
    }
    hashes = {base.config_hash}
    for field, value in id_changes.items():
        changed = base.replace(**{field: value})
        assert changed.config_hash not in hashes, field
        hashes.add(changed.config_hash)
    # Numbers that are equal hash alike whatever their Python type.
    assert base.replace(learning_rate=1).config_hash == base.replace(learning_rate=1.0).config_hash


def test_config_round_trips_and_is_hashable():
    config = ExperimentConfig(
        model="resnet18", model_options={"stem": "cifar", "dropout": 0.3},
        schedule="step", schedule_options={"boundary_epochs": [5, 8]}, name="student",
    )
    again = ExperimentConfig.from_dict(json.loads(config.to_json()))
    assert again == config and hash(again) == hash(config)
    assert again.config_hash == config.config_hash
    assert config.model_options == {"dropout": 0.3, "stem": "cifar"}
    assert isinstance(config.model_options, FrozenOptions)
    assert config.schedule_options["boundary_epochs"] == (5, 8)
    assert config.with_model_options(dropout=None).model_options == {"stem": "cifar"}
    with pytest.raises(ValueError, match="Received"):
        ExperimentConfig.from_dict({**config.to_dict(), "learning_rat": 0.1})
    with pytest.raises(ValueError, match="Received"):
        config.replace(learning_rat=0.1)


def test_record_writes_strict_json_and_reads_back(tmp_path):
    record = RunRecord(
        run_id="x-cifar10-0", status="diverged", config=ExperimentConfig(model="vgg19"),
        history={"epoch": [1, 2], "loss": [2.3, math.nan], "val_accuracy": [0.2, 0.1]},
        test={"loss": math.inf, "accuracy": 0.1}, diverged_epoch=2,
    )
    path = record.save(tmp_path / "x-cifar10-0" / "record.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = load_record("x-cifar10-0", runs_dir=tmp_path)
    assert loaded.history["loss"] == [2.3, None]
    assert math.isnan(loaded.final("loss")) and loaded.best("loss") == 2.3
    assert loaded.best("val_accuracy") == 0.2 and loaded.best_epoch("val_accuracy") == 1
    assert math.isnan(loaded.test_metric("loss"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "record.json").write_text("{not json")
    assert [r.run_id for r in list_records(tmp_path)] == ["x-cifar10-0"]


# -- loss and weight decay -------------------------------------------------


def test_label_smoothing_loss_matches_its_formula():
    from helpers.compilation import make_loss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4, 0])
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = np.full((6, 5), 0.1 / 5)
    targets[np.arange(6), labels] += 0.9
    expected = float(np.mean(-(targets * log_probs).sum(axis=1)))
    assert float(make_loss(0.1)(labels, logits)) == pytest.approx(expected, rel=1e-5)
    plain = float(np.mean(-log_probs[np.arange(6), labels]))
    assert float(make_loss(0.0)(labels, logits)) == pytest.approx(plain, rel=1e-5)


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_weight_decay_reaches_kernels_only(mode):
    import keras

    from helpers.compilation import OPTIMIZER_CLASSES

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    kernel, bias = model.trainable_variables
    kernel_before, bias_before = kernel.numpy().copy(), bias.numpy().copy()
    rate, decay = 0.1, 0.5
    optimizer = OPTIMIZER_CLASSES["sgd"](learning_rate=rate, momentum=0.0,
                                         kernel_decay=decay, kernel_decay_mode=mode)
    gradients = [np.ones_like(kernel_before), np.ones_like(bias_before)]
    optimizer.apply(gradients, model.trainable_variables)
    if mode == "coupled":  # w -= rate * (g + decay * w)
        expected = kernel_before - rate * (1.0 + decay * kernel_before)
    else:  # w -= rate * decay * w, then w -= rate * g
        expected = kernel_before * (1.0 - rate * decay) - rate * 1.0
    np.testing.assert_allclose(kernel.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(bias.numpy(), bias_before - rate * 1.0, rtol=1e-6)


# -- training runs ---------------------------------------------------------


@pytest.fixture(scope="module")
def data10():
    return synthetic_cifar()


RECORD_KEYS = {
    "schema_version", "measurement_version", "run_id", "name", "status", "seed", "epochs_completed", "diverged_epoch",
    "config", "history", "test", "wall_seconds", "train_images_per_second", "diagnostics",
    "data", "environment", "parameter_count", "schedule", "sessions", "created", "finished",
    "error", "notes", "test_predictions", "validation_predictions",
}


def test_run_records_everything_and_second_call_is_cached(tmp_path, data10):
    from helpers import engine

    config = tiny_config(name="first")
    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)

    assert record.status == "completed"
    saved = json.loads((tmp_path / record.run_id / "record.json").read_text())
    assert set(saved) == RECORD_KEYS
    assert saved["config"] == config.to_dict()
    history = record.history
    assert history["epoch"] == [1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                "epoch_seconds", "train_seconds"):
        assert len(history[key]) == 2 and all(math.isfinite(v) for v in history[key]), key
    assert "top5_accuracy" not in history  # only with more than 10 classes
    assert history["learning_rate"] == [pytest.approx(0.05)] * 2
    assert set(record.test) == {"loss", "accuracy"}
    assert record.wall_seconds > 0 and record.train_images_per_second > 0
    assert saved["environment"]["versions"]["tensorflow"]
    assert saved["environment"]["hardware"]["logical_cores"] == os.cpu_count()
    assert saved["data"]["source"] == "synthetic" and saved["data"]["num_train"] == 128
    assert (tmp_path / record.run_id / "model.weights.h5").is_file()
    # The kept weights are the ones the test metrics were measured with.
    from helpers.data import channel_stats

    mean, std = channel_stats(data10.x_train)
    model = engine.load_trained_model(record)
    logits = model.predict((data10.x_test / 255.0 - mean) / std, verbose=0)
    assert np.mean(logits.argmax(axis=1) == data10.y_test) == pytest.approx(record.test["accuracy"])
    # The same pass, per image, for paired comparisons between arms.
    from helpers.records import labels_digest

    per_image = record.test_correct("accuracy")
    assert record.test_predictions["images"] == len(data10.y_test) == per_image.shape[0]
    assert record.test_predictions["labels_digest"] == labels_digest(data10.y_test)
    assert np.array_equal(per_image, (logits.argmax(axis=1) == data10.y_test).astype(np.uint8))
    assert per_image.mean() == pytest.approx(record.test["accuracy"])
    assert record.test_correct("top5_accuracy") is None  # 10 classes: no top-5
    assert not list((tmp_path / record.run_id).glob("ckpt-*"))  # cleaned up once complete

    # Gradient norms: every conv and dense kernel, before training and after each epoch.
    norms = record.diagnostics["gradient_norms"]
    assert record.diagnostics["gradient_norm_epochs"] == [0, 1, 2]
    assert list(norms)[:2] == ["block1_conv1", "block2_conv1"] and "logits" in norms
    assert len(norms) == 9  # VGG-11: 8 convolutions and the classifier
    assert all(len(v) == 3 and all(x > 0 and math.isfinite(x) for x in v) for v in norms.values())

    # The cache answers at once, without building a model or importing TensorFlow.
    started = time.perf_counter()
    cached = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    assert time.perf_counter() - started < 5
    assert cached.run_id == record.run_id and cached.history == json.loads(json.dumps(history))
    # A label does not change the run; any id field does.
    assert engine.resolve_run_id(config.replace(name="other"), data10, tmp_path) == record.run_id
    assert engine.resolve_run_id(config.replace(learning_rate=0.01), data10, tmp_path) != record.run_id
    # The run id also hashes the data: other pixels, other run.
    other_data = synthetic_cifar(seed=1)
    assert engine.resolve_run_id(config, other_data, tmp_path) != record.run_id

    code = ("import json, sys\n"
            "from helpers import engine\n"
            "from tests.engine_helpers import synthetic_cifar, tiny_config\n"
            "record = engine.run(tiny_config(name='first'), runs_dir=sys.argv[1], data=synthetic_cifar(),\n"
            "                    progress=False)\n"
            "print(json.dumps([record.run_id, 'tensorflow' in sys.modules, 'keras' in sys.modules]))\n")
    fresh = subprocess.run([*python_command(code), str(tmp_path)], cwd=PROJECT_ROOT, env=subprocess_env(),
                           capture_output=True, text=True, timeout=120)
    assert json.loads(fresh.stdout) == [record.run_id, False, False], fresh.stderr


def test_run_ids_of_known_configurations_never_change(tmp_path, monkeypatch):
    """Cached and committed records stay valid only while their ids do. These ids
    were computed by the engine before it was split into modules (issue 16)."""
    from helpers import engine, runs
    from tests.cifar_fixtures import write_cifar10_python

    data = synthetic_cifar()
    assert engine.resolve_run_id(tiny_config(), data, tmp_path) == "vgg11-cifar10-34e58f2d3379"
    assert runs.content_digest(runs.as_run_data(data, tiny_config())) == "dc0e3f5f74044b515b00"
    pinned = ExperimentConfig(model="resnet20", batch_size=32, num_epochs=3, validation_size=32,
                              train_size=64, learning_rate=0.05, schedule="onecycle",
                              model_options={"width_multiplier": 0.5}, seed=2, name="pinned")
    assert engine.resolve_run_id(pinned, data, tmp_path) == "resnet20-cifar10-ae49f503a822"
    data100 = synthetic_cifar(num_classes=100, seed=3)
    assert engine.resolve_run_id(tiny_config(dataset="cifar100"), data100, tmp_path) == "vgg11-cifar100-ab2e5207a261"
    # Loaded from files: the first lookup hashes the decoded splits, the second
    # finds the digest in the data-identity memo; both give the same id.
    from helpers import config as project_config

    monkeypatch.setattr(project_config, "DATA_CACHE_DIR", tmp_path / "cache")  # not the project's
    write_cifar10_python(tmp_path / "data", per_class=10)
    from_files = ExperimentConfig(model="resnet20", data_dir=str(tmp_path / "data"), validation_size=50,
                                  train_size=64, batch_size=32, num_epochs=2)
    for _ in range(2):
        assert engine.resolve_run_id(from_files, runs_dir=tmp_path / "runs") == "resnet20-cifar10-e6a50f9c5735"


def test_nan_loss_marks_run_diverged_without_raising(tmp_path, data10):
    from helpers import engine

    config = tiny_config(learning_rate=1e12, num_epochs=4, model_options={
        "width_multiplier": 0.125, "batch_norm": False})
    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)

    assert record.status == "diverged"
    assert record.diverged_epoch == 1
    assert record.history["epoch"] == [1]
    assert not math.isfinite(record.curve("loss")[0])
    saved = load_record(record.run_id, runs_dir=tmp_path)
    assert saved.status == "diverged" and saved.diverged_epoch == 1
    assert saved.history["loss"] == [None]
    # A diverged run is a finished result: the cache serves it.
    again = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    assert again.status == "diverged" and again.created == record.created


def test_same_config_and_seed_give_the_same_first_epoch(tmp_path):
    from helpers import engine

    data100 = synthetic_cifar(num_classes=100, seed=3)
    config = tiny_config(dataset="cifar100", num_epochs=1, model_options={
        "width_multiplier": 0.125, "classifier_dropout": 0.2})
    first = engine.run(config, runs_dir=tmp_path / "a", data=data100, progress=False)
    second = engine.run(config, runs_dir=tmp_path / "b", data=data100, progress=False)

    assert first.run_id == second.run_id
    for key in ("loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy"):
        assert first.history[key] == second.history[key], key
    assert first.diagnostics["gradient_norms"] == second.diagnostics["gradient_norms"]
    assert set(first.test) == {"loss", "accuracy", "top5_accuracy"}
    assert first.test == second.test
    assert first.test_predictions == second.test_predictions
    top5 = first.test_correct("top5_accuracy")
    assert top5.mean() == pytest.approx(first.test["top5_accuracy"])
    assert np.all(top5 >= first.test_correct("accuracy"))  # right at top-1 is right at top-5
    different_seed = engine.run(config.replace(seed=1), runs_dir=tmp_path / "a", data=data100,
                                progress=False)
    assert different_seed.history["loss"] != first.history["loss"]


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from helpers import engine
    from tests.engine_helpers import synthetic_cifar, tiny_config

    from helpers.checkpoints import Checkpointer

    original_save = Checkpointer.save

    def save_then_stall(self, model, epochs_completed, state):
        original_save(self, model, epochs_completed, state)
        if epochs_completed == 2 and "--stall" in sys.argv:
            print("checkpointed", flush=True)
            time.sleep(600)  # the test kills us here, in the middle of fit()

    Checkpointer.save = save_then_stall
    config = tiny_config(num_epochs=4, schedule="step", schedule_options={"boundary_epochs": [2]})
    record = engine.run(config, runs_dir=sys.argv[1], data=synthetic_cifar(), progress="lines")
    print("status", record.status, flush=True)
    """
)


def test_resume_after_sigkill_records_each_epoch_once(tmp_path):
    from helpers import engine

    runs_dir = tmp_path / "runs"
    command = [*python_command(RESUME_SCRIPT), str(runs_dir), "--stall"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=subprocess_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # blocks until epoch 2 is checkpointed
        assert line.strip() == "checkpointed", process.stderr.read()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "checkpoint.json").read_text())["epochs_completed"] == 2
    assert json.loads((run_dir / "record.json").read_text())["status"] == "running"

    config = tiny_config(num_epochs=4, schedule="step", schedule_options={"boundary_epochs": [2]})
    record = engine.run(config, runs_dir=runs_dir, data=synthetic_cifar(), progress=False)

    assert record.status == "completed"
    assert record.history["epoch"] == [1, 2, 3, 4]
    assert all(len(values) == 4 for values in record.history.values())
    assert [s["start_epoch"] for s in record.sessions] == [0, 2]
    # The optimizer's step count survived: the step schedule is at its second rate.
    assert record.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.005, 0.005])
    assert record.diagnostics["gradient_norm_epochs"] == [0, 1, 2, 3, 4]
    assert not (run_dir / "checkpoint.json").exists()


def test_eps_resnet_records_gates_and_uses_the_side_head(tmp_path, data10):
    from helpers import engine

    config = tiny_config(model="eps_resnet20", num_epochs=1, model_options={"width_multiplier": 0.25})
    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)

    assert record.status == "completed"
    gates = record.diagnostics["gates"]
    assert len(gates) == 9 and list(gates)[0] == "stage1_block1"  # 3 stages x 3 blocks
    assert all(len(values) == 2 and set(values) <= {0.0, 1.0} for values in gates.values())
    assert record.diagnostics["gate_epochs"] == [0, 1]
    assert len(record.diagnostics["discarded_blocks"]) == 2
    responses = record.diagnostics["gate_responses"]
    assert list(responses) == list(gates)
    epsilon = 2.5  # eps_resnet20's default
    for block, values in responses.items():
        assert len(values) == 2 and all(v >= 0 for v in values)
        # The recorded response decides the recorded gate.
        assert gates[block] == [0.0 if v <= epsilon else 1.0 for v in values]
    training_counts = record.diagnostics["discarded_blocks_training"]
    assert len(training_counts) == 2 and all(0 <= c <= 9 for c in training_counts)
    for key in ("loss", "accuracy", "logits_loss", "side_logits_loss", "side_logits_accuracy"):
        assert key in record.history, key
    assert "accuracy" in record.test and "side_logits_accuracy" in record.test
    # Per-image scores come from the main head, not the side head.
    assert record.test_correct("accuracy").mean() == pytest.approx(record.test["accuracy"])


def test_training_mode_gate_diagnostic_leaves_the_model_unchanged(tmp_path, data10):
    import numpy as np

    from helpers import models
    from helpers.compilation import compile_model
    from helpers.diagnostics import Diagnostics, gate_states

    config = tiny_config(model="eps_resnet20", num_epochs=1, model_options={"width_multiplier": 0.25})
    compiled = compile_model(config, 10, 1)
    model = compiled.model
    images = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    diagnostics = Diagnostics(compiled, images, np.zeros(8, dtype="int64"), False)
    before = [v.numpy().copy() for v in model.variables]
    states = diagnostics.gate_states_in_training_mode()
    # Batch norm's moving statistics (and every other variable) are as before ...
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.variables))
    # ... and the states are the training-mode gates (which use batch statistics,
    # so the direct call, which does move the statistics, gives the same gates).
    assert list(states) == [n.removesuffix("_gate") for n in models.gate_layer_names(model)]
    assert states == gate_states(model, images, training=True)
    assert not all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.variables))


def test_ungated_eps_resnet_records_its_blocks_responses_as_a_gated_twin_would_see_them(tmp_path, data10):
    import numpy as np

    from helpers import engine
    from helpers.compilation import compile_model
    from helpers.diagnostics import Diagnostics, block_responses, gate_responses

    options = {"width_multiplier": 0.25}
    record = engine.run(tiny_config(model="eps_resnet20", num_epochs=1, model_options={**options, "epsilon": 0.0}),
                        runs_dir=tmp_path, data=data10, progress=False)
    diagnostics = record.diagnostics
    assert "gates" not in diagnostics and diagnostics["block_response_epochs"] == [0, 1]
    for key in ("block_responses", "block_responses_training"):
        assert list(diagnostics[key])[:2] == ["stage1_block1", "stage1_block2"] and len(diagnostics[key]) == 9
        assert all(len(values) == 2 and all(v > 0 for v in values) for values in diagnostics[key].values())
    # Other nets record none.
    plain = engine.run(tiny_config(num_epochs=1), runs_dir=tmp_path, data=data10, progress=False)
    assert "block_responses" not in plain.diagnostics

    # What the ungated net records at its additions is what a gated twin with the same weights
    # compares with epsilon, in both modes; the training-mode reading leaves the model as it was.
    ungated = compile_model(tiny_config(model="eps_resnet20", model_options={**options, "epsilon": 0.0}), 10, 1)
    gated = compile_model(tiny_config(model="eps_resnet20", model_options={**options, "epsilon": 1e-3}), 10, 1)
    gated.model.set_weights(ungated.model.get_weights())
    images = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    probe = Diagnostics(ungated, images, np.zeros(8, dtype="int64"), False, record_block_responses=True)
    before = [v.numpy().copy() for v in ungated.model.variables]
    inference, training_mode = probe.block_responses()
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, ungated.model.variables))
    assert inference == pytest.approx(gate_responses(gated.model, images), rel=1e-5)
    assert training_mode == pytest.approx(gate_responses(gated.model, images, training=True), rel=1e-5)
    assert training_mode == pytest.approx(block_responses(ungated.model, images, training=True), rel=1e-5)
    assert inference != pytest.approx(training_mode, rel=1e-3)  # the two modes differ before training
    # A gated net's Diagnostics records gates, not block responses.
    assert Diagnostics(gated, images, np.zeros(8, dtype="int64"), False,
                       record_block_responses=True).block_responses() == ({}, {})


def test_run_finished_by_another_process_after_the_first_check_is_not_trained_again(tmp_path, data10, monkeypatch):
    """A run another process completes between the cache check and the run
    lock (seen: a second `train` started while the first wrote its test
    scores) is returned from its record, not trained over it."""
    from helpers import engine, runs, training

    config = tiny_config(name="race")
    finished = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    record_file = tmp_path / finished.run_id / "record.json"
    before = record_file.read_text()
    real_cached_record = runs.cached_record
    checks = []

    def first_check_misses(run_dir, warn):
        checks.append(run_dir)
        return None if len(checks) == 1 else real_cached_record(run_dir, warn)

    def train_again(*args, **kwargs):
        raise AssertionError("the finished run was trained again")

    monkeypatch.setattr(runs, "cached_record", first_check_misses)
    monkeypatch.setattr(training, "train", train_again)
    again = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    assert len(checks) == 2  # checked again inside the lock
    assert again.status == "completed" and again.test == finished.test
    assert record_file.read_text() == before
    assert not (tmp_path / finished.run_id / ".lock").exists()


def test_cli_train_prints_one_json_record_and_then_serves_the_cache(tmp_path):
    from tests.cifar_fixtures import write_cifar10_python

    write_cifar10_python(tmp_path / "data", per_class=10)  # 500 training images, 100 test
    command = [
        sys.executable, "-m", "helpers", "train", "--model", "vgg11", "--dataset", "cifar10",
        "--data-dir", str(tmp_path / "data"), "--epochs", "1", "--batch-size", "32",
        "--train-size", "64", "--validation-size", "50", "--lr", "0.05",
        "--model-option", "width_multiplier=0.125", "--seed", "3",
        "--runs-dir", str(tmp_path / "runs"), "--json",
    ]
    env = subprocess_env(CIFAR_LAB_CACHE_DIR=str(tmp_path / "cache"))
    first = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                           timeout=240)
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)  # exactly one JSON object, nothing else
    assert record["status"] == "completed"
    assert record["config"]["model_options"] == {"width_multiplier": 0.125}
    assert record["config"]["train_size"] == 64 and record["data"]["num_train"] == 64
    assert len(record["history"]["loss"]) == 1
    assert set(record["test"]) == {"loss", "accuracy"} and record["wall_seconds"] > 0
    assert "epoch 1/1" in first.stderr

    second = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                            timeout=240)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == record
    assert "cached" in second.stderr and "epoch 1/1" not in second.stderr

    bad_command = [("resnet9000" if part == "vgg11" else part) for part in command]
    bad = subprocess.run(bad_command, cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=240)
    assert bad.returncode != 0 and bad.stdout == ""
    assert "Unknown model name" in bad.stderr


def test_cli_train_from_record_retrains_the_same_configuration_beside_the_old_one(tmp_path):
    from helpers import engine
    from tests.cifar_fixtures import write_cifar10_python

    write_cifar10_python(tmp_path / "data", per_class=10)
    config = tiny_config(data_dir=str(tmp_path / "data"), train_size=64, validation_size=50, num_epochs=1,
                         seed=3, steps_per_execution=1)
    env = subprocess_env(CIFAR_LAB_CACHE_DIR=str(tmp_path / "cache"))
    old = engine.run(config, runs_dir=tmp_path / "runs", progress=False)
    command = [sys.executable, "-m", "helpers", "train", "--from-record", str(old.path),
               "--runs-dir", str(tmp_path / "again"), "--json"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["same_run_id"] and payload["new"]["config"] == payload["old"]["config"]
    assert payload["new"]["run_id"] == old.run_id and "epoch 1/1" in result.stderr  # trained, not cached
    assert (tmp_path / "again" / old.run_id / "record.json").is_file()
    # A deterministic configuration on the same host repeats its record's numbers.
    assert payload["new"]["test"]["accuracy"] == pytest.approx(old.test["accuracy"])
    assert payload["test_accuracy_difference"] == pytest.approx(0.0, abs=1e-9)
    # The table form, and the refusals.
    table = subprocess.run([*command[:6], "--runs-dir", str(tmp_path / "third")], cwd=PROJECT_ROOT, env=env,
                           capture_output=True, text=True, timeout=240)
    assert table.returncode == 0 and "committed record" in table.stdout and "test accuracy" in table.stdout
    mixed = subprocess.run([*command, "--epochs", "3"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                           text=True, timeout=240)
    assert mixed.returncode == 2 and "leave out --num-epochs" in mixed.stderr
    again = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert again.returncode == 2 and "exists already" in again.stderr
    missing = subprocess.run([sys.executable, "-m", "helpers", "train", "--dataset", "cifar10"], cwd=PROJECT_ROOT,
                             env=env, capture_output=True, text=True, timeout=240)
    assert missing.returncode == 2 and "--model is required" in missing.stderr


def test_interrupt_saves_an_interrupted_record_and_the_next_call_resumes(tmp_path, data10,
                                                                         monkeypatch, capsys):
    from helpers import engine
    from helpers.checkpoints import Checkpointer

    original_save = Checkpointer.save

    def save_then_interrupt(self, model, epochs_completed, state):
        original_save(self, model, epochs_completed, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", save_then_interrupt)
    config = tiny_config(num_epochs=2)
    with pytest.raises(KeyboardInterrupt):
        engine.run(config, runs_dir=tmp_path, data=data10, progress="bar")
    assert "epoch 1/2" in capsys.readouterr().err  # the tqdm bar, on stderr
    (run_dir,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    interrupted = load_record(run_dir)
    assert interrupted.status == "interrupted" and "KeyboardInterrupt" in interrupted.error
    assert interrupted.history["epoch"] == [1]

    monkeypatch.setattr(Checkpointer, "save", original_save)
    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    assert record.status == "completed" and record.error is None
    assert record.history["epoch"] == [1, 2]
    assert [session["start_epoch"] for session in record.sessions] == [0, 1]


def test_plateau_counters_survive_a_checkpoint():
    import keras

    from helpers.checkpoints import callback_state, decode_floats, encode_floats
    from helpers.training import CallbackStateRestorer
    from helpers.schedules import make_plateau_callback

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = make_plateau_callback(patience=5)
    before.set_model(model)
    before.on_train_begin()
    before.wait, before.best, before.cooldown_counter = 3, 0.42, 1
    saved = decode_floats(json.loads(json.dumps(encode_floats([callback_state(before)]))))

    after = make_plateau_callback(patience=5)
    restorer = CallbackStateRestorer([after], saved)
    for callback in (after, restorer):  # the order fit calls them in
        callback.set_model(model)
        callback.on_train_begin()
    assert (after.wait, after.best, after.cooldown_counter) == (3, 0.42, 1)


def test_deterministic_runs_take_one_step_per_call():
    from helpers.compilation import AUTO_STEPS_PER_EXECUTION, compile_model

    # Several steps per call run in a tf.while_loop that did not repeat bit
    # for bit (gated nets); deterministic runs therefore take one step per call.
    cases = [(dict(deterministic=True, steps_per_execution=3), 1, True),
             (dict(deterministic=True, steps_per_execution="auto"), 1, False),
             (dict(deterministic=False, steps_per_execution=3), 3, False),
             (dict(deterministic=False, steps_per_execution="auto"),
              AUTO_STEPS_PER_EXECUTION["cpu"], False)]
    for changes, expected, noted in cases:
        compiled = compile_model(tiny_config(num_epochs=1, **changes), 10, 8)
        assert compiled.steps_per_execution == expected, changes
        assert compiled.model.steps_per_execution == expected, changes
        assert any("steps_per_execution" in note for note in compiled.notes) == noted, changes


def test_training_set_evaluated_in_inference_mode_beside_the_running_metrics(tmp_path, data10):
    """train_eval_size adds the training images' accuracy as the trained net sees
    them (dropout off), which with strong dropout differs from fit's running one."""
    from helpers import engine

    plain = tiny_config()
    config = tiny_config(train_eval_size=64, model_options={"width_multiplier": 0.125})
    assert "train_eval_size" not in plain.id_fields()  # earlier run ids are unchanged
    assert config.id_fields()["train_eval_size"] == 64
    assert engine.resolve_run_id(config, data10, tmp_path) != engine.resolve_run_id(plain, data10, tmp_path)

    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    history = record.history
    assert len(history["train_eval_accuracy"]) == len(history["train_eval_loss"]) == 2
    assert all(0.0 <= value <= 1.0 for value in history["train_eval_accuracy"])

    # Recomputed from the final weights: the first 64 training images, un-augmented, inference mode.
    from helpers.pipeline import make_splits
    from helpers.runs import as_run_data
    from helpers.training import load_trained_model, predict_logits

    model = load_trained_model(record, runs_dir=tmp_path)
    data = as_run_data(data10, config)
    splits = make_splits(data, batch_size=32, splits=())
    from helpers.pipeline import make_dataset
    from helpers.training import measurement_indices
    chosen = measurement_indices(data.y_train, 64)
    dataset = make_dataset(data.x_train[chosen], data.y_train[chosen], training=False, batch_size=32,
                           mean=splits.mean, std=splits.std)
    predicted = predict_logits(model, dataset).argmax(axis=1)
    assert history["train_eval_accuracy"][-1] == pytest.approx(float((predicted == data.y_train[chosen]).mean()))

    with pytest.raises(ValueError, match="train_eval_size must be an integer >= 0"):
        tiny_config(train_eval_size=-1)


def _sorted_by_class(data):
    """The same images with the training split stored class by class, as some CIFAR copies are."""
    import dataclasses

    order = np.argsort(data.y_train, kind="stable")
    return dataclasses.replace(data, x_train=data.x_train[order], y_train=data.y_train[order])


def test_measurements_on_training_images_cover_every_class_of_class_sorted_data(tmp_path, data10, monkeypatch):
    """Seen on the real copy: its training split is stored sorted by class, so
    the first 5,000 images were airplanes and cars and the first batch all
    airplanes. The probe batch and the train_eval images must be stratified."""
    from helpers import training

    data = _sorted_by_class(synthetic_cifar(num_train=320, num_val=32))
    assert len(set(data.y_train[:32].tolist())) <= 2  # the trap: the first batch is one or two classes
    chosen = training.measurement_indices(data.y_train, 64)
    counts = np.bincount(data.y_train[chosen], minlength=10)
    expected = np.bincount(data.y_train, minlength=10) * 64 / len(data.y_train)
    assert np.all(np.abs(counts - expected) < 1)  # class shares kept, every class there
    assert np.array_equal(chosen, training.measurement_indices(data.y_train, 64))  # the same images every run
    assert len(training.measurement_indices(data.y_train, 10_000)) == len(data.y_train)  # at most the split

    probes = []
    real = training.Diagnostics

    def spy(compiled, images, labels, record_gradients, **options):
        probes.append(np.asarray(labels))
        return real(compiled, images, labels, record_gradients, **options)

    monkeypatch.setattr(training, "Diagnostics", spy)
    from helpers import engine

    record = engine.run(tiny_config(num_epochs=1, train_eval_size=64), runs_dir=tmp_path, data=data, progress=False)
    assert len(probes) == 1 and len(probes[0]) == 32
    assert len(set(probes[0].tolist())) >= 8  # the gradient-norm batch: 32 images of (nearly) every class
    assert record.measurement_version == MEASUREMENT_VERSION and record.diagnostics["gradient_norms"]
    assert json.loads(Path(record.path).read_text())["measurement_version"] == MEASUREMENT_VERSION


def test_records_measured_on_the_first_images_are_retrained_under_the_same_id(tmp_path, data10, capsys):
    from helpers import engine

    config = tiny_config(num_epochs=1)
    first = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    path = Path(first.path)
    payload = json.loads(path.read_text())
    del payload["measurement_version"]  # as records written before the field
    payload["notes"] = ["the old record"]
    path.write_text(json.dumps(payload))
    assert load_record(path).measurement_version == 1
    again = engine.run(config, runs_dir=tmp_path, data=data10, progress=True)
    assert again.run_id == first.run_id and "the old record" not in again.notes  # retrained, same id
    assert "measured on the first training images" in capsys.readouterr().err
    assert load_record(path).measurement_version == MEASUREMENT_VERSION
    # A version-1 record without such measurements is still served as it is.
    quiet = tiny_config(num_epochs=1, record_gradient_norms=False, learning_rate=0.02)
    plain = engine.run(quiet, runs_dir=tmp_path, data=data10, progress=False)
    payload = json.loads(Path(plain.path).read_text())
    del payload["measurement_version"]
    payload["notes"] = ["the old record"]
    Path(plain.path).write_text(json.dumps(payload))
    served = engine.run(quiet, runs_dir=tmp_path, data=data10, progress=False)
    assert served.measurement_version == 1 and served.notes == ["the old record"]


def test_ungated_eps_resnet_records_without_block_responses_are_retrained_under_the_same_id(tmp_path, data10,
                                                                                           capsys):
    from helpers import engine
    from helpers.records import checkpoint_must_restart, measures_block_responses, stale_measurements

    ungated = tiny_config(model="eps_resnet20", num_epochs=1, model_options={"width_multiplier": 0.25, "epsilon": 0.0})
    assert measures_block_responses(ungated)
    assert not measures_block_responses(ungated.with_model_options(epsilon=8.0))
    assert not measures_block_responses(ungated.replace(model_options={"width_multiplier": 0.25}))  # default 2.5
    assert not measures_block_responses(tiny_config())
    assert checkpoint_must_restart(ungated, 2) and checkpoint_must_restart(tiny_config(), 1)
    assert not checkpoint_must_restart(tiny_config(), 2) and not checkpoint_must_restart(ungated, 3)

    first = engine.run(ungated, runs_dir=tmp_path, data=data10, progress=False)
    path = Path(first.path)
    payload = json.loads(path.read_text())
    payload["measurement_version"] = 2  # as written before block responses were recorded
    for key in ("block_responses", "block_responses_training", "block_response_epochs"):
        del payload["diagnostics"][key]
    payload["notes"] = ["the old record"]
    path.write_text(json.dumps(payload))
    assert "holds no residual responses of its blocks" in stale_measurements(load_record(path))
    capsys.readouterr()
    again = engine.run(ungated, runs_dir=tmp_path, data=data10, progress=True)
    assert again.run_id == first.run_id and "the old record" not in again.notes
    assert "holds no residual responses of its blocks" in capsys.readouterr().err
    assert again.diagnostics["block_responses"] and again.measurement_version == MEASUREMENT_VERSION
    # A version-2 record of any other net is served as it is.
    other = tiny_config(num_epochs=1, learning_rate=0.02)
    plain = engine.run(other, runs_dir=tmp_path, data=data10, progress=False)
    payload = json.loads(Path(plain.path).read_text())
    payload["measurement_version"] = 2
    payload["notes"] = ["the old record"]
    Path(plain.path).write_text(json.dumps(payload))
    served = engine.run(other, runs_dir=tmp_path, data=data10, progress=False)
    assert served.measurement_version == 2 and served.notes == ["the old record"]


def _fake_range_test_and_training(monkeypatch):
    """Replaces the range test (its smoothed loss turns up after 0.3, so Smith's
    reading is 0.3) and training (which stops with a RuntimeError, so
    ``train_main`` returns 2); returns the lists the fakes append to: the range
    tests' (learning rate, iterations, runs_dir), and the configurations that
    would have trained."""
    import types

    from helpers import engine, studies

    calls, trained = [], []

    def fake_range_test(config, iterations, runs_dir=None, progress=True, cached_only=False):
        calls.append((config.learning_rate, iterations, runs_dir))
        return types.SimpleNamespace(learning_rates=[0.01, 0.1, 0.3, 1.0], smoothed_losses=[2.3, 2.0, 1.8, 3.0])

    def fake_run(config, **kwargs):
        trained.append(config)
        raise RuntimeError("stop here")

    monkeypatch.setattr(studies, "learning_rate_range_test", fake_range_test)
    monkeypatch.setattr(engine, "run", fake_run)
    return calls, trained


def test_cli_onecycle_without_lr_takes_its_peak_from_the_range_test(tmp_path, monkeypatch, capsys):
    """`train --schedule onecycle` without --lr: the peak is Smith's reading of a
    (cached) range test on the run's own configuration; --lr overrides it.
    (The recipe's multiple of the reading is pinned to 1 here; the next test
    covers it.)"""
    import argparse

    from helpers import cli_train

    calls, trained = _fake_range_test_and_training(monkeypatch)
    monkeypatch.setattr(cli_train, "ONECYCLE_PEAK_FACTOR", 1.0)
    parser = argparse.ArgumentParser()
    cli_train.add_train_arguments(parser)
    args = parser.parse_args(["--model", "resnet20", "--dataset", "cifar10", "--schedule", "onecycle",
                              "--runs-dir", str(tmp_path)])
    assert cli_train.train_main(args) == 2
    assert trained[-1].learning_rate == 0.3 and calls == [(0.1, 200, str(tmp_path))]
    assert "one-cycle peak rate 0.3: the LR range test's maximum rate" in capsys.readouterr().err
    args = parser.parse_args(["--model", "resnet20", "--dataset", "cifar10", "--schedule", "onecycle", "--lr", "0.5"])
    cli_train.train_main(args)
    assert trained[-1].learning_rate == 0.5 and len(calls) == 1
    args = parser.parse_args(["--model", "resnet20", "--dataset", "cifar10", "--schedule", "cosine"])
    cli_train.train_main(args)
    assert trained[-1].learning_rate == 0.1 and len(calls) == 1


def test_cli_onecycle_peak_factor_scales_the_reading_only_with_the_recipe(tmp_path, monkeypatch, capsys):
    """ONECYCLE_PEAK_FACTOR multiplies the range test's reading when the recipe
    applies, and says so; --no-recipe keeps the plain reading (so the selection
    runs of benchmarks/onecycle_recipe.py keep their run ids); a factor that is
    not positive is refused by name."""
    import argparse

    from helpers import cli_train

    _, trained = _fake_range_test_and_training(monkeypatch)
    monkeypatch.setattr(cli_train, "ONECYCLE_PEAK_FACTOR", 2.0)
    parser = argparse.ArgumentParser()
    cli_train.add_train_arguments(parser)
    cli_train.add_recipe_argument(parser)
    base = ["--model", "resnet20", "--dataset", "cifar10", "--schedule", "onecycle", "--runs-dir", str(tmp_path)]
    assert cli_train.train_main(parser.parse_args(base)) == 2
    assert trained[-1].learning_rate == 0.6
    assert "one-cycle peak rate 0.6: 2 x the LR range test's maximum rate 0.3" in capsys.readouterr().err
    assert cli_train.train_main(parser.parse_args(base + ["--no-recipe"])) == 2
    assert trained[-1].learning_rate == 0.3
    assert "one-cycle peak rate 0.3: the LR range test's maximum rate" in capsys.readouterr().err
    config = cli_train.config_from_arguments(parser.parse_args(base))
    for bad in (0, -1.0, "2"):
        with pytest.raises(ValueError, match="peak factor must be a positive number"):
            cli_train.onecycle_peak_from_range_test(config, runs_dir=str(tmp_path), factor=bad)


def test_cli_peak_factor_option_sets_the_multiple_of_the_reading(tmp_path, monkeypatch, capsys):
    """`train --peak-factor F`: the peak is F x the reading, with or without the
    recipe (so a benchmark can ask for the recipe's factor on any seed without
    knowing the seed's reading); refused, by name and before any training,
    with --lr, with another schedule, with --from-record, and when not a
    positive number."""
    from helpers import cli, cli_train

    _, trained = _fake_range_test_and_training(monkeypatch)
    monkeypatch.setattr(cli_train, "ONECYCLE_PEAK_FACTOR", 2.0)
    base = ["train", "--model", "resnet20", "--dataset", "cifar10", "--schedule", "onecycle", "--runs-dir", str(tmp_path)]
    for extra, peak in ((["--peak-factor", "3"], 0.9), (["--no-recipe", "--peak-factor", "2"], 0.6),
                        (["--no-recipe"], 0.3), ([], 0.6)):
        assert cli.main(base + extra) == 2  # the fake engine stops before training
        assert trained[-1].learning_rate == pytest.approx(peak)
    assert "one-cycle peak rate 0.9: 3 x the LR range test's maximum rate 0.3" in capsys.readouterr().err
    count = len(trained)
    for extra, message in ((["--peak-factor", "2", "--lr", "0.4"],
                            "give one of them. Received: --lr 0.4 --peak-factor 2"),
                           (["--peak-factor", "2", "--schedule", "cosine"],
                            "use it with --schedule onecycle. Received: --schedule cosine")):
        assert cli.main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["train", "--from-record", str(tmp_path / "record.json"), "--peak-factor", "2"]) == 2
    assert "leave out --peak-factor. Received: --peak-factor" in capsys.readouterr().err
    assert len(trained) == count
    for bad in ("0", "-1", "two", "inf"):
        with pytest.raises(SystemExit):
            cli.main(base + ["--peak-factor", bad])
        assert "--peak-factor: expected a positive number" in capsys.readouterr().err


def test_cli_onecycle_takes_the_recipe_for_the_options_left_out(monkeypatch):
    """`train --schedule onecycle` fills weight decay and label smoothing from
    ONECYCLE_RECIPE only where the options are left out, and only for one-cycle."""
    import argparse

    from helpers import cli_train, engine

    trained = []

    def fake_run(config, **kwargs):
        trained.append(config)
        raise RuntimeError("stop here")

    monkeypatch.setattr(engine, "run", fake_run)
    monkeypatch.setattr(cli_train, "ONECYCLE_RECIPE", {"weight_decay": 7e-4, "label_smoothing": 0.05})
    parser = argparse.ArgumentParser()
    cli_train.add_train_arguments(parser)
    base = ["--model", "resnet20", "--dataset", "cifar10", "--lr", "0.2"]
    cli_train.train_main(parser.parse_args(base + ["--schedule", "onecycle"]))
    assert (trained[-1].weight_decay, trained[-1].label_smoothing) == (7e-4, 0.05)
    cli_train.train_main(parser.parse_args(base + ["--schedule", "onecycle", "--weight-decay", "0"]))
    assert (trained[-1].weight_decay, trained[-1].label_smoothing) == (0.0, 0.05)
    cli_train.train_main(parser.parse_args(base + ["--schedule", "onecycle", "--label-smoothing", "0.2"]))
    assert (trained[-1].weight_decay, trained[-1].label_smoothing) == (7e-4, 0.2)
    cli_train.train_main(parser.parse_args(base + ["--schedule", "cosine"]))
    default = cli_train.ExperimentConfig(model="resnet20", dataset="cifar10")
    assert (trained[-1].weight_decay, trained[-1].label_smoothing) == (default.weight_decay, default.label_smoothing)
    assert dict(trained[-1].schedule_options) == {}
    # The recipe's cycle shape, key by key under the user's own --schedule-option.
    monkeypatch.setattr(cli_train, "ONECYCLE_RECIPE", {"weight_decay": 7e-4, "label_smoothing": 0.05,
                                                       "schedule_options": {"pct_start": 0.45, "div_factor": 10.0}})
    cli_train.train_main(parser.parse_args(base + ["--schedule", "onecycle"]))
    assert dict(trained[-1].schedule_options) == {"pct_start": 0.45, "div_factor": 10.0}
    cli_train.train_main(parser.parse_args(base + ["--schedule", "onecycle", "--schedule-option", "pct_start=0.3"]))
    assert dict(trained[-1].schedule_options) == {"pct_start": 0.3, "div_factor": 10.0}
    cli_train.train_main(parser.parse_args(base + ["--schedule", "cosine"]))
    assert dict(trained[-1].schedule_options) == {}
    # --no-recipe: the configuration's own defaults for everything left out.
    cli_train.add_recipe_argument(parser)
    cli_train.train_main(parser.parse_args(base + ["--schedule", "onecycle", "--no-recipe", "--label-smoothing", "0.2"]))
    assert (trained[-1].weight_decay, trained[-1].label_smoothing, dict(trained[-1].schedule_options)) == (
        default.weight_decay, 0.2, {})
    # Nesterov from the recipe unless given; --nesterov alone is on, --nesterov off turns it off.
    monkeypatch.setattr(cli_train, "ONECYCLE_RECIPE", {"nesterov": True})
    cli_train.train_main(parser.parse_args(base + ["--schedule", "onecycle"]))
    assert trained[-1].nesterov is True
    cli_train.train_main(parser.parse_args(base + ["--schedule", "onecycle", "--nesterov", "off"]))
    assert trained[-1].nesterov is False
    cli_train.train_main(parser.parse_args(base + ["--schedule", "cosine", "--nesterov"]))
    assert trained[-1].nesterov is True
    cli_train.train_main(parser.parse_args(base + ["--schedule", "cosine"]))
    assert trained[-1].nesterov is default.nesterov is False
    with pytest.raises(ValueError, match="nesterov must be True or False. Received: 'maybe'"):
        cli_train.train_main(parser.parse_args(base + ["--schedule", "cosine", "--nesterov", "maybe"]))


def test_cli_train_help_states_the_configuration_defaults_and_from_record_refuses_no_recipe(monkeypatch, tmp_path):
    """The help's list of defaults follows ExperimentConfig; --no-recipe with
    --from-record is refused (the record's configuration is retrained whole)."""
    import argparse
    import dataclasses

    from helpers import cli_train

    parser = argparse.ArgumentParser()
    cli_train.add_train_arguments(parser)
    cli_train.add_from_record_argument(parser)
    cli_train.add_recipe_argument(parser)
    assert "weight decay 0.0001, batch 128, 10 epochs, constant schedule" in parser.epilog
    changed = dataclasses.replace(cli_train.ExperimentConfig(model="resnet20"), weight_decay=3e-4, num_epochs=7)
    monkeypatch.setattr(cli_train, "ExperimentConfig", lambda **values: changed)
    assert "weight decay 0.0003, batch 128, 7 epochs" in cli_train._train_epilog()
    args = parser.parse_args(["--from-record", str(tmp_path / "record.json"), "--no-recipe"])
    with pytest.raises(ValueError, match=r"leave out --no-recipe\. Received: --no-recipe"):
        cli_train.train_main(args)
