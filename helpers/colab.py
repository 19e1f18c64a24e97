"""Colab: the first cell of every notebook, and the set-up it calls.

A notebook opened in Colab arrives without this project. Its first cell
(``CELL``, the same in every notebook) has two settings: ``REPOSITORY``, the
project's git address, and ``KEEP_RUNS_ON_DRIVE``. In Colab it clones
``REPOSITORY`` into /content/cifar-lab, puts the checkout on ``sys.path``
and calls :func:`set_up`, which keeps runs and figures on Google Drive when
asked, then installs the project with pip. Outside Colab the cell does
nothing.

The clone has to be written in the cell itself: nothing of the project can
be imported before it exists. Everything after the clone lives here, where
the tests reach it with a fake runner and a fake Drive.

Every failure is a :class:`ColabSetupError`, which IPython shows as one line
instead of a traceback: what failed, the end of git's or pip's own message,
and what to set.

``python -m helpers.colab --repository URL`` writes ``CELL`` with that
address into every notebook.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

from helpers import config

# The cell's setting until the project has a public address.
PLACEHOLDER = "https://github.com/<owner>/<repo>"
CHECKOUT = Path("/content/cifar-lab")
DRIVE_MOUNT = Path("/content/drive")
# Runs (records, checkpoints) and figures go here with KEEP_RUNS_ON_DRIVE. The
# decoded-data cache stays on the session's disk: it is rebuilt in seconds and
# Drive is slow to read.
DRIVE_FOLDER = DRIVE_MOUNT / "MyDrive" / "cifar-lab"
# Where the Colab cell sits in every notebook: after the header.
CELL_INDEX = 1

_REPOSITORY_LINE = f"REPOSITORY = {json.dumps(PLACEHOLDER)}"

# The cell, word for word (write_cells puts it into the notebooks; the tests
# hold them to it). It repeats PLACEHOLDER and CHECKOUT: it runs before this
# module exists.
CELL = r'''# Colab set-up (does nothing outside Colab): installs this project from REPOSITORY, its
# git address. KEEP_RUNS_ON_DRIVE keeps runs, checkpoints and figures in MyDrive/cifar-lab,
# where they outlive the session and an interrupted run resumes (Colab asks for access to
# Drive); False leaves them on the session's disk, which is wiped when the session ends.
REPOSITORY = "https://github.com/<owner>/<repo>"
KEEP_RUNS_ON_DRIVE = True

import sys
if "google.colab" in sys.modules:
    import os, pathlib, shutil, subprocess

    class ColabSetupError(RuntimeError):
        def _render_traceback_(self):  # IPython shows this one line instead of a traceback
            return [f"Colab set-up: {self}"]

    checkout = pathlib.Path("/content/cifar-lab")
    if not (checkout / "helpers" / "colab.py").exists():
        if "<" in REPOSITORY or not REPOSITORY.strip():
            raise ColabSetupError(
                "set REPOSITORY in this cell to this project's git address (https://github.com/OWNER/REPO, "
                "as in this page's address after colab.research.google.com/github/), then run the cell again")
        clone = subprocess.run(["git", "clone", "--depth=1", "--quiet", REPOSITORY, str(checkout)],
                               capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        if clone.returncode != 0:
            raise ColabSetupError(
                f"git could not clone REPOSITORY = {REPOSITORY!r} ({' '.join(clone.stderr.split())[-300:]}); "
                "set REPOSITORY in this cell to this project's git address, then run the cell again")
        if not (checkout / "helpers" / "colab.py").exists():
            shutil.rmtree(checkout)
            raise ColabSetupError(
                f"REPOSITORY = {REPOSITORY!r} is not this project (it has no helpers/colab.py); "
                "set REPOSITORY in this cell to this project's git address, then run the cell again")
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    from helpers import colab
    colab.set_up(checkout, keep_runs_on_drive=KEEP_RUNS_ON_DRIVE)'''


class ColabSetupError(RuntimeError):
    """A set-up step failed; the message says what to set or do."""

    def _render_traceback_(self) -> list[str]:
        # IPython (and so Colab) shows these lines instead of a traceback.
        return [f"Colab set-up: {self}"]


def tail(text: str, limit: int = 300) -> str:
    """A tool's message as one line, whitespace collapsed, at most about ``limit`` characters.

    Its error lines (``ERROR:``, ``error:``, ``fatal:``) from their start if it
    printed any, else the end of everything it printed.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith(("error", "fatal"))]
    line = " ".join(" ".join(errors or lines).split())
    if len(line) <= limit:
        return line
    return line[:limit] + "..." if errors else "..." + line[-limit:]


def use_drive(mount: Callable[[str], object] | None = None, folder: Path | None = None) -> dict[str, Path]:
    """Mounts Google Drive and points the runs and figures folders into it.

    Sets ``CIFAR_LAB_RUNS_DIR`` and ``CIFAR_LAB_FIGURES_DIR`` (unless already
    set) to ``folder``/runs and ``folder``/figures, creates them, and reads
    ``helpers.config`` again, which took its paths from the environment when
    ``helpers`` was first imported (every module reads ``config.RUNS_DIR``
    and ``config.FIGURES_DIR`` when it needs them).

    Args:
        mount: Called with the mount point; default ``google.colab.drive.mount``.
        folder: Default ``DRIVE_FOLDER`` (MyDrive/cifar-lab).

    Returns:
        {"runs": folder, "figures": folder}, as ``helpers.config`` now has them.

    Raises:
        ColabSetupError: Drive could not be mounted or written.
    """
    folder = DRIVE_FOLDER if folder is None else Path(folder)
    if mount is None:
        from google.colab import drive
        mount = drive.mount
    try:
        mount(str(DRIVE_MOUNT))
    except Exception as error:  # declined, timed out, unavailable: google.colab raises several kinds
        raise ColabSetupError(
            f"could not mount Google Drive at {DRIVE_MOUNT} ({tail(str(error)) or type(error).__name__}); "
            "allow access when Colab asks, or set KEEP_RUNS_ON_DRIVE = False in this cell to keep runs "
            "on the session's disk, then run the cell again") from None
    for variable, name in ((config.RUNS_DIR_ENV, "runs"), (config.FIGURES_DIR_ENV, "figures")):
        directory = Path(os.environ.setdefault(variable, str(folder / name)))
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ColabSetupError(
                f"cannot write {directory} ({error.strerror}); set KEEP_RUNS_ON_DRIVE = False in this cell, "
                f"or {variable} to a folder you can write, then run the cell again") from None
    importlib.reload(config)
    return {"runs": config.RUNS_DIR, "figures": config.FIGURES_DIR}


def install(checkout: Path, run: Callable[..., subprocess.CompletedProcess] | None = None) -> None:
    """``pip install --editable checkout``: the project and what its notebooks import.

    Only the project's own dependencies (TensorFlow, Keras, numpy, ...), not
    its report extra: Colab brings its own Jupyter and kernel, which must not
    be replaced. Without constraints.txt for the same reason: what Colab has
    stays where it satisfies pyproject.toml.

    Raises:
        ColabSetupError: pip failed; the message ends with pip's error lines.
    """
    run = subprocess.run if run is None else run
    command = [sys.executable, "-m", "pip", "install", "--no-input", "--progress-bar", "off",
               "--editable", str(checkout)]
    result = run(command, capture_output=True, text=True,
                 env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if result.returncode != 0:
        raise ColabSetupError(
            f"pip could not install {checkout} ({tail(result.stderr or result.stdout or '')}); "
            "run the cell again after a network error, else fix what pip names")


def installed_versions() -> dict[str, str]:
    """Every installed distribution: normalized name -> version."""
    versions: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:  # the first found is the one imported (Colab has two site folders)
            versions.setdefault(re.sub(r"[-_.]+", "-", name).lower(), distribution.version)
    return versions


def is_imported(distribution: str) -> bool:
    """Whether this process has imported a module that ``distribution`` installs."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return False
    for file in files:
        if file.suffix != ".py" or ".." in file.parts:
            continue
        parts = file.with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module in sys.modules:
            return True
    return False


def set_up(checkout: Path = CHECKOUT, keep_runs_on_drive: bool = True, *,
           run: Callable[..., subprocess.CompletedProcess] | None = None,
           mount: Callable[[str], object] | None = None, drive_folder: Path | None = None,
           echo: Callable[[str], object] = print) -> None:
    """Everything the Colab cell does after the clone.

    Drive comes first, so that Colab's request for access comes at once and
    the install then runs unattended; both come before the notebook's next
    cells use a path from ``helpers.config``.

    Args:
        checkout: The clone of the project.
        keep_runs_on_drive: Keep runs and figures on Google Drive (:func:`use_drive`).
        run: Runs pip (``subprocess.run``'s signature); the tests pass a fake.
        mount: Mounts Drive; default ``google.colab.drive.mount``.
        drive_folder: Default ``DRIVE_FOLDER``.
        echo: Prints the progress and the closing line.

    Raises:
        ColabSetupError: Drive or pip failed, or pip replaced a package this
            session had already imported, so that the session must restart.

    Used in: the first cell of every notebook.
    """
    folders = use_drive(mount, drive_folder) if keep_runs_on_drive else None
    echo("Colab set-up: installing the project with pip (TensorFlow included: a few minutes the first time)")
    before = installed_versions()
    install(Path(checkout), run)
    after = installed_versions()
    replaced = sorted(name for name, version in after.items()
                      if before.get(name) not in (None, version) and is_imported(name))
    if replaced:
        raise ColabSetupError(
            f"pip installed new versions of {', '.join(replaced)}, which this session had already imported: "
            "choose Runtime > Restart session, then run this cell again (the checkout and the install stay)")
    if folders:
        echo(f"Colab set-up: done; runs and checkpoints in {folders['runs']}, figures in {folders['figures']} "
             "(Google Drive)")
    else:
        echo(f"Colab set-up: done; runs and checkpoints in {config.RUNS_DIR}, figures in {config.FIGURES_DIR}, "
             "wiped when the session ends (KEEP_RUNS_ON_DRIVE = True keeps them on Google Drive)")


# -- the cell in the notebooks ----------------------------------------------------------


def cell_source(repository: str = PLACEHOLDER) -> str:
    """``CELL`` with ``REPOSITORY`` set to ``repository``."""
    return CELL.replace(_REPOSITORY_LINE, f"REPOSITORY = {json.dumps(repository)}", 1)


def repository_of(source: str) -> str | None:
    """The ``REPOSITORY`` a Colab cell's source sets, or None if it sets none."""
    for line in source.splitlines():
        if line.startswith("REPOSITORY = "):
            return json.loads(line.removeprefix("REPOSITORY = "))
    return None


def notebook_paths(notebooks_dir: Path | None = None) -> list[Path]:
    """The series' notebooks, in order."""
    return sorted((notebooks_dir or config.NOTEBOOKS_DIR).glob("[0-9][0-9]_*.ipynb"))


def _source_json(lines: Sequence[str]) -> str:
    # A code cell's "source" as nbformat writes it (indent=1, the cell at depth 2).
    items = ",\n".join("    " + json.dumps(line, ensure_ascii=False) for line in lines)
    return '"source": [\n' + items + "\n   ]" if lines else '"source": []'


def write_cells(repository: str = PLACEHOLDER, notebooks_dir: Path | None = None) -> list[Path]:
    """Writes ``cell_source(repository)`` as the Colab cell of every notebook.

    Only that cell's source changes: every other byte of each file stays as
    it was (the notebooks stay without outputs).

    Returns:
        The notebooks that changed.

    Raises:
        ValueError: a notebook's cell ``CELL_INDEX`` is not a Colab cell, or
            its source cannot be found in the file's text.
    """
    new_lines = cell_source(repository).splitlines(keepends=True)
    changed = []
    for path in notebook_paths(notebooks_dir):
        text = path.read_text(encoding="utf-8")
        notebook = json.loads(text)
        cell = notebook["cells"][CELL_INDEX]
        if cell["cell_type"] != "code" or "google.colab" not in "".join(cell["source"]):
            raise ValueError(f"{path}: cell {CELL_INDEX} is not the Colab cell. "
                             f"Received: {''.join(cell['source'])[:80]!r}")
        if cell["source"] == new_lines:
            continue
        old_json = _source_json(cell["source"])
        if text.count(old_json) != 1:
            raise ValueError(f"{path}: the Colab cell's source is not written as nbformat writes it; "
                             "save the notebook with Jupyter, then run this again")
        updated = text.replace(old_json, _source_json(new_lines))
        cell["source"] = new_lines
        if json.loads(updated) != notebook:
            raise ValueError(f"{path}: replacing the Colab cell changed more than the cell")
        path.write_text(updated, encoding="utf-8")
        changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.colab",
        description="Write the Colab cell, with REPOSITORY set, into every notebook.")
    parser.add_argument("--repository", default=PLACEHOLDER,
                        help="this project's git address, e.g. https://github.com/OWNER/REPO")
    args = parser.parse_args(argv)
    for path in write_cells(args.repository):
        print(f"wrote the Colab cell of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
