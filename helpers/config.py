"""Project paths, resolved from this file and never from the working directory.

The same call therefore works from ``notebooks/``, from CI and in Colab. Each
directory can be moved with an environment variable, for read-only checkouts
or shared machines.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
FIGURES_DIR = Path(os.environ.get("CIFAR_LAB_FIGURES_DIR", PROJECT_ROOT / "figures"))
REPORT_DIR = Path(os.environ.get("CIFAR_LAB_REPORT_DIR", PROJECT_ROOT / "report"))
RUNS_DIR = Path(os.environ.get("CIFAR_LAB_RUNS_DIR", PROJECT_ROOT / "runs"))
CACHE_DIR = Path(os.environ.get("CIFAR_LAB_CACHE_DIR", PROJECT_ROOT / ".cache"))
# Where decoded CIFAR arrays are cached (see helpers.data).
DATA_CACHE_DIR = CACHE_DIR / "data"
# Environment variable naming a directory that holds CIFAR files.
DATA_DIR_ENV = "CIFAR_DATA_DIR"


def data_dir_from_env() -> Path | None:
    """Returns the directory named by ``CIFAR_DATA_DIR``, or None if unset."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None
