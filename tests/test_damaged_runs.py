"""Damaged run files: a record or checkpoint that is cut short, empty or of the
wrong shape costs one message naming the file (and at most the epochs after
the last good checkpoint), never a traceback; checkpoints reach the disk
before they become visible; the run lock names its owner from the moment it
exists.

Training tests use the engine tests' 1/8-width VGG-11 on 128 synthetic images.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import engine
from helpers.checkpoints import Checkpointer, RunLock
from helpers.records import MEASUREMENT_VERSION, RunRecord, load_record
from tests.engine_helpers import PROJECT_ROOT, synthetic_cifar, tiny_config


@pytest.fixture(scope="module")
def data10():
    return synthetic_cifar()


def _lines_naming(stderr: str, path: Path) -> list[str]:
    return [line for line in stderr.splitlines() if str(path) in line]


# -- run records -----------------------------------------------------------


def _write_fake_record(runs_dir: Path, config, data) -> Path:
    run_id = engine.resolve_run_id(config, data, runs_dir)
    path = runs_dir / run_id / "record.json"
    RunRecord(run_id=run_id, status="completed", config=config,
              history={"epoch": [1], "loss": [1.0]}, test={"accuracy": 0.5}).save(path)
    return path


def test_a_record_cut_short_is_named_and_the_run_retrained(tmp_path, data10, capsys):
    config = tiny_config(num_epochs=1)
    path = _write_fake_record(tmp_path, config, data10)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])

    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    stderr = capsys.readouterr().err
    (line,) = _lines_naming(stderr, path)
    assert "retrain" in line
    assert "Traceback" not in stderr
    assert record.status == "completed"
    assert load_record(path).status == "completed"  # the damaged file was replaced


@pytest.mark.parametrize("shape", ["a_list", "no_status", "history_as_list"])
def test_a_record_of_the_wrong_shape_is_named_and_retrained(tmp_path, data10, capsys, shape):
    config = tiny_config(num_epochs=1)
    path = _write_fake_record(tmp_path, config, data10)
    good = json.loads(path.read_text())
    payload = {
        "a_list": [good],
        "no_status": {key: value for key, value in good.items() if key != "status"},
        "history_as_list": {**good, "history": [1.0, 0.5]},
    }[shape]
    path.write_text(json.dumps(payload))

    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    stderr = capsys.readouterr().err
    (line,) = _lines_naming(stderr, path)
    assert "retrain" in line
    assert "Traceback" not in stderr
    assert record.status == "completed" and record.history["epoch"] == [1]


# -- checkpoints -----------------------------------------------------------


def _train_and_stop_after(epoch: int, config, runs_dir: Path, data, monkeypatch) -> Path:
    """Trains ``config`` until ``epoch`` is checkpointed, then stops it as Ctrl-C would."""
    original_save = Checkpointer.save

    def save_then_stop(self, model, epochs_completed, state):
        original_save(self, model, epochs_completed, state)
        if epochs_completed == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        engine.run(config, runs_dir=runs_dir, data=data, progress=False)
    monkeypatch.setattr(Checkpointer, "save", original_save)
    (run_dir,) = [path for path in runs_dir.iterdir() if path.is_dir()]
    return run_dir


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, data10, monkeypatch, capsys):
    config = tiny_config(num_epochs=3)
    run_dir = _train_and_stop_after(2, config, tmp_path, data10, monkeypatch)
    state = run_dir / "ckpt-0002" / "state.json"
    state.write_text("")
    capsys.readouterr()

    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    stderr = capsys.readouterr().err
    (line,) = _lines_naming(stderr, state)
    assert "epoch 1" in line  # says which checkpoint it falls back to
    assert "Traceback" not in stderr
    assert record.status == "completed" and record.history["epoch"] == [1, 2, 3]
    assert [session["start_epoch"] for session in record.sessions] == [0, 1]


@pytest.mark.parametrize("content", ['{"epochs_completed": 1, "hist', "[]"])
def test_a_damaged_only_checkpoint_restarts_the_run_and_says_so(tmp_path, data10, monkeypatch, capsys,
                                                                content):
    config = tiny_config(num_epochs=2)
    run_dir = _train_and_stop_after(1, config, tmp_path, data10, monkeypatch)
    state = run_dir / "ckpt-0001" / "state.json"
    state.write_text(content)
    capsys.readouterr()

    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    stderr = capsys.readouterr().err
    (line,) = _lines_naming(stderr, state)
    assert "restart" in line
    assert "Traceback" not in stderr
    assert record.status == "completed" and record.history["epoch"] == [1, 2]
    assert [session["start_epoch"] for session in record.sessions] == [0]


def test_a_damaged_checkpoint_pointer_resumes_from_the_newest_good_checkpoint(tmp_path, data10,
                                                                              monkeypatch, capsys):
    config = tiny_config(num_epochs=3)
    run_dir = _train_and_stop_after(2, config, tmp_path, data10, monkeypatch)
    pointer = run_dir / "checkpoint.json"
    pointer.write_text("")
    capsys.readouterr()

    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    stderr = capsys.readouterr().err
    (line,) = _lines_naming(stderr, pointer)
    assert "epoch 2" in line
    assert record.status == "completed" and record.history["epoch"] == [1, 2, 3]
    assert [session["start_epoch"] for session in record.sessions] == [0, 2]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names open files through /proc")
def test_a_checkpoint_reaches_the_disk_before_its_folder_is_renamed_into_place(tmp_path, monkeypatch):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)

    synced: set[str] = set()
    renamed: list[tuple[str, set[str]]] = []
    real_fsync = os.fsync

    def fsync(descriptor):
        synced.add(os.path.realpath(os.readlink(f"/proc/self/fd/{descriptor}")))
        return real_fsync(descriptor)

    def checking(real_rename):
        def rename(source, target, *args, **kwargs):
            if Path(source).is_dir():
                inside = {os.path.realpath(path) for path in [Path(source), *Path(source).rglob("*")]}
                renamed.append((str(target), inside - synced))
            return real_rename(source, target, *args, **kwargs)
        return rename

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", checking(os.replace))
    monkeypatch.setattr(os, "rename", checking(os.rename))
    Checkpointer(tmp_path).save(model, 1, {"epochs_completed": 1, "history": {}, "diagnostics": {},
                                           "sessions": [], "callback_states": []})
    assert renamed, "the checkpoint folder was never renamed into place"
    for target, not_synced in renamed:
        assert not not_synced, f"{target}: renamed before these reached the disk: {sorted(not_synced)}"


# -- the run lock ----------------------------------------------------------


def test_the_run_lock_names_its_owner_from_the_moment_it_exists(tmp_path, monkeypatch):
    lock = tmp_path / ".lock"
    seen: list[str] = []

    def watching(name):
        real = getattr(os, name)

        def call(*args, **kwargs):
            result = real(*args, **kwargs)
            if lock.exists():
                seen.append(lock.read_text())
            return result
        return call

    for name in ("open", "write", "close", "fdopen", "fsync", "link", "rename", "replace", "unlink"):
        monkeypatch.setattr(os, name, watching(name))
    with RunLock(tmp_path):
        seen.append(lock.read_text())
    monkeypatch.undo()

    assert not lock.exists()
    for content in seen:
        owner = json.loads(content)  # never empty, never half written
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert owner["started"]


def _dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    return int(finished.stdout)


def test_a_live_owner_keeps_the_lock_and_a_dead_one_loses_it(tmp_path):
    lock = tmp_path / ".lock"
    host = socket.gethostname()
    lock.write_text(json.dumps({"pid": os.getppid(), "host": host, "started": "2026-01-01T00:00:00+00:00"}))
    with pytest.raises(RuntimeError, match=str(os.getppid())):
        with RunLock(tmp_path):
            pass
    assert json.loads(lock.read_text())["pid"] == os.getppid()  # left to its owner

    for stale in (json.dumps({"pid": _dead_pid(), "host": host, "started": "2026-01-01T00:00:00+00:00"}),
                  str(_dead_pid())):  # the lock format of older checkouts: the pid alone
        lock.write_text(stale)
        with RunLock(tmp_path):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert not lock.exists()


def test_a_lock_held_on_another_host_is_refused_with_what_to_do(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid", "started": "2026-01-01T00:00:00+00:00"}))
    with pytest.raises(RuntimeError, match="elsewhere.invalid") as error:
        with RunLock(tmp_path):
            pass
    assert f"delete {lock}" in str(error.value)


_SECOND_PROCESS = """
import os, sys
from helpers.checkpoints import RunLock
def no_link(*args, **kwargs):
    raise PermissionError(1, "Operation not permitted")
os.link = no_link
try:
    with RunLock(sys.argv[1]):
        print("taken")
except RuntimeError as error:
    print(error)
"""


def test_the_lock_works_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch):
    def no_link(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    run_dir = tmp_path / "run"
    with RunLock(run_dir):
        assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
        second = subprocess.run([sys.executable, "-c", _SECOND_PROCESS, str(run_dir)], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=60)
        assert f"being trained by process {os.getpid()}" in second.stdout, second.stderr
    assert not run_dir.exists()  # nothing else was written: the folder it made is gone too


def test_a_checkpoint_measured_on_the_first_images_restarts_the_run_and_says_so(tmp_path, data10, monkeypatch,
                                                                                capsys):
    # Checkpoints written before the measurement fix carry diagnostics taken on the first
    # training images; resuming would mix them with the stratified ones.
    config = tiny_config(num_epochs=2)
    run_dir = _train_and_stop_after(1, config, tmp_path, data10, monkeypatch)
    state = run_dir / "ckpt-0001" / "state.json"
    payload = json.loads(state.read_text())
    assert payload.pop("measurement_version") == MEASUREMENT_VERSION
    state.write_text(json.dumps(payload))
    capsys.readouterr()

    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    stderr = capsys.readouterr().err
    assert "measured on the first training images" in stderr and "training from the start" in stderr
    assert record.status == "completed" and record.history["epoch"] == [1, 2]
    assert [session["start_epoch"] for session in record.sessions] == [0]
    assert len(record.diagnostics["gradient_norm_epochs"]) == 3  # 0, 1, 2: measured once each

def test_an_ungated_eps_resnet_checkpoint_without_block_responses_restarts_the_run(tmp_path, data10, monkeypatch,
                                                                                capsys):
    # Its responses before training were never taken, and resuming cannot take them.
    config = tiny_config(model="eps_resnet20", num_epochs=2, model_options={"width_multiplier": 0.25, "epsilon": 0.0})
    run_dir = _train_and_stop_after(1, config, tmp_path, data10, monkeypatch)
    state = run_dir / "ckpt-0001" / "state.json"
    payload = json.loads(state.read_text())
    payload["measurement_version"] = 2
    state.write_text(json.dumps(payload))
    capsys.readouterr()

    record = engine.run(config, runs_dir=tmp_path, data=data10, progress=False)
    stderr = capsys.readouterr().err
    assert "holds no residual responses of its blocks" in stderr and "training from the start" in stderr
    assert record.status == "completed" and [session["start_epoch"] for session in record.sessions] == [0]
    assert record.diagnostics["block_response_epochs"] == [0, 1, 2]

