"""Project paths and the environment variables that move or tune them.

Paths are resolved from this file and never from the working directory, so
the same call works from ``notebooks/``, from CI and in Colab. Each directory
can be moved with an environment variable, for read-only checkouts or shared
machines. Every environment variable the project reads or sets is named here
once.
"""

from __future__ import annotations

import os
from pathlib import Path

# -- environment variables ---------------------------------------------------

# Directories (read when this module is first imported).
FIGURES_DIR_ENV = "CIFAR_LAB_FIGURES_DIR"
REPORT_DIR_ENV = "CIFAR_LAB_REPORT_DIR"
RUNS_DIR_ENV = "CIFAR_LAB_RUNS_DIR"
CACHE_DIR_ENV = "CIFAR_LAB_CACHE_DIR"
# A folder of committed run records to read every run from, training nothing
# (set by ``report --render-only --profile P`` for the notebooks' kernels).
RECORDS_DIR_ENV = "CIFAR_LAB_RECORDS_DIR"
# Where the committed records of every profile live (default: records/).
RECORDS_ROOT_ENV = "CIFAR_LAB_RECORDS_ROOT"
# A directory (or archive) holding the CIFAR files.
DATA_DIR_ENV = "CIFAR_DATA_DIR"
# The engine's progress display: "bar", "lines" or "none" (helpers.progress).
PROGRESS_ENV = "CIFAR_LAB_PROGRESS"
# The notebook a report kernel is executing (helpers.report sets it,
# helpers.plots numbers figures by it).
NOTEBOOK_ENV = "CIFAR_LAB_NOTEBOOK"
# TensorFlow's own variables that the project sets or reads.
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
TF_CONFIG_ENV = "TF_CONFIG"

# -- paths -------------------------------------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
FIGURES_DIR = Path(os.environ.get(FIGURES_DIR_ENV, PROJECT_ROOT / "figures"))
REPORT_DIR = Path(os.environ.get(REPORT_DIR_ENV, PROJECT_ROOT / "report"))
RUNS_DIR = Path(os.environ.get(RUNS_DIR_ENV, PROJECT_ROOT / "runs"))
CACHE_DIR = Path(os.environ.get(CACHE_DIR_ENV, PROJECT_ROOT / ".cache"))
# Committed run records, one folder per profile (helpers.committed).
RECORDS_DIR = Path(os.environ.get(RECORDS_ROOT_ENV, PROJECT_ROOT / "records"))
# Where decoded CIFAR arrays are cached (see helpers.data).
DATA_CACHE_DIR = CACHE_DIR / "data"


def data_dir_from_env() -> Path | None:
    """Returns the directory named by ``CIFAR_DATA_DIR``, or None if unset."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None
