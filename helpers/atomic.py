"""Files and folders that appear whole or not at all, and survive a power cut.

Everything the project keeps across processes (run records, checkpoints,
cached data, the LR range test's results) is written beside its final name
and renamed over it. A rename alone is atomic for other processes but not
for the disk: after a crash the new name can point at a file whose blocks
were never written. So the content is fsynced before the rename, and the
folder after it (so the rename itself is on disk).

This module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Iterator


def fsync_directory(directory: str | os.PathLike) -> None:
    """Flushes a folder's entries (created, renamed, removed names) to disk.

    A no-op where folders cannot be opened (Windows) or fsynced.
    """
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def fsync_file(path: str | os.PathLike) -> None:
    """Flushes one file's content to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def replacing_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``; on success it replaces ``path``.

    Yields a hidden name private to this process, with ``path``'s suffix (so
    writers that choose a format by suffix still do); whatever was written
    there is fsynced and renamed over ``path`` when the block ends without an
    error, then the folder is fsynced. On an error the temporary file is
    removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    fsync_directory(path.parent)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """:func:`replacing_path` for writers that want an open handle.

    Usage: ``with replacing(path) as handle: handle.write(text)``.
    """
    with replacing_path(path) as temporary:
        with open(temporary, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (UTF-8)."""
    with replacing(path) as handle:
        handle.write(text)


def publish_directory(temporary: str | os.PathLike, final: str | os.PathLike) -> None:
    """Renames a finished folder into place once everything in it is on disk.

    Every file and folder under ``temporary`` is fsynced first, then the
    folder is renamed to ``final`` (which must not exist) and the parent
    folder fsynced, so the new name never points at unwritten blocks.
    """
    temporary, final = Path(temporary), Path(final)
    for root, folders, files in os.walk(temporary):
        for name in files:
            fsync_file(Path(root) / name)
        for name in folders:
            fsync_directory(Path(root) / name)
    fsync_directory(temporary)
    os.replace(temporary, final)
    fsync_directory(final.parent)
