"""The Colab cell and helpers.colab, offline: a fake git and pip, a fake Drive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from helpers import colab, config

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "https://github.com/example/cifar-lab"


class FakeRunner:
    """Stands in for subprocess.run: records each command, answers from ``answers``."""

    def __init__(self, answers=None, on_clone=None):
        self.commands = []
        self.answers = answers or {}
        self.on_clone = on_clone

    def __call__(self, command, **kwargs):
        self.commands.append(list(command))
        tool = "git" if command[0] == "git" else "pip"
        returncode, stderr = self.answers.get(tool, (0, ""))
        if tool == "git" and returncode == 0 and self.on_clone:
            self.on_clone(Path(command[-1]))
        return subprocess.CompletedProcess(command, returncode, stdout="", stderr=stderr)


class FakeDrive:
    def __init__(self, error=None):
        self.mounted = []
        self.error = error

    def mount(self, mount_point):
        if self.error:
            raise self.error
        self.mounted.append(mount_point)


@pytest.fixture
def restore():
    """Puts back what the set-up changes in this process: the folder variables, config, sys.path."""
    variables = (config.RUNS_DIR_ENV, config.FIGURES_DIR_ENV)
    saved = {name: os.environ.get(name) for name in variables}
    paths = {name: value for name, value in vars(config).items() if isinstance(value, Path)}
    path = list(sys.path)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for name, value in paths.items():  # as they were, not read again (another fixture may have set one)
        setattr(config, name, value)
    sys.path[:] = path


@pytest.fixture
def in_colab(monkeypatch, restore):
    """A fake google.colab (with a fake Drive) in sys.modules; fixed package versions."""
    drive = FakeDrive()
    module = types.ModuleType("google.colab")
    module.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", module)
    monkeypatch.setattr(colab, "installed_versions", lambda: {"numpy": "2.4.6"})
    return drive


def run_cell(source, checkout, runner, monkeypatch):
    """Executes a cell's source with its checkout moved to ``checkout`` and subprocess.run faked."""
    assert source.count(f'"{colab.CHECKOUT}"') == 1
    monkeypatch.setattr(subprocess, "run", runner)
    exec(compile(source.replace(f'"{colab.CHECKOUT}"', repr(str(checkout))), "colab-cell", "exec"), {})


def notebook_cells():
    return {path.name: json.loads(path.read_text())["cells"][colab.CELL_INDEX]
            for path in colab.notebook_paths()}


# -- the cell in the notebooks ----------------------------------------------------------


def test_every_notebook_has_the_same_colab_cell_and_it_compiles():
    cells = notebook_cells()
    assert len(cells) == 9
    sources = {"".join(cell["source"]) for cell in cells.values()}
    assert len(sources) == 1, "the Colab cells differ; run python -m helpers.colab --repository URL"
    (source,) = sources
    assert source == colab.cell_source(colab.repository_of(source))
    compile(source, "colab-cell", "exec")
    for cell in cells.values():
        assert cell["cell_type"] == "code" and cell["outputs"] == [] and cell["execution_count"] is None


def test_the_cell_names_its_settings_and_the_placeholder_says_what_to_set():
    assert colab.repository_of(colab.CELL) == colab.PLACEHOLDER
    assert "\nKEEP_RUNS_ON_DRIVE = True\n" in colab.CELL
    assert f'"{colab.CHECKOUT}"' in colab.CELL
    assert colab.repository_of(colab.cell_source(REPOSITORY)) == REPOSITORY


def test_outside_colab_the_cell_does_nothing(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    runner = FakeRunner()
    run_cell(colab.CELL, Path("/nonexistent/checkout"), runner, monkeypatch)
    assert runner.commands == []
    assert capsys.readouterr() == ("", "")


def test_the_placeholder_stops_the_cell_before_any_clone(in_colab, tmp_path, monkeypatch):
    runner = FakeRunner()
    with pytest.raises(RuntimeError) as caught:
        run_cell(colab.CELL, tmp_path / "cifar-lab", runner, monkeypatch)
    (line,) = caught.value._render_traceback_()
    assert line.startswith("Colab set-up: set REPOSITORY in this cell") and "\n" not in line
    assert runner.commands == []


def test_a_failed_clone_is_one_line_with_gits_message(in_colab, tmp_path, monkeypatch):
    runner = FakeRunner({"git": (128, "Cloning into '/content/cifar-lab'...\n"
                                      "fatal: repository 'https://github.com/example/cifar-lab/' not found\n")})
    with pytest.raises(RuntimeError) as caught:
        run_cell(colab.cell_source(REPOSITORY), tmp_path / "cifar-lab", runner, monkeypatch)
    (line,) = caught.value._render_traceback_()
    assert "\n" not in line
    assert f"git could not clone REPOSITORY = '{REPOSITORY}'" in line
    assert "fatal: repository 'https://github.com/example/cifar-lab/' not found" in line
    assert line.endswith("set REPOSITORY in this cell to this project's git address, then run the cell again")
    assert runner.commands == [["git", "clone", "--depth=1", "--quiet", REPOSITORY, str(tmp_path / "cifar-lab")]]


def test_a_repository_that_is_not_this_project_is_named_and_its_clone_removed(in_colab, tmp_path, monkeypatch):
    def clone(target):
        target.mkdir(parents=True)
        (target / "README.md").write_text("another project")

    runner = FakeRunner(on_clone=clone)
    with pytest.raises(RuntimeError, match="is not this project") as caught:
        run_cell(colab.cell_source(REPOSITORY), tmp_path / "cifar-lab", runner, monkeypatch)
    assert len(caught.value._render_traceback_()) == 1
    assert not (tmp_path / "cifar-lab").exists()


def test_the_cell_clones_installs_and_keeps_runs_on_drive(in_colab, tmp_path, monkeypatch, capsys):
    checkout = tmp_path / "cifar-lab"

    def clone(target):
        (target / "helpers").mkdir(parents=True)
        (target / "helpers" / "colab.py").write_text("")  # the real module is already imported

    runner = FakeRunner(on_clone=clone)
    monkeypatch.setattr(colab, "DRIVE_FOLDER", tmp_path / "drive" / "MyDrive" / "cifar-lab")
    monkeypatch.delenv(config.RUNS_DIR_ENV, raising=False)
    monkeypatch.delenv(config.FIGURES_DIR_ENV, raising=False)
    run_cell(colab.cell_source(REPOSITORY), checkout, runner, monkeypatch)

    assert in_colab.mounted == [str(colab.DRIVE_MOUNT)]
    assert [command[0] for command in runner.commands] == ["git", sys.executable]
    assert runner.commands[1] == [sys.executable, "-m", "pip", "install", "--no-input", "--progress-bar", "off",
                                  "--editable", str(checkout)]
    assert sys.path[0] == str(checkout)
    assert config.RUNS_DIR == tmp_path / "drive" / "MyDrive" / "cifar-lab" / "runs"
    assert config.FIGURES_DIR == tmp_path / "drive" / "MyDrive" / "cifar-lab" / "figures"
    assert config.RUNS_DIR.is_dir() and config.FIGURES_DIR.is_dir()
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"Colab set-up: done; runs and checkpoints in {config.RUNS_DIR}")

    # Run again (the same session, or after a restart): no second clone.
    runner.commands.clear()
    run_cell(colab.cell_source(REPOSITORY), checkout, runner, monkeypatch)
    assert [command[0] for command in runner.commands] == [sys.executable]


# -- helpers.colab.set_up ---------------------------------------------------------------


def test_without_drive_runs_stay_on_the_sessions_disk(in_colab, tmp_path, capsys):
    runner = FakeRunner()
    colab.set_up(tmp_path, keep_runs_on_drive=False, run=runner)
    assert in_colab.mounted == []
    assert "wiped when the session ends (KEEP_RUNS_ON_DRIVE = True" in capsys.readouterr().out


def test_a_refused_drive_says_what_to_set(in_colab, tmp_path):
    drive = FakeDrive(error=ValueError("mount failed"))
    runner = FakeRunner()
    with pytest.raises(colab.ColabSetupError) as caught:
        colab.set_up(tmp_path, run=runner, mount=drive.mount, drive_folder=tmp_path / "drive")
    (line,) = caught.value._render_traceback_()
    assert "could not mount Google Drive at /content/drive (mount failed)" in line
    assert "set KEEP_RUNS_ON_DRIVE = False in this cell" in line
    assert runner.commands == []  # nothing installed before the question is settled


def test_a_folder_the_user_set_is_kept(in_colab, tmp_path, monkeypatch):
    monkeypatch.setenv(config.RUNS_DIR_ENV, str(tmp_path / "mine"))
    folders = colab.use_drive(FakeDrive().mount, tmp_path / "drive")
    assert folders == {"runs": tmp_path / "mine", "figures": tmp_path / "drive" / "figures"}


def test_a_failed_pip_is_one_line_with_pips_error(in_colab, tmp_path):
    stderr = textwrap.dedent("""\
        Obtaining file:///content/cifar-lab
          Installing build dependencies: started
        ERROR: Package 'cifar-lab' requires a different Python: 3.13.1 not in '<3.13,>=3.11'
        """)
    with pytest.raises(colab.ColabSetupError) as caught:
        colab.set_up(tmp_path, keep_runs_on_drive=False, run=FakeRunner({"pip": (1, stderr)}))
    (line,) = caught.value._render_traceback_()
    assert f"pip could not install {tmp_path} (ERROR: Package 'cifar-lab' requires a different Python" in line
    assert "Obtaining" not in line


def test_replacing_an_imported_package_asks_for_a_restart(in_colab, tmp_path, monkeypatch):
    versions = iter([{"numpy": "2.0.2", "tensorflow": "2.19.0", "sympy": "1.13"},
                     {"numpy": "2.4.6", "tensorflow": "2.21.0", "sympy": "1.14", "keras": "3.15.1"}])
    monkeypatch.setattr(colab, "installed_versions", lambda: next(versions))
    monkeypatch.setattr(colab, "is_imported", lambda name: name != "sympy")
    with pytest.raises(colab.ColabSetupError) as caught:
        colab.set_up(tmp_path, keep_runs_on_drive=False, run=FakeRunner())
    (line,) = caught.value._render_traceback_()
    assert line.startswith("Colab set-up: pip installed new versions of numpy, tensorflow, which this session")
    assert "Runtime > Restart session, then run this cell again" in line


def test_is_imported_finds_a_distributions_modules():
    assert colab.is_imported("pytest")  # this test runs under it
    assert not colab.is_imported("no-such-distribution")


def test_tail_is_one_line_and_prefers_error_lines():
    assert colab.tail("a\n  b\n\nc") == "a b c"
    assert colab.tail("Collecting x\nerror: one\nnote: two\nERROR: three") == "error: one ERROR: three"
    assert colab.tail("a" * 5 + "x" * 500, limit=10) == "..." + "x" * 10
    assert colab.tail("ERROR: " + "x" * 500, limit=10) == "ERROR: xxx..."


def test_ipython_shows_one_line_for_each_failure():
    """What the user sees: IPython (as in Colab) prints the message, not a traceback."""
    script = textwrap.dedent(f"""\
        import sys, types
        sys.modules["google.colab"] = types.ModuleType("google.colab")
        from IPython.core.interactiveshell import InteractiveShell
        from helpers import colab
        shell = InteractiveShell.instance()
        shell.run_cell(colab.CELL.replace({str(colab.CHECKOUT)!r}, "/nonexistent/cifar-lab"))
        shell.run_cell("from helpers import colab\\n"
                       "raise colab.ColabSetupError('pip could not install x (ERROR: y); fix what pip names')")
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("Colab set-up: set REPOSITORY in this cell")
    assert lines[1] == "Colab set-up: pip could not install x (ERROR: y); fix what pip names"


# -- python -m helpers.colab --------------------------------------------------------------


def test_write_cells_changes_only_the_colab_cell(tmp_path):
    for path in colab.notebook_paths():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    before = {path.name: json.loads(path.read_text()) for path in colab.notebook_paths(tmp_path)}
    changed = colab.write_cells(REPOSITORY, tmp_path)
    assert [path.name for path in changed] == sorted(before)
    for path in changed:
        notebook = json.loads(path.read_text())
        assert "".join(notebook["cells"][colab.CELL_INDEX]["source"]) == colab.cell_source(REPOSITORY)
        notebook["cells"][colab.CELL_INDEX]["source"] = before[path.name]["cells"][colab.CELL_INDEX]["source"]
        assert notebook == before[path.name]
    # And back: byte for byte the committed notebooks.
    colab.write_cells(colab.repository_of("".join(next(iter(notebook_cells().values()))["source"])), tmp_path)
    for path in colab.notebook_paths():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_write_cells_refuses_a_notebook_without_the_colab_cell(tmp_path):
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# 00"]},
                          {"cell_type": "markdown", "metadata": {}, "source": ["text"]}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "00_x.ipynb").write_text(json.dumps(notebook, indent=1))
    with pytest.raises(ValueError, match="cell 1 is not the Colab cell"):
        colab.write_cells(REPOSITORY, tmp_path)
