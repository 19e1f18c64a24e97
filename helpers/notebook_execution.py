"""Executing one notebook with papermill, and reading back where it stopped.

``execute_notebook`` runs a clean notebook into an executed copy, injecting
``PROFILE`` and ``DATA_DIR`` after the cell tagged ``parameters`` and setting
the variables the kernel reads (``helpers.config``). An error in the notebook
is returned as a :class:`NotebookFailure`, never raised: the series goes on.
``failure_from_executed`` reads the same failure back from an executed copy
(``--render-only``), and :func:`locate_failure` is the one rule both use to
find the cell where execution stopped (the HTML marks the same cell).

This module imports neither TensorFlow nor Keras; papermill and nbformat only
inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator

from helpers import config
from helpers.profiles import PROFILE_NAMES

KERNEL_NAME = "python3"
# Papermill's own cells: the injected parameters and its red error markers.
INJECTED_TAG = "injected-parameters"
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"
# A cell tagged so is expected to raise; papermill carries on after it.
RAISES_TAG = "raises-exception"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class NotebookFailure:
    """Where and how a notebook stopped.

    Attributes:
        notebook: The notebook's stem, e.g. "03_resnet_depth".
        cell_number: 1-based position of the failing cell among the code cells
            of the source notebook (papermill's injected cell not counted);
            None when no cell ran (e.g. the kernel did not start).
        execution_count: The ``In [n]`` number of the failing cell, or None.
        ename: The exception's class name, e.g. "ZeroDivisionError".
        evalue: The exception's message (up to 20 lines; the page shows it
            whole, :meth:`describe` its first line).
    """

    notebook: str
    cell_number: int | None
    execution_count: int | None
    ename: str
    evalue: str

    def where(self) -> str:
        """"code cell 5 (In [7])", or "before any cell ran"."""
        if self.cell_number is None:
            return "before any cell ran"
        where = f"code cell {self.cell_number}"
        if self.execution_count is not None:
            where += f" (In [{self.execution_count}])"
        return where

    def describe(self) -> str:
        """One line: "03_resnet_depth: code cell 5 (In [7]): NameError: ..."."""
        first_line = self.evalue.strip().splitlines()[0] if self.evalue.strip() else ""
        return f"{self.notebook}: {self.where()}: {self.ename}: {first_line}"


@dataclasses.dataclass(frozen=True)
class NotebookRun:
    """One execution of one notebook.

    Attributes:
        notebook: The notebook's stem.
        source_path: The clean notebook that was executed.
        executed_path: The executed copy, or None if papermill wrote none.
        seconds: Wall time of the execution.
        failure: None when every cell ran.
    """

    notebook: str
    source_path: Path
    executed_path: Path | None
    seconds: float
    failure: NotebookFailure | None

    @property
    def ok(self) -> bool:
        return self.failure is None


def kernel_uses_this_interpreter(argv0: str) -> bool:
    """True when a kernelspec's ``argv[0]`` starts this interpreter."""
    # jupyter_client swaps a bare "python"/"python3"/"python3.11" for
    # sys.executable; an absolute path must live beside this interpreter
    # (comparing resolved paths would confuse every venv built on one Python).
    bare_names = {"python", f"python{sys.version_info[0]}",
                  "python{}.{}".format(*sys.version_info[:2])}
    if argv0 in bare_names:
        return True
    return Path(os.path.abspath(argv0)).parent == Path(os.path.abspath(sys.executable)).parent


def ensure_kernel(kernel_name: str = KERNEL_NAME) -> None:
    """Makes sure ``kernel_name`` starts this interpreter (and so this venv).

    A user-level kernelspec pointing at another Python would run the
    notebooks without TensorFlow; in that case the venv's own spec is
    (re)installed under ``sys.prefix``, which Jupyter prefers inside a venv.

    Raises:
        RuntimeError: if no such kernel can be arranged.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def current_argv0() -> str | None:
        try:
            return KernelSpecManager().get_kernel_spec(kernel_name).argv[0]
        except NoSuchKernel:
            return None

    argv0 = current_argv0()
    if argv0 is not None and kernel_uses_this_interpreter(argv0):
        return
    try:
        from ipykernel.kernelspec import install
    except ImportError as error:
        raise RuntimeError(
            f"ipykernel is not installed in {sys.prefix}; install it with "
            f"'{sys.executable} -m pip install ipykernel'. Received: {error}"
        ) from error
    _log(f"report: kernel {kernel_name!r} runs {argv0!r}, not {sys.executable}; "
         f"installing this interpreter's kernelspec under {sys.prefix}")
    install(kernel_name=kernel_name, prefix=sys.prefix)
    argv0 = current_argv0()
    if argv0 is None or not kernel_uses_this_interpreter(argv0):
        raise RuntimeError(
            f"Jupyter kernel {kernel_name!r} still starts {argv0!r} instead of "
            f"{sys.executable}; set JUPYTER_PREFER_ENV_PATH=1 or remove the user-level "
            f"kernelspec (jupyter kernelspec list). Received: kernel_name={kernel_name!r}"
        )


@contextlib.contextmanager
def kernel_environment(notebook: str, data_dir: Path | None,
                       extra: dict[str, str] | None = None) -> Iterator[None]:
    """Sets the variables the kernel subprocess inherits (and ``extra``), and restores them."""
    changes: dict[str, str | None] = {
        config.NOTEBOOK_ENV: notebook,
        # The kernel runs from notebooks/ and the project may not be
        # installed; this makes ``import helpers`` work either way.
        "PYTHONPATH": os.pathsep.join(
            [str(config.PROJECT_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
        # An inherited MPLBACKEND=Agg would stop ipykernel's inline backend,
        # and with it every figure in the report.
        "MPLBACKEND": None,
        # One plain line per epoch: Jupyter progress widgets would render as
        # stale bars in the executed copies and the HTML.
        config.PROGRESS_ENV: "lines",
        # TensorFlow's C++ info and warning lines are noise on the page (the
        # renderer also drops the start-up ones this cannot stop); a level
        # the caller set is kept.
        config.TF_LOG_LEVEL_ENV: os.environ.get(config.TF_LOG_LEVEL_ENV) or "2",
    }
    if data_dir is not None:
        changes[config.DATA_DIR_ENV] = str(data_dir)
    changes.update(extra or {})
    saved = {name: os.environ.get(name) for name in changes}
    try:
        _set_environment(changes)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    """Sets each variable; None removes it."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def execute_notebook(path: str | os.PathLike, out_path: str | os.PathLike, profile: str,
                     data_dir: str | os.PathLike | None = None, *,
                     timeout: float | None = None, cwd: str | os.PathLike | None = None,
                     kernel_name: str = KERNEL_NAME, records_dir: str | os.PathLike | None = None) -> NotebookRun:
    """Executes one notebook with papermill into ``out_path``.

    ``PROFILE`` and ``DATA_DIR`` (None when not given) are injected after the
    cell tagged ``parameters``; the kernel sees ``CIFAR_LAB_NOTEBOOK`` set to
    the notebook's stem and, with a data directory, ``CIFAR_DATA_DIR``. An
    error in the notebook is returned as ``failure``, not raised; the
    executed copy then holds every cell up to the failing one.

    Args:
        path: The clean source notebook.
        out_path: Where the executed copy goes (replaced if present).
        profile: One of ``helpers.profiles.PROFILE_NAMES``.
        data_dir: Directory with the CIFAR files, or None for the default.
        timeout: Seconds one cell may run; None for no limit.
        cwd: The kernel's working directory; default the notebook's folder.
        kernel_name: Jupyter kernel to run.
        records_dir: A folder of committed run records: the kernel reads every
            run from it and trains nothing (``CIFAR_LAB_RECORDS_DIR``).

    Returns:
        A :class:`NotebookRun`.

    Raises:
        ValueError: for an unknown profile or a missing notebook.

    Used in: the ``report`` command.
    """
    import nbformat
    import papermill

    if profile not in PROFILE_NAMES:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_NAMES)}. Received: {profile!r}")
    source = Path(path).resolve()
    if not source.is_file():
        raise ValueError(f"Notebook not found. Received: {str(source)!r}")
    target = Path(out_path).resolve()
    if target == source:
        raise ValueError(f"The executed copy must not overwrite its source. Received: {str(target)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A copy left from an earlier run must not pass for this run's output.
    target.unlink(missing_ok=True)
    resolved_data_dir = Path(data_dir).expanduser().resolve() if data_dir is not None else None
    notebook = source.stem
    started = time.monotonic()
    failure = None
    extra = {config.RECORDS_DIR_ENV: str(Path(records_dir).resolve())} if records_dir is not None else None
    with kernel_environment(notebook, resolved_data_dir, extra):
        try:
            papermill.execute_notebook(
                str(source), str(target),
                parameters={"PROFILE": profile,
                            "DATA_DIR": str(resolved_data_dir) if resolved_data_dir else None},
                kernel_name=kernel_name, language="python",
                cwd=str(cwd if cwd is not None else source.parent),
                execution_timeout=timeout, start_timeout=120,
                progress_bar=sys.stderr.isatty(), log_output=False,
            )
        except papermill.PapermillExecutionError as error:
            failure = (error.ename, first_lines(str(error.evalue), 20))
        except Exception as error:  # noqa: BLE001 - any failure is reported, the series goes on
            message = first_lines(str(error), 1)
            if type(error).__name__ == "CellTimeoutError" and timeout is not None:
                message = f"a cell ran longer than --timeout {timeout:g} s"
            failure = (type(error).__name__, message)
    seconds = time.monotonic() - started
    executed_path = target if target.exists() else None
    located = None
    if failure is not None:
        located = NotebookFailure(notebook, None, None, *failure)
        if executed_path is not None:
            where = locate_failure(nbformat.read(executed_path, as_version=4), stopped=True)
            if where is not None:
                located = dataclasses.replace(located, cell_number=where[0],
                                              execution_count=where[1])
    return NotebookRun(notebook, source, executed_path, seconds, located)


def first_lines(text: str, count: int) -> str:
    """The first ``count`` non-blank lines of ``text``, without ANSI colours."""
    lines = [line for line in _ANSI.sub("", text).strip().splitlines() if line.strip()]
    return "\n".join(lines[:count])


def cell_tags(cell) -> list[str]:
    """A cell's tags (an empty list when it has none)."""
    return list(cell.get("metadata", {}).get("tags", []) or [])


def locate_failure(nb, stopped: bool = False) -> tuple[int, int | None, dict | None] | None:
    """(code cell number, execution count, error output) of the failing cell.

    A cell with an error output is the failure. A dead kernel, a timeout
    without an error output or an interruption leaves none: then the last
    cell that papermill started, when cells after it never started (or when
    ``stopped`` says execution ended abnormally), is where it stopped.
    None when every code cell ran without an error.
    """
    code_number = 0
    last_started: tuple[int, int | None, dict | None] | None = None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell_tags(cell)
        injected = INJECTED_TAG in tags
        if not injected:
            code_number += 1
        papermill_meta = cell.get("metadata", {}).get("papermill", {}) or {}
        if RAISES_TAG not in tags and not injected:
            errors = [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]
            if errors or papermill_meta.get("status") == "failed":
                return code_number, cell.get("execution_count"), (errors[0] if errors else None)
        if papermill_meta.get("start_time"):
            last_started = (code_number, cell.get("execution_count"), None) if not injected else None
        elif last_started is not None and cell.source.strip():
            return last_started
    return last_started if stopped else None


def failure_from_executed(path: str | os.PathLike) -> NotebookFailure | None:
    """Reads the failure, if any, back from an executed copy.

    Used by ``--render-only``, where there is no exception to look at.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    where = locate_failure(nb)
    if where is None:
        if nb.metadata.get("papermill", {}).get("exception"):
            return NotebookFailure(path.stem, None, None, "Error", "papermill recorded an exception")
        return None
    cell_number, execution_count, error = where
    if error is None:
        return NotebookFailure(path.stem, cell_number, execution_count, "NotFinished",
                               "execution stopped in this cell (kernel died, timed out or was interrupted)")
    ename = error.get("ename", "Error")
    evalue = first_lines(error.get("evalue", ""), 20)
    if ename == "KeyboardInterrupt" and not evalue:
        # What nbclient leaves in a cell it interrupted on --timeout.
        evalue = "interrupted (a --timeout or Ctrl-C)"
    return NotebookFailure(path.stem, cell_number, execution_count, ename, evalue)
