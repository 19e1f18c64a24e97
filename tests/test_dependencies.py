"""pyproject.toml and constraints.txt: what the project declares is what it uses and pins.

Run as a script it prints the constraints file for the interpreter's installed
set (``.venv/bin/python -m tests.test_dependencies > constraints.txt``), after
an upgrade that the tests pass with.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = PROJECT_ROOT / "constraints.txt"
PROJECT_NAME = "cifar-lab"

# Imported by helpers.colab in Colab only, where Colab provides it.
PROVIDED_BY_COLAB = {"google"}

# Declared for something other than an import in helpers/.
USED_WITHOUT_IMPORT = {
    "jupyterlab": "the README's `jupyter lab notebooks/`",
    "ipywidgets": "tqdm.auto's progress bar in a notebook (helpers.progress)",
}

# Install tools are left to pip, as `pip freeze` does: pinning the venv's
# setuptools (65.5) would refuse torch, which needs setuptools>=77.
INSTALL_TOOLS = {"pip", "setuptools", "wheel"}

HEADER = """\
# The versions the test suite passes with (Python 3.11, Linux x86-64): every
# distribution that cifar-lab[test] needs (pyproject.toml), and nothing else
# (setuptools and wheel are left to pip, as pip freeze does).
# The README's commands, .ci/run and environment.yml install with
# `pip install -c constraints.txt ...`. After an upgrade that the tests pass
# with, regenerate it: .venv/bin/python -m tests.test_dependencies > constraints.txt
"""


def _project() -> dict:
    with open(PROJECT_ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]


def declared(extras: tuple[str, ...] = ("test",)) -> list[Requirement]:
    """The project's direct requirements with ``extras``, self-references expanded."""
    project = _project()
    optional = project["optional-dependencies"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    pending = list(extras)
    while pending:
        for text in optional[pending.pop()]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PROJECT_NAME:
                pending.extend(requirement.extras)
            else:
                requirements.append(requirement)
    return requirements


def needed_distributions(extras: tuple[str, ...] = ("test",)) -> dict[str, str]:
    """Every installed distribution the project needs with ``extras``: name -> version.

    Walks the installed metadata from the declared requirements, following
    each requirement whose environment marker holds here.

    Raises:
        importlib.metadata.PackageNotFoundError: a needed distribution is not installed.
    """
    queue = declared(extras)
    seen: set[tuple[str, frozenset[str]]] = set()
    found: dict[str, str] = {}
    while queue:
        requirement = queue.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        distribution = importlib.metadata.distribution(requirement.name)
        found[distribution.metadata["Name"]] = distribution.version
        environments = [{"extra": extra} for extra in requirement.extras or {""}]
        for text in distribution.requires or []:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate(env) for env in environments):
                queue.append(child)
    return found


def constraints_text() -> str:
    """The constraints file for the installed set, install tools left out."""
    pins = sorted(((name, version) for name, version in needed_distributions().items()
                   if canonicalize_name(name) not in INSTALL_TOOLS), key=lambda item: canonicalize_name(item[0]))
    return HEADER + "".join(f"{name}=={version}\n" for name, version in pins)


def pinned() -> dict[str, str]:
    """constraints.txt as canonical name -> version."""
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def imported_top_level_modules(folder: Path) -> set[str]:
    """Top-level names of every module imported by the .py files under ``folder``."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names


def _third_party_imports(folder: Path) -> dict[str, set[str]]:
    """Distribution (canonical name) -> the modules of it that ``folder`` imports."""
    by_module = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for module in imported_top_level_modules(folder):
        if module in sys.stdlib_module_names or module in PROVIDED_BY_COLAB or module in ("helpers", "__future__"):
            continue
        for distribution in by_module.get(module, [module]):
            found.setdefault(canonicalize_name(distribution), set()).add(module)
    return found


def test_every_import_in_helpers_is_a_declared_dependency():
    declared_names = {canonicalize_name(r.name) for r in declared(("report",))}
    imports = _third_party_imports(PROJECT_ROOT / "helpers")
    undeclared = {name: sorted(modules) for name, modules in imports.items() if name not in declared_names}
    assert not undeclared, (
        f"helpers/ imports {undeclared} but pyproject.toml declares none of them; add them to "
        "[project] dependencies (or the report extra), then regenerate constraints.txt")


def test_every_declared_dependency_is_used():
    imports = _third_party_imports(PROJECT_ROOT / "helpers")
    unused = [r.name for r in declared(("report",))
              if canonicalize_name(r.name) not in imports and r.name not in USED_WITHOUT_IMPORT]
    assert not unused, f"pyproject.toml declares {unused}, which nothing in helpers/ imports; drop them"


def test_keras_is_bounded_to_one_minor_version():
    keras = next(r for r in declared(()) if r.name == "keras")
    installed = importlib.metadata.version("keras")
    assert keras.specifier.contains(installed)
    major, minor = (int(part) for part in installed.split(".")[:2])
    assert not keras.specifier.contains(f"{major}.{minor + 1}.0"), keras


def test_constraints_pin_exactly_the_installed_set_the_project_needs():
    needed = {canonicalize_name(name): version for name, version in needed_distributions().items()
              if canonicalize_name(name) not in INSTALL_TOOLS}
    pins = pinned()
    assert sorted(set(pins) - set(needed)) == [], "constraints.txt pins distributions the project does not need"
    differing = {name: (pins.get(name), version) for name, version in needed.items() if pins.get(name) != version}
    assert not differing, (
        f"constraints.txt (pinned, installed) differs from this environment: {differing}; install with "
        "`pip install -c constraints.txt -e \".[test]\"`, or after an upgrade the tests pass with, "
        "regenerate it: .venv/bin/python -m tests.test_dependencies > constraints.txt")


def test_the_commands_install_with_the_constraints():
    readme = (PROJECT_ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2 and all("-c constraints.txt" in line for line in commands), commands
    ci_lines = (PROJECT_ROOT / ".ci" / "run").read_text().rstrip().splitlines()
    assert ci_lines[-1] == commands[1], "the last line of .ci/run is the README's test command, verbatim"
    assert "-c constraints.txt" in (PROJECT_ROOT / "environment.yml").read_text()


if __name__ == "__main__":
    sys.stdout.write(constraints_text())
