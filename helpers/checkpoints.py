"""Per-epoch checkpoints of a run, and the lock that keeps one process on a run.

Why not ``keras.callbacks.BackupAndRestore``: it restores the weights and the
optimizer, but not what the record needs to continue as if never stopped:
the plateau rule's counters (Keras' ``ReduceLROnPlateau`` resets them in
``on_train_begin``), the history, the diagnostics and the sessions.

Layout, in the run folder::

    checkpoint.json         {"directory": "ckpt-0007", "epochs_completed": 7}
    ckpt-0006/              the checkpoint before (kept: see below)
    ckpt-0007/              model.weights.h5, optimizer.npz, state.json
    .lock                   {"pid": ..., "host": ..., "started": ...} while trained

A checkpoint folder is written under a temporary name, every file in it
fsynced, and then renamed into place; only then does ``checkpoint.json``
point at it. The newest two are kept, so a damaged newest checkpoint (a disk
that lied about a write, a file truncated by hand) costs one epoch, not the
run: it is named in a one-line message and the one before is used, or, with
none, the run restarts from its first epoch and says so.

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import re
import shutil
import socket
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers import atomic

CHECKPOINT_POINTER = "checkpoint.json"
STATE_FILE = "state.json"
WEIGHTS_FILE = "model.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"
LOCK_FILE = ".lock"
KEPT_CHECKPOINTS = 2
_CHECKPOINT_NAME = re.compile(r"^ckpt-(\d{4,})$")
# What a checkpoint's state must hold, and of which type, to resume from it.
_STATE_FIELDS = {"epochs_completed": int, "history": dict, "diagnostics": dict, "sessions": list}

_CALLBACK_STATE_TYPES = (bool, int, float, str, type(None))


def callback_state(callback) -> dict[str, Any]:
    """A callback's plain attributes (counters, best values): what a checkpoint keeps of it."""
    state = {}
    for key, value in vars(callback).items():
        if key in ("model", "params", "validation_data") or callable(value):
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, _CALLBACK_STATE_TYPES):
            state[key] = value
    return state


def encode_floats(value: Any) -> Any:
    """JSON cannot spell inf/NaN strictly; the checkpoint spells them out."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        return {key: encode_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [encode_floats(item) for item in value]
    return value


def decode_floats(value: Any) -> Any:
    """The inverse of :func:`encode_floats`."""
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {key: decode_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_floats(item) for item in value]
    return value


class DamagedCheckpoint(ValueError):
    """A checkpoint file that cannot be resumed from; the message says why."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A whole checkpoint on disk and its decoded state."""

    directory: Path
    state: dict[str, Any]

    @property
    def epochs_completed(self) -> int:
        return int(self.state["epochs_completed"])


def _print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _epoch_of(directory: Path) -> int:
    match = _CHECKPOINT_NAME.match(directory.name)
    return int(match.group(1)) if match else -1


class Checkpointer:
    """Writes a run's per-epoch checkpoints and finds the newest whole one.

    Args:
        run_dir: The run's folder.
        warn: Called with one line per damaged file found (default: stderr).
    """

    def __init__(self, run_dir: Path, warn: Callable[[str], None] | None = None):
        self.run_dir = Path(run_dir)
        self.pointer = self.run_dir / CHECKPOINT_POINTER
        self.warn = warn or _print_warning

    # -- reading ---------------------------------------------------------

    def read(self, directory: Path) -> Checkpoint:
        """Checks a checkpoint's files and decodes its state.

        Raises:
            DamagedCheckpoint: naming the file that is missing, empty, cut
                short or of the wrong shape.
        """
        state_path = directory / STATE_FILE
        try:
            text = state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DamagedCheckpoint(state_path, "missing") from None
        except (OSError, UnicodeDecodeError) as error:
            raise DamagedCheckpoint(state_path, f"unreadable ({error})") from None
        if not text.strip():
            raise DamagedCheckpoint(state_path, "empty")
        try:
            state = decode_floats(json.loads(text))
        except ValueError as error:
            raise DamagedCheckpoint(state_path, f"cut short or not JSON ({error})") from None
        if not isinstance(state, dict):
            raise DamagedCheckpoint(state_path, f"not a checkpoint state (a JSON {type(state).__name__})")
        for key, kind in _STATE_FIELDS.items():
            if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
                raise DamagedCheckpoint(state_path, f"not a checkpoint state ({key!r} missing or not "
                                                    f"{kind.__name__})")
        weights = directory / WEIGHTS_FILE
        if not weights.is_file() or weights.stat().st_size == 0:
            raise DamagedCheckpoint(weights, "missing or empty")
        optimizer = directory / OPTIMIZER_FILE
        try:
            with zipfile.ZipFile(optimizer) as archive:  # an .npz; reads its index, at the end
                archive.namelist()
        except (OSError, zipfile.BadZipFile) as error:
            raise DamagedCheckpoint(optimizer, f"missing or cut short ({error})") from None
        return Checkpoint(directory, state)

    def _pointed(self) -> tuple[Path | None, str | None]:
        """(the folder ``checkpoint.json`` names, None) or (None, what is wrong with it).

        (None, None) when there is no pointer: nothing to resume.
        """
        try:
            text = self.pointer.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except (OSError, UnicodeDecodeError) as error:
            return None, f"unreadable ({error})"
        if not text.strip():
            return None, "empty"
        try:
            name = json.loads(text)["directory"]
        except (ValueError, KeyError, TypeError) as error:
            return None, f"cut short or not a pointer ({type(error).__name__}: {error})"
        if not isinstance(name, str) or _epoch_of(self.run_dir / name) < 0:
            return None, f"names no checkpoint folder ({name!r})"
        return self.run_dir / name, None

    def _readable(self, directory: Path) -> bool:
        try:
            self.read(directory)
        except DamagedCheckpoint:
            return False
        return True

    def latest(self) -> Checkpoint | None:
        """The newest whole checkpoint, or None to start from the first epoch.

        Normally the one ``checkpoint.json`` names. Each damaged file met on
        the way is named through ``warn`` in one line that says what happens
        instead: the checkpoint before it is used, or the run restarts.
        """
        pointed, pointer_problem = self._pointed()
        if pointed is None and pointer_problem is None:
            return None
        folders = {path for path in self.run_dir.glob("ckpt-*") if path.is_dir() and _epoch_of(path) >= 0}
        if pointed is not None:  # never a folder newer than the pointer: it may be unfinished
            folders = {path for path in folders if _epoch_of(path) <= _epoch_of(pointed)} | {pointed}
        candidates = sorted(folders, key=_epoch_of, reverse=True)
        found = None
        for index, directory in enumerate(candidates):
            try:
                found = self.read(directory)
                break
            except DamagedCheckpoint as damaged:
                following = next((c for c in candidates[index + 1:] if self._readable(c)), None)
                then = (f"falling back to {following.name}, the checkpoint after epoch {_epoch_of(following)}."
                        if following is not None else
                        "no earlier whole checkpoint: restarting the run from its first epoch.")
                self.warn(f"{damaged.path}: damaged checkpoint, {damaged.problem}; {then}")
        if pointer_problem is not None:
            then = (f"resuming from {found.directory.name}, the newest whole checkpoint (after epoch "
                    f"{found.epochs_completed})." if found is not None
                    else "no whole checkpoint beside it: restarting the run from its first epoch.")
            self.warn(f"{self.pointer}: damaged checkpoint pointer, {pointer_problem}; {then}")
        return found

    # -- writing ---------------------------------------------------------

    def save(self, model, epochs_completed: int, state: dict[str, Any]) -> None:
        """Checkpoints ``model`` (weights and optimizer variables) and ``state``."""
        name = f"ckpt-{epochs_completed:04d}"
        final = self.run_dir / name
        temporary = self.run_dir / f".{name}.{os.getpid()}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        model.save_weights(temporary / WEIGHTS_FILE)
        with open(temporary / OPTIMIZER_FILE, "wb") as handle:
            np.savez(handle, *[np.asarray(variable.numpy()) for variable in model.optimizer.variables])
        (temporary / STATE_FILE).write_text(json.dumps(encode_floats(state)), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        atomic.publish_directory(temporary, final)
        atomic.write_text(self.pointer, json.dumps({"directory": name, "epochs_completed": epochs_completed}))
        kept = sorted((path for path in self.run_dir.glob("ckpt-*") if _epoch_of(path) >= 0),
                      key=_epoch_of, reverse=True)
        for old in kept[KEPT_CHECKPOINTS:]:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def restore(checkpoint: Checkpoint, model) -> dict[str, Any]:
        """Loads a checkpoint's weights and optimizer variables into ``model``; returns its state.

        Raises:
            ValueError: naming the checkpoint, when it belongs to another model.
        """
        directory = checkpoint.directory
        model.load_weights(directory / WEIGHTS_FILE)
        with np.load(directory / OPTIMIZER_FILE) as archive:
            values = [archive[f"arr_{index}"] for index in range(len(archive.files))]
        variables = model.optimizer.variables
        if len(values) != len(variables):
            raise ValueError(
                f"{directory}: the checkpoint holds {len(values)} optimizer variables but the "
                f"optimizer has {len(variables)}; delete the run directory to start over. "
                f"Received: {len(values)} values"
            )
        for variable, value in zip(variables, values):
            if tuple(variable.shape) != tuple(value.shape):
                raise ValueError(
                    f"{directory}: optimizer variable {variable.path} has shape {variable.shape} "
                    f"but the checkpoint holds {value.shape}. Received: a checkpoint of another model"
                )
            variable.assign(value)
        return checkpoint.state

    def remove_all(self) -> None:
        """Removes every checkpoint (after the run finished, or to start over)."""
        for old in self.run_dir.glob("ckpt-*"):
            shutil.rmtree(old, ignore_errors=True)
        for old in self.run_dir.glob(".ckpt-*.tmp"):
            shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.pointer.unlink()


# ---------------------------------------------------------------------------
# The run lock
# ---------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_owner(path: Path) -> dict[str, Any] | None:
    """The lock's owner; a bare pid is the format of older checkouts. None if unreadable."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text.isdigit():
        return {"pid": int(text), "host": socket.gethostname(), "started": None}
    try:
        owner = json.loads(text)
    except ValueError:
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    return owner


class RunLock:
    """Keeps a second process from training the same run folder at the same time.

    The lock file is written whole under a private name, then linked to
    ``.lock`` (``os.link`` fails if ``.lock`` exists): it appears with its
    owner (pid, host, start time) already in it, so another process never
    sees a lock without an owner. A lock whose owner died on this host is
    taken over; one held by a live process, or by a process on another host
    (whose liveness cannot be checked from here), is refused with a message
    saying what to do.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.held = False
        self._created_folder = False

    def __enter__(self) -> "RunLock":
        self._created_folder = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        text = json.dumps(owner)
        temporary = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}.tmp")
        atomic.write_text(temporary, text)
        try:
            for _ in range(3):
                try:
                    self._link_or_create(temporary, text)
                except FileExistsError:
                    self._remove_if_stale()
                    continue
                self.held = True
                return self
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        raise RuntimeError(f"{self.path}: could not take the run lock; another process keeps taking it.")

    def _link_or_create(self, temporary: Path, text: str) -> None:
        """Makes ``.lock`` appear with ``text`` in it; FileExistsError if it exists."""
        try:
            os.link(temporary, self.path)
            return
        except FileExistsError:
            raise
        except OSError:
            pass  # a file system without hard links (some FUSE mounts): create, then write
        descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def _remove_if_stale(self) -> None:
        """Removes the lock if its owner is gone; raises RuntimeError if it may be alive."""
        try:
            inspected = os.stat(self.path)
        except FileNotFoundError:
            return
        owner = _read_owner(self.path)
        if owner is None:
            # Without hard links a lock is empty for a moment after it is created.
            raise RuntimeError(
                f"{self.path}: the run lock names no owner (being taken by another process, or "
                "left damaged), so whether this run is being trained is unknown. If no process "
                "trains it, delete that file and start again."
            )
        here = socket.gethostname()
        since = f" since {owner['started']}" if owner.get("started") else ""
        if owner.get("host", here) != here:
            raise RuntimeError(
                f"{self.path.parent}: this run is being trained by process {owner['pid']} on host "
                f"{owner['host']}{since}. If that process is gone, delete {self.path} and start again."
            )
        if owner["pid"] != os.getpid() and process_alive(owner["pid"]):
            raise RuntimeError(
                f"{self.path.parent}: this run is being trained by process {owner['pid']}{since}. "
                "Wait for it, or stop that process; its checkpoints will be resumed."
            )
        # Taking over: move the stale lock aside and check it is the file that
        # was judged stale, not a fresh lock another process made meanwhile.
        aside = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = os.stat(aside)
        if (moved.st_ino, moved.st_dev) != (inspected.st_ino, inspected.st_dev):
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)  # put the other process's lock back
        os.unlink(aside)

    def __exit__(self, *exc_info) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            if self._created_folder:
                # A run that failed before writing anything (a bad option,
                # say) leaves no empty folder behind.
                with contextlib.suppress(OSError):
                    self.path.parent.rmdir()
        self.held = False
