"""Executes the notebook series and renders ``report/index.html`` and ``report.pdf``.

``python -m helpers report --profile quick`` runs ``notebooks/NN_*.ipynb`` in
numeric order with papermill, injecting ``PROFILE`` and ``DATA_DIR`` into the
cell tagged ``parameters``, and keeps the executed copies under
``report/executed/`` (``notebooks/`` only ever holds clean sources). It then
renders one self-contained HTML page (figures embedded as data URIs, no
stylesheet or script fetched from anywhere, code folded into ``<details>``)
and prints a code-free variant of it to ``report/report.pdf`` with headless
Chromium.

A notebook that fails does not stop the others: its section opens with the
failing cell and error, everything it produced up to the failure is shown,
and the command exits non-zero with a summary on stderr.

Hook for the summary table: the outputs of any code cell tagged
``summary-table`` are moved to a Summary section at the top of the page, and a
notebook named ``NN_summary`` is placed first.

What a reader should not have to see is left out of the page: reprs a cell
returned by accident (``[PosixPath(...)]``, ``<Figure ...>``, objects "at
0x..."), TensorFlow's C++ start-up and log lines in stderr (the kernels also
run with ``TF_CPP_MIN_LOG_LEVEL=2``), headings and "**Label:**" lines with
nothing under them, and pandas' 0..N-1 index column. The page opens with what
the profile can and cannot show (``helpers.summary.profile_statement``), and
the contents say "from cache" for a notebook whose runs the engine all read
from its cache.

This module imports neither TensorFlow nor Keras; the kernels do.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from helpers import config, environment

# The profiles every notebook understands (see the notebooks' parameters cell).
PROFILES = ("smoke", "quick", "full")
# The kernel reads this to know its own notebook (helpers.plots.save_figure).
NOTEBOOK_ENV = "CIFAR_LAB_NOTEBOOK"
KERNEL_NAME = "python3"
SUMMARY_TAG = "summary-table"
# Papermill's own cells: the injected parameters and its red error markers,
# which the report replaces by its own banner.
INJECTED_TAG = "injected-parameters"
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"
# A cell tagged so is expected to raise; papermill carries on after it.
RAISES_TAG = "raises-exception"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Seconds Chromium may take to print the PDF; a few MB of inline images print
# in seconds, so this only catches a hung browser.
PDF_TIMEOUT_SECONDS = 180

_NOTEBOOK_STEM = re.compile(r"^(\d{2})_[A-Za-z0-9_\-]+$")
_SUMMARY_STEM = re.compile(r"^\d{2}_summary$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# TensorFlow's C++ log lines (absl/glog: "I0000 00:00:1795773063.327945  13881
# port.cc:153] ...", or TF < 2.16's "2024-01-01 12:00:00.123456: I tensorflow/
# ...cc:113] ...") and absl's notice before its first one. They go straight to
# file descriptor 2, so TF_CPP_MIN_LOG_LEVEL (set for the kernels) cannot stop
# the ones written before TensorFlow reads it. Info and warning lines are
# dropped from the page; error lines only when they are the known start-up
# probes of a machine without (or with) CUDA, so a real error still shows.
_TF_LOG_LINE = re.compile(
    r"^(?:(?P<glog>[IWEF])\d{4} \d{2}:\d{2}:\d+(?:\.\d+)?\s+\d+\s+\S+:\d+\]"
    r"|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+: (?P<dated>[IWEF]) \S+:\d+\])")
_TF_NOISE_LINES = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$"),
    re.compile(r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.?\s*$"),
)
_TF_BENIGN_ERRORS = re.compile(
    r"cuInit|cuda_platform|cuda_diagnostics|kernel driver does not appear|"
    r"Unable to register cu(?:DNN|FFT|BLAS) factory|computation_placer|TF-TRT|NUMA node")
# Reprs of objects a cell returned by accident: a list of PosixPath, a figure
# or artist "at 0x7f...", matplotlib's "Text(0.5, 1.0, 'title')". They tell a
# reader nothing, so the page leaves them out.
_OBJECT_REPRS = (
    re.compile(r"\b(?:Pure)?(?:Posix|Windows)Path\("),
    re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-fA-F]+>"),
    re.compile(r"^<Figure size [\d.]+x[\d.]+ with \d+ Axes>$"),
    re.compile(r"^\[?Text\([-\d.e+]+, [-\d.e+]+, '.*'\)\]?$", re.DOTALL),
)
# What helpers.engine prints on a cache hit, and when it trains (or resumes,
# or runs an LR range test). A notebook whose runs all came from the cache
# has a misleading runtime: the contents say "from cache" instead.
_CACHE_HIT_LINE = re.compile(r"^\[[^\]\s]+\] cached: ", re.MULTILINE)
_TRAINING_LINE = re.compile(r"^(?:\[[^\]\s]+\] (?:training|resuming after epoch \d+): |lr-find: )",
                            re.MULTILINE)
_HEADING = re.compile(r"<h([1-6])\b[^>]*>.*?</h\1>", re.DOTALL | re.IGNORECASE)
# A Markdown label such as "**Figures written:**" with nothing after it in its cell.
_TRAILING_LABEL = re.compile(r"(?:\s*<p>\s*<strong>[^<]*:\s*</strong>\s*</p>)+\s*$", re.IGNORECASE)
# Tables with this many columns or more print in a smaller font.
WIDE_TABLE_COLUMNS = 7
TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"


# ---------------------------------------------------------------------------
# Results of execution
# ---------------------------------------------------------------------------


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

    def describe(self) -> str:
        """One line: "03_resnet_depth: code cell 5 (In [7]): NameError: ..."."""
        where = "before any cell ran"
        if self.cell_number is not None:
            where = f"code cell {self.cell_number}"
            if self.execution_count is not None:
                where += f" (In [{self.execution_count}])"
        first_line = self.evalue.strip().splitlines()[0] if self.evalue.strip() else ""
        return f"{self.notebook}: {where}: {self.ename}: {first_line}"


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


@dataclasses.dataclass(frozen=True)
class RenderedReport:
    """Paths written by :func:`render_report`.

    Attributes:
        html_path: The report page, ``<out_dir>/index.html``.
        print_html_path: The same content without code, the PDF's source.
        image_count: Number of ``<img>`` elements in the page.
        external_references: ``src``/``href`` values that would load something
            from the network (should be empty; reported, not fatal).
    """

    html_path: Path
    print_html_path: Path
    image_count: int
    external_references: tuple[str, ...]


# ---------------------------------------------------------------------------
# Finding and executing notebooks
# ---------------------------------------------------------------------------


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_notebooks(notebooks_dir: str | os.PathLike,
                   select: Iterable[str] | None = None) -> list[Path]:
    """The series' notebooks ``NN_*.ipynb`` in ``notebooks_dir``, in numeric order.

    Args:
        notebooks_dir: Directory holding the clean notebooks.
        select: Optional two-digit numbers ("03") or stems ("03_resnet_depth")
            to keep; None keeps all.

    Raises:
        ValueError: if the directory is missing or a selected notebook does
            not exist.

    Used in: the ``report`` command.
    """
    directory = Path(notebooks_dir)
    if not directory.is_dir():
        raise ValueError(f"The notebooks directory does not exist. Received: {str(directory)!r}")
    found = sorted((path for path in directory.glob("*.ipynb")
                    if _NOTEBOOK_STEM.match(path.stem)), key=lambda path: path.stem)
    if select is None:
        return found
    wanted = [item.strip() for item in select if item and item.strip()]
    kept = []
    for item in wanted:
        stem = item[:-len(".ipynb")] if item.endswith(".ipynb") else item
        matches = [path for path in found if path.stem == stem or path.stem[:2] == stem]
        if not matches:
            available = ", ".join(path.stem for path in found) or "none"
            raise ValueError(
                f"No notebook numbered or named {item!r} in {directory} "
                f"(available: {available}). Received: --notebooks {','.join(wanted)}"
            )
        kept.extend(path for path in matches if path not in kept)
    return sorted(kept, key=lambda path: path.stem)


def _kernel_uses_this_interpreter(argv0: str) -> bool:
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
    if argv0 is not None and _kernel_uses_this_interpreter(argv0):
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
    if argv0 is None or not _kernel_uses_this_interpreter(argv0):
        raise RuntimeError(
            f"Jupyter kernel {kernel_name!r} still starts {argv0!r} instead of "
            f"{sys.executable}; set JUPYTER_PREFER_ENV_PATH=1 or remove the user-level "
            f"kernelspec (jupyter kernelspec list). Received: kernel_name={kernel_name!r}"
        )


@contextlib.contextmanager
def _kernel_environment(notebook: str, data_dir: Path | None) -> Iterator[None]:
    """Sets the variables the kernel subprocess inherits, and restores them."""
    changes: dict[str, str | None] = {
        NOTEBOOK_ENV: notebook,
        # The kernel runs from notebooks/ and the project may not be
        # installed; this makes ``import helpers`` work either way.
        "PYTHONPATH": os.pathsep.join(
            [str(config.PROJECT_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
        # An inherited MPLBACKEND=Agg would stop ipykernel's inline backend,
        # and with it every figure in the report.
        "MPLBACKEND": None,
        # One plain line per epoch: Jupyter progress widgets would render as
        # stale bars in the executed copies and the HTML.
        "CIFAR_LAB_PROGRESS": "lines",
        # TensorFlow's C++ info and warning lines are noise on the page (the
        # renderer also drops the start-up ones this cannot stop); a level
        # the caller set is kept.
        TF_LOG_LEVEL_ENV: os.environ.get(TF_LOG_LEVEL_ENV) or "2",
    }
    if data_dir is not None:
        changes[config.DATA_DIR_ENV] = str(data_dir)
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_notebook(path: str | os.PathLike, out_path: str | os.PathLike, profile: str,
                     data_dir: str | os.PathLike | None = None, *,
                     timeout: float | None = None, cwd: str | os.PathLike | None = None,
                     kernel_name: str = KERNEL_NAME) -> NotebookRun:
    """Executes one notebook with papermill into ``out_path``.

    ``PROFILE`` and ``DATA_DIR`` (None when not given) are injected after the
    cell tagged ``parameters``; the kernel sees ``CIFAR_LAB_NOTEBOOK`` set to
    the notebook's stem and, with a data directory, ``CIFAR_DATA_DIR``. An
    error in the notebook is returned as ``failure``, not raised; the
    executed copy then holds every cell up to the failing one.

    Args:
        path: The clean source notebook.
        out_path: Where the executed copy goes (replaced if present).
        profile: One of :data:`PROFILES`.
        data_dir: Directory with the CIFAR files, or None for the default.
        timeout: Seconds one cell may run; None for no limit.
        cwd: The kernel's working directory; default the notebook's folder.
        kernel_name: Jupyter kernel to run.

    Returns:
        A :class:`NotebookRun`.

    Raises:
        ValueError: for an unknown profile or a missing notebook.

    Used in: the ``report`` command.
    """
    import nbformat
    import papermill

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}. Received: {profile!r}")
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
    with _kernel_environment(notebook, resolved_data_dir):
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
            failure = (error.ename, _first_lines(str(error.evalue), 20))
        except Exception as error:  # noqa: BLE001 - any failure is reported, the series goes on
            message = _first_lines(str(error), 1)
            if type(error).__name__ == "CellTimeoutError" and timeout is not None:
                message = f"a cell ran longer than --timeout {timeout:g} s"
            failure = (type(error).__name__, message)
    seconds = time.monotonic() - started
    executed_path = target if target.exists() else None
    located = None
    if failure is not None:
        located = NotebookFailure(notebook, None, None, *failure)
        if executed_path is not None:
            where = _locate_failure(nbformat.read(executed_path, as_version=4), stopped=True)
            if where is not None:
                located = dataclasses.replace(located, cell_number=where[0],
                                              execution_count=where[1])
    return NotebookRun(notebook, source, executed_path, seconds, located)


def _first_lines(text: str, count: int) -> str:
    lines = [line for line in _ANSI.sub("", text).strip().splitlines() if line.strip()]
    return "\n".join(lines[:count])


def _cell_tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _locate_failure(nb, stopped: bool = False) -> tuple[int, int | None, dict | None] | None:
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
        tags = _cell_tags(cell)
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
    where = _locate_failure(nb)
    if where is None:
        if nb.metadata.get("papermill", {}).get("exception"):
            return NotebookFailure(path.stem, None, None, "Error", "papermill recorded an exception")
        return None
    cell_number, execution_count, error = where
    if error is None:
        return NotebookFailure(path.stem, cell_number, execution_count, "NotFinished",
                               "execution stopped in this cell (kernel died, timed out or was interrupted)")
    ename = error.get("ename", "Error")
    evalue = _first_lines(error.get("evalue", ""), 20)
    if ename == "KeyboardInterrupt" and not evalue:
        # What nbclient leaves in a cell it interrupted on --timeout.
        evalue = "interrupted (a --timeout or Ctrl-C)"
    return NotebookFailure(path.stem, cell_number, execution_count, ename, evalue)


# ---------------------------------------------------------------------------
# The stamp: profile, date, hardware, software, revision
# ---------------------------------------------------------------------------


def collect_stamp(profile: str | None, project_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """What the report is stamped with: profile, date, hardware, versions, git.

    Same shape as the run records' "environment" (``git``, ``versions``,
    ``hardware``) plus ``profile`` and ``date`` (ISO-8601 UTC).

    Used in: the ``report`` command.
    """
    root = Path(project_root) if project_root is not None else config.PROJECT_ROOT
    return {
        "profile": profile,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": {key: value for key, value in environment.hardware().items() if key != "platform"},
        "versions": environment.software_versions(),
        # Rendering rewrites report/ and the notebooks rewrite figures/: those
        # are this command's outputs, not changes to the code that made them.
        "git": environment.git_state(root, exclude=environment.SERIES_OUTPUTS),
    }


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --rule: #d1d9e0; --tint: #f6f8fa;
        --accent: #0969da; --bad: #cf222e; --bad-tint: #ffebe9; --warn-tint: #fff8c5; }
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0 auto; max-width: 62rem; padding: 2rem 1.5rem 4rem; color: var(--ink);
       font: 1rem/1.6 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
h1, h2, h3, h4 { line-height: 1.25; margin: 1.6em 0 0.6em; }
h1 { font-size: 2rem; } h2 { font-size: 1.5rem; } h3 { font-size: 1.2rem; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
a.anchor-link { visibility: hidden; margin-left: 0.3em; font-size: 0.8em; color: var(--muted); }
h1:hover a.anchor-link, h2:hover a.anchor-link, h3:hover a.anchor-link, h4:hover a.anchor-link { visibility: visible; }
header.report { border-bottom: 3px solid var(--ink); margin-bottom: 1.5rem; }
header.report h1 { margin-top: 0; }
dl.stamp { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem;
           font-size: 0.9rem; color: var(--muted); margin: 0 0 1rem; }
dl.stamp dt { font-weight: 600; } dl.stamp dd { margin: 0; }
nav.toc ol { padding-left: 1.5rem; } nav.toc li { margin: 0.15rem 0; }
.tag { display: inline-block; font-size: 0.75rem; padding: 0 0.45em; border-radius: 0.6em;
       margin-left: 0.4em; border: 1px solid var(--rule); color: var(--muted); }
.tag.failed { border-color: var(--bad); color: var(--bad); }
.tag.warn { background: var(--warn-tint); }
.tag.cache { background: var(--tint); }
section.notebook { border-top: 1px solid var(--rule); margin-top: 3rem; padding-top: 0.5rem; }
.notebook-meta { font-size: 0.85rem; color: var(--muted); }
.banner { border: 1px solid var(--bad); background: var(--bad-tint); border-radius: 6px;
          padding: 0.75rem 1rem; margin: 1rem 0; }
.banner.warn { border-color: #9a6700; background: var(--warn-tint); }
.banner.profile { border-color: #9a6700; background: var(--warn-tint); font-size: 0.95rem; }
.banner pre { background: transparent; padding: 0; margin: 0.4rem 0 0; }
.stopped { border-left: 4px solid var(--bad); padding-left: 0.75rem; color: var(--bad); margin: 1rem 0; }
pre { background: var(--tint); padding: 0.6rem 0.8rem; border-radius: 6px; overflow-x: auto;
      font: 0.85rem/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap; }
details.code, details.stderr, details.traceback { margin: 0.3rem 0; }
details > summary { cursor: pointer; font-size: 0.8rem; color: var(--muted); }
details.code pre { border-left: 3px solid var(--rule); }
.output { margin: 0.5rem 0 1rem; overflow-x: auto; }
.output img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
pre.error { background: var(--bad-tint); color: var(--bad); }
/* Tables stay within the page: cells wrap (anywhere, if a word is too long)
   rather than pushing the table past the margin. */
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; max-width: 100%; }
table.wide { font-size: 0.8rem; }
th, td { border: 1px solid var(--rule); padding: 0.3rem 0.6rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: var(--tint); }
/* Numbers line up in pandas tables; Markdown tables carry their own alignment. */
table.dataframe td { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
.from { font-size: 0.8rem; color: var(--muted); }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  .output { overflow: visible; }
  table { font-size: 8.5pt; width: auto; max-width: 100%; }
  table.wide { font-size: 7.5pt; }
  th, td { padding: 0.15rem 0.35rem; }
  pre { overflow-wrap: anywhere; }
  section.notebook, section.summary { break-before: page; border-top: none; margin-top: 0; }
  .output img, table, pre { break-inside: avoid; }
  h1, h2, h3 { break-after: avoid; }
  a.anchor-link, details { display: none; }
  a { color: var(--ink); }
}
"""

# Counts the images that actually decoded, so a headless browser can check
# the page (data-images-loaded / data-images-total on <body>). The page needs
# no script otherwise.
_IMAGE_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (image) { return image.complete && image.naturalWidth > 0; });
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-loaded", String(loaded.length));
});
"""

_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE | re.DOTALL)
_SRC_ATTRIBUTE = re.compile(r"""\bsrc\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
_ALT_ATTRIBUTE = re.compile(r"""\balt\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
_EXTERNAL_LOAD = re.compile(
    r"""<(?:img|script|iframe|source|video|audio|embed|input)\b[^>]*\bsrc\s*=\s*["']?((?:https?:)?//[^"'\s>]+)"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?((?:https?:)?//[^"'\s>]+)"""
    r"""|url\(\s*["']?((?:https?:)?//[^"')\s]+)""",
    re.IGNORECASE)


def external_references(page: str) -> list[str]:
    """URLs a browser would fetch to show ``page`` (img/script/link/url())."""
    return [next(group for group in match.groups() if group) for match in _EXTERNAL_LOAD.finditer(page)]


def _mime_for_suffix(suffix: str) -> str | None:
    return {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".gif": "image/gif", ".svg": "image/svg+xml", ".webp": "image/webp"}.get(suffix.lower())


def _data_uri(mime: str, payload: str | bytes) -> str:
    if isinstance(payload, bytes):
        encoded = base64.b64encode(payload).decode("ascii")
    elif mime == "image/svg+xml":
        encoded = base64.b64encode(payload.encode("utf-8")).decode("ascii")
    else:
        # Notebook image data is already base64, possibly wrapped in lines.
        encoded = "".join(payload.split())
    return f"data:{mime};base64,{encoded}"


def _inline_images(fragment: str, base_dir: Path | None) -> str:
    """Embeds local images as data URIs; network images become their alt text."""

    def replace(match: re.Match) -> str:
        tag = match.group(0)
        src_match = _SRC_ATTRIBUTE.search(tag)
        if src_match is None:
            return tag
        src = html.unescape(src_match.group(2).strip())
        alt_match = _ALT_ATTRIBUTE.search(tag)
        alt = alt_match.group(2) if alt_match else ""
        if src.startswith("data:"):
            return tag
        new_src = None
        if re.match(r"^(?:[a-z][a-z0-9+.\-]*:)?//", src, re.IGNORECASE):
            # A badge or remote picture: the page must not fetch anything.
            return f'<span class="offline-image">{alt or html.escape(src)}</span>'
        elif base_dir is not None:
            local = (base_dir / src.split("?")[0].split("#")[0]).resolve()
            mime = _mime_for_suffix(local.suffix)
            if mime and local.is_file():
                new_src = _data_uri(mime, local.read_bytes())
        if new_src is None:
            return f'<span class="offline-image">[image not found: {html.escape(src)}]</span>'
        return tag[:src_match.start(2)] + new_src + tag[src_match.end(2):]

    return _IMG_TAG.sub(replace, fragment)


def _markdown_to_html(source: str, prefix: str, base_dir: Path | None,
                      attachments: Mapping | None) -> str:
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    attachments = dict(attachments or {})
    # nbconvert refuses a whole cell over one dangling "attachment:" link;
    # only that link is shown as a missing image instead.
    source = re.sub(r"attachment:([^\s)\"'>]+)",
                    lambda match: match.group(0) if match.group(1) in attachments
                    else f"missing-attachment:{match.group(1)}", source)
    # nbconvert's own Markdown (tables; math stays as TeX, there is no
    # MathJax offline) with the cell's attachments embedded as data URIs.
    renderer = IPythonRenderer(escape=False, attachments=attachments)
    rendered = MarkdownWithMath(renderer=renderer).render(source)
    # Every notebook has a "Findings" heading: ids get the notebook's prefix
    # so the page has no duplicates and in-notebook links still work.
    rendered = re.sub(r'(<h[1-6]\b[^>]*\bid=")([^"]*)"', lambda m: f'{m.group(1)}{prefix}-{m.group(2)}"', rendered)
    rendered = re.sub(r'href="#([^"]*)"', lambda m: f'href="#{prefix}-{m.group(1)}"', rendered)
    return _inline_images(rendered, base_dir)


def _clean_stream(text: str) -> str:
    """Applies carriage returns and backspaces as a terminal would, drops ANSI."""
    text = _ANSI.sub("", text)
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            pieces = [piece for piece in line.split("\r")]
            # "\r\n" leaves an empty last piece; the line is the last non-empty one.
            line = next((piece for piece in reversed(pieces) if piece), "")
        if "\b" in line:
            kept: list[str] = []
            for character in line:
                if character == "\b":
                    if kept:
                        kept.pop()
                else:
                    kept.append(character)
            line = "".join(kept)
        lines.append(line)
    return "\n".join(lines)


def _join_text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def without_library_noise(text: str) -> str:
    """``text`` without TensorFlow's C++ start-up and log lines (see ``_TF_LOG_LINE``).

    Info and warning lines go; error lines only when they are known
    start-up probes (no CUDA driver, factories registered twice).
    """
    kept = []
    for line in text.split("\n"):
        if any(pattern.match(line) for pattern in _TF_NOISE_LINES):
            continue
        match = _TF_LOG_LINE.match(line)
        if match is not None:
            level = match.group("glog") or match.group("dated")
            if level in ("I", "W") or _TF_BENIGN_ERRORS.search(line):
                continue
        kept.append(line)
    return "\n".join(kept)


def is_object_repr(text: str) -> bool:
    """True for a repr no reader wants: paths, objects "at 0x...", figures, Text(...)."""
    stripped = text.strip()
    return any(pattern.search(stripped) for pattern in _OBJECT_REPRS)


_TABLE = re.compile(r"<table\b[^>]*>.*?</table>", re.DOTALL | re.IGNORECASE)
_TABLE_ROW = re.compile(r"<tr\b[^>]*>(.*?)</tr>", re.DOTALL | re.IGNORECASE)
_TABLE_CELL = re.compile(r"<t[hd]\b[^>]*>", re.IGNORECASE)
_RANGE_INDEX_CELL = re.compile(r"^(\s*)<th>(\d+)</th>")


def _without_range_index(table: str) -> str:
    """Drops pandas' 0..N-1 index column from a DataFrame's HTML table.

    Only when every body row starts with ``<th>k</th>`` for k = 0, 1, ...
    and every header row starts with an empty ``<th></th>``: a named or
    meaningful index is kept.
    """
    if 'class="dataframe' not in table:
        return table
    head = re.search(r"<thead>(.*?)</thead>", table, re.DOTALL)
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.DOTALL)
    if head is None or body is None:
        return table
    head_rows = _TABLE_ROW.findall(head.group(1))
    body_rows = _TABLE_ROW.findall(body.group(1))
    if not body_rows or not head_rows:
        return table
    if not all(re.match(r"^\s*<th(?:\s[^>]*)?>\s*</th>", row) for row in head_rows):
        return table
    numbers = [_RANGE_INDEX_CELL.match(row) for row in body_rows]
    if not all(numbers) or [int(match.group(2)) for match in numbers] != list(range(len(body_rows))):
        return table
    new_head = re.sub(r"(<tr\b[^>]*>)\s*<th(?:\s[^>]*)?>\s*</th>", r"\1", head.group(0))
    new_body = re.sub(r"(<tr\b[^>]*>)\s*<th>\d+</th>", r"\1", body.group(0))
    return table.replace(head.group(0), new_head, 1).replace(body.group(0), new_body, 1)


def _designed_tables(fragment: str) -> str:
    """Tables of an HTML output: pandas' range index dropped, wide ones marked for a smaller font."""

    def replace(match: re.Match) -> str:
        table = _without_range_index(match.group(0))
        first_row = _TABLE_ROW.search(table)
        columns = len(_TABLE_CELL.findall(first_row.group(1))) if first_row else 0
        if columns >= WIDE_TABLE_COLUMNS:
            opening = re.match(r"<table\b[^>]*>", table).group(0)
            if re.search(r"\bclass\s*=", opening):
                marked = re.sub(r'\bclass\s*=\s*(["\'])', r"class=\1wide ", opening, count=1)
            else:
                marked = opening[:-1] + ' class="wide">'
            table = marked + table[len(opening):]
        return table

    return _TABLE.sub(replace, fragment)


def _render_output(output: Mapping, prefix: str, base_dir: Path | None, printable: bool) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        text = _clean_stream(_join_text(output.get("text", "")))
        if output.get("name") == "stderr":
            if printable:
                return ""
            text = without_library_noise(text).strip("\n")
        if not text.strip():
            return ""
        if output.get("name") == "stderr":
            line_count = text.strip().count("\n") + 1
            return (f'<details class="stderr"><summary>stderr ({line_count} line'
                    f'{"s" if line_count != 1 else ""})</summary>'
                    f'<pre class="output stream stderr">{html.escape(text)}</pre></details>')
        return f'<pre class="output stream">{html.escape(text)}</pre>'
    if kind == "error":
        headline = html.escape(f"{output.get('ename', 'Error')}: {_first_lines(output.get('evalue', ''), 5)}")
        traceback = _ANSI.sub("", "\n".join(output.get("traceback", [])))
        block = f'<pre class="output error">{headline}</pre>'
        if traceback.strip() and not printable:
            block += (f'<details class="traceback"><summary>traceback</summary>'
                      f'<pre class="output error">{html.escape(traceback)}</pre></details>')
        return block
    if kind not in ("display_data", "execute_result"):
        return ""
    data = output.get("data", {})
    if _WIDGET_MIME in data:
        # Widgets need a live kernel and JavaScript; their text fallback
        # ("HBox(...)") would only be noise.
        return ""
    for mime in _IMAGE_MIME_TYPES:
        if mime in data:
            size = output.get("metadata", {}).get(mime, {}) or {}
            width = f' width="{int(size["width"])}"' if isinstance(size.get("width"), (int, float)) else ""
            return (f'<div class="output figure"><img src="{_data_uri(mime, _join_text(data[mime]))}"'
                    f'{width} alt="figure"></div>')
    if "text/html" in data:
        fragment = _designed_tables(_inline_images(_join_text(data["text/html"]), base_dir))
        return f'<div class="output html">{fragment}</div>'
    if "text/markdown" in data:
        return f'<div class="output markdown">{_markdown_to_html(_join_text(data["text/markdown"]), prefix, base_dir, None)}</div>'
    if "text/plain" in data:
        text = _ANSI.sub("", _join_text(data["text/plain"]))
        if is_object_repr(text) or not text.strip():
            return ""
        return f'<pre class="output text">{html.escape(text)}</pre>'
    return ""


def _notebook_title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and PAPERMILL_ERROR_TAG not in _cell_tags(cell):
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    # Plain text for the contents list: drop emphasis and links.
                    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line[2:])
                    return re.sub(r"[*_`]", "", title).strip()
            break
    return fallback


def _source_dir(nb, executed_path: Path) -> Path:
    # Relative image links in markdown are relative to the clean notebook,
    # not to its executed copy under report/executed/.
    input_path = nb.metadata.get("papermill", {}).get("input_path")
    if input_path and Path(input_path).is_absolute() and Path(input_path).parent.is_dir():
        return Path(input_path).parent
    return config.NOTEBOOKS_DIR if config.NOTEBOOKS_DIR.is_dir() else executed_path.parent


@dataclasses.dataclass
class _Section:
    notebook: str
    title: str
    body: str
    summary_blocks: list[str]
    failure: NotebookFailure | None
    profile: str | None
    seconds: float | None
    finished: str | None
    from_cache: bool = False


@dataclasses.dataclass(frozen=True)
class _Block:
    """A piece of a notebook's section: a heading (with its rank) or visible content.

    ``markdown_cell`` groups the pieces of one Markdown cell, which are
    wrapped in one ``<div class="markdown">``; None for code cells.
    """

    html: str
    heading_level: int | None = None
    markdown_cell: int | None = None


def _markdown_blocks(rendered: str, cell_index: int) -> list[_Block]:
    """A rendered Markdown cell split into headings and the content between them.

    A label ("**Figures written:**") with nothing after it before the next
    heading or the cell's end is dropped.
    """
    blocks = []
    position = 0
    for match in list(_HEADING.finditer(rendered)) + [None]:
        end = match.start() if match is not None else len(rendered)
        content = _TRAILING_LABEL.sub("", rendered[position:end]).strip()
        if content:
            blocks.append(_Block(content, None, cell_index))
        if match is not None:
            blocks.append(_Block(match.group(0), int(match.group(1)), cell_index))
            position = match.end()
    return blocks


def _without_empty_headings(blocks: Sequence[_Block]) -> list[_Block]:
    """Drops every heading with no content before the next heading of the same or higher rank.

    In the printed page, "## Setup" over code cells without output is such
    a heading; in the interactive page the folded code is its content.
    """
    kept = []
    for index, block in enumerate(blocks):
        if block.heading_level is not None:
            has_content = False
            for later in blocks[index + 1:]:
                if later.heading_level is None:
                    has_content = True
                    break
                if later.heading_level <= block.heading_level:
                    break
            if not has_content:
                continue
        kept.append(block)
    return kept


def _join_blocks(blocks: Sequence[_Block]) -> str:
    parts: list[str] = []
    open_cell = None
    for block in blocks:
        if block.markdown_cell != open_cell:
            if open_cell is not None:
                parts.append("</div>")
            if block.markdown_cell is not None:
                parts.append('<div class="markdown">')
            open_cell = block.markdown_cell
        parts.append(block.html)
    if open_cell is not None:
        parts.append("</div>")
    return "\n".join(parts)


def served_from_cache(nb) -> bool:
    """True when the engine served every run of an executed notebook from its cache.

    Read from the cells' output streams: at least one "[run-id] cached: ..."
    line of ``helpers.engine.run`` and no line saying it trained, resumed or
    ran an LR range test. A notebook that runs nothing through the engine
    is not "from cache": its runtime is real.
    """
    text = "\n".join(
        _ANSI.sub("", _join_text(output.get("text", "")))
        for cell in nb.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    return bool(_CACHE_HIT_LINE.search(text)) and not _TRAINING_LINE.search(text)


def _render_notebook(path: Path, failure: NotebookFailure | None, printable: bool) -> _Section:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    notebook = path.stem
    prefix = f"nb{notebook}"
    base_dir = _source_dir(nb, path)
    papermill_meta = nb.metadata.get("papermill", {}) or {}
    failing_cell = _locate_failure(nb, stopped=True) if failure is not None else None
    parts: list[_Block] = []
    summary_blocks: list[str] = []
    code_number = 0
    stopped = False
    for cell_index, cell in enumerate(nb.cells):
        tags = _cell_tags(cell)
        if PAPERMILL_ERROR_TAG in tags:
            continue
        if cell.cell_type == "markdown":
            rendered = _markdown_to_html(cell.source, prefix, base_dir, cell.get("attachments"))
            parts.extend(_markdown_blocks(rendered, cell_index))
            continue
        if cell.cell_type == "raw":
            continue
        injected = INJECTED_TAG in tags
        if not injected:
            code_number += 1
        outputs = "".join(_render_output(output, prefix, base_dir, printable)
                          for output in _merged_streams(cell.get("outputs", [])))
        if not printable and cell.source.strip():
            label = ("parameters injected by the report" if injected
                     else "parameters (defaults)" if "parameters" in tags else "code")
            parts.append(_Block(f'<details class="code"><summary>{label}</summary>'
                                f'<pre class="source"><code>{html.escape(cell.source)}</code></pre></details>'))
        if SUMMARY_TAG in tags and outputs:
            summary_blocks.append(outputs)
            parts.append(_Block('<p class="from"><a href="#summary">(table shown in the Summary)</a></p>'))
        elif outputs:
            parts.append(_Block(outputs))
        if failing_cell is not None and not injected and code_number == failing_cell[0] and not stopped:
            stopped = True
            parts.append(_Block(f'<div class="stopped">Execution stopped here ({html.escape(failure.ename)}); '
                                f'the cells below did not run.</div>'))
    return _Section(
        notebook=notebook, title=_notebook_title(nb, notebook),
        body=_join_blocks(_without_empty_headings(parts)),
        summary_blocks=summary_blocks, failure=failure,
        profile=(papermill_meta.get("parameters") or {}).get("PROFILE"),
        seconds=papermill_meta.get("duration"), finished=papermill_meta.get("end_time"),
        from_cache=served_from_cache(nb),
    )


def _merged_streams(outputs: Sequence[Mapping]) -> list[Mapping]:
    # Kernels split one print into many stream messages; one <pre> per run
    # of the same stream reads better.
    merged: list[dict] = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged
                and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == output.get("name")):
            merged[-1]["text"] = _join_text(merged[-1]["text"]) + _join_text(output.get("text", ""))
        else:
            merged.append(dict(output))
    return merged


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _stamp_html(stamp: Mapping[str, Any], sections: Sequence[_Section]) -> str:
    hardware = stamp.get("hardware", {}) or {}
    versions = stamp.get("versions", {}) or {}
    git = stamp.get("git", {}) or {}
    cores = hardware.get("logical_cores")
    cpu = f"{hardware.get('cpu', '?')}" + (f" ({cores} logical cores)" if cores else "")
    gpus = ", ".join(hardware.get("gpus") or []) or "none"
    software = ", ".join(f"{name} {version}" for name, version in versions.items() if version)
    revision = git.get("revision")
    if revision:
        revision_text = revision[:12] + (" (uncommitted changes)" if git.get("dirty") else "")
    else:
        revision_text = "unknown (not a git checkout)"
    executed = [section.seconds for section in sections if section.seconds is not None]
    cached = sum(1 for section in sections if section.seconds is not None and section.from_cache)
    execution = "?"
    if executed:
        execution = f"{_format_seconds(sum(executed))} over {len(executed)} notebooks"
        if cached:
            execution += (f" ({cached} of them read every run from the cache: their time is not "
                          f"training time)")
    rows = [
        ("profile", str(stamp.get("profile") or "?")),
        ("rendered", str(stamp.get("date") or "?")),
        ("execution time", execution),
        ("CPU", cpu),
        ("GPU", gpus),
        ("software", software or "?"),
        ("git revision", revision_text),
    ]
    return '<dl class="stamp">' + "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>" for name, value in rows) + "</dl>"


def _profile_statement(profile: str | None) -> str | None:
    """The profile's "what it can and cannot show" (helpers.summary), or None if unknown.

    A page mixing profiles gets a warning that its sections are not comparable.
    """
    if profile is None:
        return None
    from helpers import profiles, summary

    if profile in profiles.PROFILES:
        return summary.profile_statement(profiles.get_profile(profile))
    if str(profile).startswith("mixed"):
        return (f"The executed notebooks come from different profiles ({profile}); each section names "
                f"its own, and numbers from different profiles are not comparable.")
    return None


def _page(sections: Sequence[_Section], stamp: Mapping[str, Any], title: str,
          not_executed: Sequence[str], printable: bool) -> str:
    profile = stamp.get("profile")
    ordered = sorted(sections, key=lambda section: (not _SUMMARY_STEM.match(section.notebook), section.notebook))
    summary_blocks = [(section, block) for section in ordered for block in section.summary_blocks]
    failures = [section.failure for section in ordered if section.failure is not None]

    head = [f'<header class="report"><h1>{html.escape(title)}</h1>']
    statement = _profile_statement(profile)
    if statement:
        # Before the first number on the page: what this profile can show.
        head.append(f'<div class="banner profile"><strong>What these numbers can show.</strong> '
                    f"{html.escape(statement, quote=False)}</div>")
    head.append(_stamp_html(stamp, ordered))
    if printable:
        head.append('<p class="from">Code, tracebacks and stderr are left out of this print; '
                    "index.html shows them.</p>")
    head.append("</header>")
    if failures:
        items = "".join(f"<li>{html.escape(failure.describe())}</li>" for failure in failures)
        head.append(f'<div class="banner"><strong>{len(failures)} notebook'
                    f'{"s" if len(failures) != 1 else ""} failed.</strong> Their sections show what '
                    f"ran before the error.<ul>{items}</ul></div>")

    toc = ['<nav class="toc"><h2>Contents</h2><ol>']
    if summary_blocks:
        toc.append('<li><a href="#summary">Summary</a></li>')
    for section in ordered:
        tags = ""
        if section.failure is not None:
            tags += '<span class="tag failed">failed</span>'
        if section.profile and profile and section.profile != profile:
            tags += f'<span class="tag warn">profile {html.escape(section.profile)}</span>'
        if section.from_cache:
            tags += '<span class="tag cache">from cache</span>'
        elif section.seconds is not None:
            tags += f'<span class="tag">{_format_seconds(section.seconds)}</span>'
        label = section.title
        if not label.startswith(section.notebook[:2]):
            label = f"{section.notebook[:2]} · {label}"
        toc.append(f'<li><a href="#nb{html.escape(section.notebook)}">{html.escape(label)}</a>{tags}</li>')
    for notebook in not_executed:
        toc.append(f'<li>{html.escape(notebook)} <span class="tag warn">not executed</span></li>')
    toc.append("</ol></nav>")

    body: list[str] = []
    if summary_blocks:
        body.append('<section class="summary" id="summary"><h2>Summary</h2>')
        for section, block in summary_blocks:
            body.append(f'<p class="from">From <a href="#nb{html.escape(section.notebook)}">'
                        f"{html.escape(section.notebook)}</a></p>{block}")
        body.append("</section>")
    for section in ordered:
        meta = [f"{section.notebook}.ipynb"]
        if section.profile:
            meta.append(f"profile {section.profile}")
        if section.finished:
            meta.append(f"executed {section.finished[:19].replace('T', ' ')} UTC")
        if section.from_cache:
            meta.append("every run read from the cache")
        elif section.seconds is not None:
            meta.append(_format_seconds(section.seconds))
        parts = [f'<section class="notebook" id="nb{html.escape(section.notebook)}">',
                 f'<div class="notebook-meta">{html.escape(" · ".join(meta))}</div>']
        if section.failure is not None:
            failure = section.failure
            where = (f"code cell {failure.cell_number}" if failure.cell_number is not None
                     else "before any cell ran")
            if failure.execution_count is not None:
                where += f" (In [{failure.execution_count}])"
            parts.append(f'<div class="banner"><strong>This notebook failed at {html.escape(where)}:</strong>'
                         f"<pre>{html.escape(failure.ename)}: {html.escape(failure.evalue)}</pre></div>")
        if section.profile and profile and section.profile != profile:
            parts.append(f'<div class="banner warn">Executed with profile {html.escape(section.profile)}, '
                         f"not {html.escape(str(profile))}: this section is left from an earlier run.</div>")
        parts.append(section.body)
        parts.append("</section>")
        body.extend(parts)

    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}{f' ({html.escape(str(profile))})' if profile else ''}</title>",
        f"<style>{_CSS}</style></head><body>",
        *head, *toc, *body,
        f"<script>{_IMAGE_CHECK_SCRIPT}</script>",
        "</body></html>",
    ])


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def render_report(executed_paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                  stamp: Mapping[str, Any], failures: Iterable[NotebookFailure] | None = None, *,
                  title: str = "CIFAR Lab report", not_executed: Sequence[str] = ()) -> RenderedReport:
    """Renders executed notebooks into ``<out_dir>/index.html``.

    Also writes ``<out_dir>/_work/print.html``: the same content without
    code cells, tracebacks or stderr, which :func:`render_pdf` prints.

    Args:
        executed_paths: Executed copies (papermill output), any order; the
            page orders them by number, a ``NN_summary`` notebook first.
        out_dir: Where the page goes (``report/`` by default in the command).
        stamp: From :func:`collect_stamp` (any missing key shows as "?").
        failures: How notebooks failed. None reads them back from the
            executed copies; a failure whose notebook has no executed copy
            still gets a section with its error.
        title: The page's heading.
        not_executed: Stems of notebooks listed in the contents as not run.

    Returns:
        A :class:`RenderedReport`.

    Used in: the ``report`` command.
    """
    paths = sorted({Path(path).resolve() for path in executed_paths}, key=lambda path: path.stem)
    if failures is None:
        by_notebook = {path.stem: failure_from_executed(path) for path in paths}
    else:
        by_notebook = {failure.notebook: failure for failure in failures}
    out = Path(out_dir)
    written = {}
    for printable, target in ((False, out / "index.html"), (True, out / "_work" / "print.html")):
        sections = [_render_notebook(path, by_notebook.get(path.stem), printable) for path in paths]
        known = {path.stem for path in paths}
        for notebook, failure in sorted(by_notebook.items()):
            if failure is not None and notebook not in known:
                sections.append(_Section(notebook, notebook, "", [], failure, None, None, None))
        page = _page(sections, stamp, title, not_executed, printable)
        _write_atomic(target, page)
        written[printable] = page
    page = written[False]
    return RenderedReport(
        html_path=out / "index.html", print_html_path=out / "_work" / "print.html",
        image_count=len(_IMG_TAG.findall(page)),
        external_references=tuple(external_references(page)),
    )


# ---------------------------------------------------------------------------
# PDF through headless Chromium
# ---------------------------------------------------------------------------


def find_chromium() -> str | None:
    """Path of a Chromium or Chrome executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_command(chromium: str, profile_dir: str | os.PathLike, *arguments: str) -> list[str]:
    """A headless Chromium command line that touches no network and no user profile.

    ``--no-sandbox`` because CI and containers run as root, where Chromium's
    sandbox refuses to start.
    """
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", f"--user-data-dir={profile_dir}", *arguments]


def render_pdf(html_path: str | os.PathLike, pdf_path: str | os.PathLike,
               chromium: str | None = None, timeout: float = PDF_TIMEOUT_SECONDS) -> Path:
    """Prints ``html_path`` to ``pdf_path`` with headless Chromium.

    Raises:
        RuntimeError: when Chromium is missing, fails or writes no PDF.

    Used in: the ``report`` command.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError(_NO_CHROMIUM)
    source = Path(html_path).resolve()
    target = Path(pdf_path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp.pdf")
    temporary.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="cifar-lab-chromium-") as profile_dir:
        command = chromium_command(chromium, profile_dir, f"--print-to-pdf={temporary}",
                                   "--no-pdf-header-footer", source.as_uri())
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            temporary.unlink(missing_ok=True)
            raise RuntimeError(f"Chromium did not finish printing {source} within {timeout:.0f} s. "
                               f"Received: {' '.join(command)}") from error
    if result.returncode != 0 or not temporary.is_file() or temporary.stat().st_size == 0:
        temporary.unlink(missing_ok=True)
        raise RuntimeError(f"Chromium could not print {source} (exit {result.returncode}): "
                           f"{_first_lines(result.stderr, 5)}. Received: {' '.join(command)}")
    os.replace(temporary, target)
    return target


_NO_CHROMIUM = (
    "No Chromium found on PATH (looked for " + ", ".join(CHROMIUM_NAMES) + "); it prints "
    "report/report.pdf. Install it (Debian/Ubuntu: 'apt-get install chromium') or pass --no-pdf."
)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``report`` subcommand's options to ``parser``."""
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="scale of every notebook (required unless --render-only)")
    parser.add_argument("--data-dir", default=None,
                        help="directory holding the CIFAR files, injected as DATA_DIR and exported "
                             "as CIFAR_DATA_DIR; default: the notebooks' own default")
    parser.add_argument("--notebooks", default=None,
                        help="comma-separated numbers or names to execute, e.g. 00,01 (default: all); "
                             "the page still shows the other notebooks' existing executed copies")
    parser.add_argument("--no-pdf", action="store_true", help="render index.html only, no report.pdf")
    parser.add_argument("--require-pdf", action="store_true",
                        help="fail before executing anything when Chromium (which prints the PDF) "
                             "is missing; by default the PDF is then skipped with a warning")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="longest time one cell may run (default: no limit)")
    parser.add_argument("--render-only", action="store_true",
                        help="render from the existing executed copies without executing anything")
    parser.add_argument("--notebooks-dir", default=None,
                        help=f"where the clean notebooks are (default: {config.NOTEBOOKS_DIR})")
    parser.add_argument("--output-dir", default=None,
                        help=f"where index.html, report.pdf and executed/ go (default: {config.REPORT_DIR})")


def _profile_of(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle).get("metadata", {})
    except (OSError, ValueError):
        return None
    return ((metadata.get("papermill") or {}).get("parameters") or {}).get("PROFILE")


def run_report(profile: str | None, *, notebooks_dir: str | os.PathLike | None = None,
               output_dir: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None, select: Sequence[str] | None = None,
               pdf: bool = True, timeout: float | None = None, render_only: bool = False,
               require_pdf: bool = False) -> int:
    """Executes the selected notebooks and renders the report; returns an exit status.

    0 when every notebook ran and everything was written; 1 when a notebook
    failed or the PDF could not be printed (the HTML is still written).

    Raises:
        ValueError: for bad arguments, before anything runs (including a
            missing Chromium when a PDF is wanted).

    Used in: the ``report`` command.
    """
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else config.NOTEBOOKS_DIR
    output_dir = Path(output_dir) if output_dir is not None else config.REPORT_DIR
    executed_dir = output_dir / "executed"
    if not render_only and profile not in PROFILES:
        raise ValueError(f"--profile is required: one of {', '.join(PROFILES)}. Received: {profile!r}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"--timeout must be a positive number of seconds. Received: {timeout}")
    if data_dir is not None and not Path(data_dir).expanduser().exists():
        raise ValueError(f"--data-dir does not exist. Received: {str(data_dir)!r}")
    chromium = find_chromium() if pdf else None
    pdf_skipped = False
    if pdf and chromium is None:
        # Said before hours of execution, not after.
        if require_pdf:
            raise ValueError(_NO_CHROMIUM + " Received: --require-pdf")
        _log(f"report: warning: {_NO_CHROMIUM} Rendering index.html only.")
        pdf, pdf_skipped = False, True
    if output_dir.resolve() == notebooks_dir.resolve() or executed_dir.resolve() == notebooks_dir.resolve():
        raise ValueError(f"The report must not be written into the notebooks directory. "
                         f"Received: --output-dir {output_dir}")

    sources = find_notebooks(notebooks_dir)
    selected = find_notebooks(notebooks_dir, select) if select else sources
    if not sources:
        raise ValueError(f"No NN_*.ipynb notebooks in {notebooks_dir}. Received: {str(notebooks_dir)!r}")

    failures: dict[str, NotebookFailure | None] = {}
    started = time.monotonic()
    if not render_only:
        try:
            ensure_kernel()
        except RuntimeError as error:
            # A kernel that cannot be arranged is a setup problem, like bad input.
            raise ValueError(str(error)) from error
        for index, source in enumerate(selected, start=1):
            _log(f"[{index}/{len(selected)}] {source.stem}: running (profile {profile})")
            run = execute_notebook(source, executed_dir / source.name, profile, data_dir, timeout=timeout)
            failures[source.stem] = run.failure
            if run.ok:
                _log(f"[{index}/{len(selected)}] {source.stem}: ok in {_format_seconds(run.seconds)}")
            else:
                _log(f"[{index}/{len(selected)}] {source.stem}: FAILED after "
                     f"{_format_seconds(run.seconds)}: {run.failure.describe()}")

    # Executed copies of notebooks that still exist; with --notebooks the
    # others keep their earlier copies, labelled with their own profile/date.
    shown = selected if (render_only and select) else sources
    executed = [executed_dir / source.name for source in shown if (executed_dir / source.name).is_file()]
    for path in executed:
        if path.stem not in failures:
            failures[path.stem] = failure_from_executed(path)
    not_executed = [source.stem for source in shown
                    if not (executed_dir / source.name).is_file() and failures.get(source.stem) is None]
    if render_only and not executed:
        raise ValueError(f"Nothing to render: no executed notebooks in {executed_dir}. "
                         f"Received: --render-only")

    if render_only and profile is None:
        profiles = sorted({found for found in map(_profile_of, executed) if found})
        profile = profiles[0] if len(profiles) == 1 else ("mixed: " + ", ".join(profiles) if profiles else None)
    stamp = collect_stamp(profile)
    rendered = render_report(executed, output_dir,
                             stamp, [failure for failure in failures.values() if failure is not None],
                             not_executed=not_executed)
    _log(f"report: wrote {rendered.html_path} ({rendered.image_count} figures)")
    if rendered.external_references:
        _log("report: warning: the page refers to the network: " + ", ".join(rendered.external_references[:5]))

    status = 0
    if pdf:
        try:
            pdf_path = render_pdf(rendered.print_html_path, output_dir / "report.pdf", chromium)
            _log(f"report: wrote {pdf_path}")
        except RuntimeError as error:
            _log(f"report: error: {error}")
            status = 1

    if pdf_skipped:
        _log(f"report: warning: report.pdf was not written. {_NO_CHROMIUM}")
    failed = [failure for failure in failures.values() if failure is not None]
    if not render_only:
        _log(f"report: executed {len(selected)} notebook{'s' if len(selected) != 1 else ''} "
             f"in {_format_seconds(time.monotonic() - started)}")
    if failed:
        _log(f"report: {len(failed)} notebook{'s' if len(failed) != 1 else ''} failed:")
        for failure in failed:
            _log(f"  {failure.describe()}")
        status = 1
    return status


def report_main(args: argparse.Namespace) -> int:
    """Handler of ``python -m helpers report``; returns the exit status."""
    select = args.notebooks.split(",") if args.notebooks else None
    return run_report(args.profile, notebooks_dir=args.notebooks_dir, output_dir=args.output_dir,
                      data_dir=args.data_dir, select=select, pdf=not args.no_pdf,
                      timeout=args.timeout, render_only=args.render_only,
                      require_pdf=args.require_pdf)
