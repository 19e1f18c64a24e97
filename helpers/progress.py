"""What the engine tells its user while it works: messages and progress, on stderr.

A bar per epoch (tqdm; a widget in Jupyter), or one line per epoch when
stderr is not a terminal or ``CIFAR_LAB_PROGRESS`` says ``lines`` (the
report sets it), or nothing. Warnings about damaged files are printed in
every mode: they say what was lost and what happens next.

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import os
import sys

from helpers import config

PROGRESS_MODES = ("bar", "lines", "none")


def in_jupyter_kernel() -> bool:
    """True inside a Jupyter (IPython kernel) process."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ipython = shell.get_ipython()
    except AttributeError:
        return False
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def resolve_progress(progress: bool | str | None) -> str:
    """Maps the ``progress`` argument of ``helpers.engine.run`` to "bar", "lines" or "none".

    True / None / "auto": the ``CIFAR_LAB_PROGRESS`` environment variable
    when set, else a bar in a Jupyter kernel or on a terminal, else lines.
    False is "none".

    Raises:
        ValueError: for another value, or an unknown ``CIFAR_LAB_PROGRESS``.
    """
    if progress is False:
        return "none"
    if progress in (True, None, "auto"):
        chosen = os.environ.get(config.PROGRESS_ENV, "").strip().lower()
        if chosen:
            if chosen not in PROGRESS_MODES:
                raise ValueError(
                    f"{config.PROGRESS_ENV} must be one of {list(PROGRESS_MODES)}. Received: {chosen!r}"
                )
            return chosen
        if in_jupyter_kernel():
            return "bar"
        stream = sys.stderr
        return "bar" if hasattr(stream, "isatty") and stream.isatty() else "lines"
    if progress in PROGRESS_MODES:
        return progress
    raise ValueError(
        f"progress must be True, False, 'auto', 'bar', 'lines' or 'none'. Received: {progress!r}"
    )


class Reporter:
    """Writes the engine's messages and progress to stderr (or ``stream``)."""

    def __init__(self, mode: str, stream=None):
        self.mode = mode
        self.stream = stream if stream is not None else sys.stderr

    def log(self, message: str) -> None:
        """A progress message; nothing in "none" mode."""
        if self.mode != "none":
            print(message, file=self.stream, flush=True)

    def note(self, message: str) -> None:
        self.log(f"note: {message}")

    def warn(self, message: str) -> None:
        """One line about something damaged or lost; printed in every mode."""
        print(f"warning: {' '.join(message.split())}", file=self.stream, flush=True)

    def bar(self, total: int, description: str):
        """A tqdm bar of ``total`` steps in "bar" mode, else None."""
        if self.mode != "bar":
            return None
        if in_jupyter_kernel():
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        return tqdm(total=total, desc=description, unit="step", file=self.stream, leave=True,
                    dynamic_ncols=True)
