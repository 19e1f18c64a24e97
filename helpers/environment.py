"""What a result was produced on: hardware, software versions, git revision.

Run records, the report's stamp and the benchmarks all describe their
machine with these functions, so the three always agree. Only
:func:`describe_environment` imports TensorFlow (to name the GPUs it sees);
everything else reads files, package metadata and ``git``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

from helpers import config


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The SIMD extensions that change TensorFlow's CPU kernels (and their float
# rounding): AVX-512 hosts run other oneDNN kernels than AVX2 ones, and the
# same quick configurations moved by up to 5.5 points between the two.
INSTRUCTION_SET_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def instruction_set(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> dict[str, Any]:
    """The host's widest vector extension and the flags above it has.

    Returns:
        {"widest": "AVX-512" | "AVX2" | "AVX" | "SSE" | "unknown", "flags":
        the subset of INSTRUCTION_SET_FLAGS present}, from /proc/cpuinfo on
        Linux (elsewhere "unknown" with no flags).
    """
    flags: set[str] = set()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if not flags:
        return {"widest": "unknown", "flags": []}
    widest = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
              else "AVX" if "avx" in flags else "SSE")
    return {"widest": widest, "flags": [flag for flag in INSTRUCTION_SET_FLAGS if flag in flags]}


def gpu_names() -> list[str]:
    """GPU names from nvidia-smi, without importing TensorFlow; [] if none."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return []
    try:
        result = subprocess.run([executable, "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def package_version(*names: str) -> str | None:
    """The installed version of the first of ``names`` that is installed."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def software_versions() -> dict[str, str | None]:
    """Python, TensorFlow, Keras and numpy versions, without importing them."""
    return {
        "python": platform.python_version(),
        "tensorflow": package_version("tensorflow", "tensorflow-cpu", "tf-nightly"),
        "keras": package_version("keras"),
        "numpy": package_version("numpy"),
    }


# Tracked folders that the series itself writes (the rendered report and the
# figures): changes there do not make a checkout's code "dirty".
SERIES_OUTPUTS = ("report", "figures")


def git_state(project_root: str | os.PathLike | None = None,
              exclude: Sequence[str] = ()) -> dict[str, Any]:
    """The checkout's revision and whether tracked files differ from it.

    Args:
        project_root: Defaults to the project root.
        exclude: Paths whose changes do not count as dirty (a command's own
            outputs, e.g. ``report`` and ``figures``).

    Returns:
        {"revision": sha or None, "dirty": bool or None}; None outside git.
    """
    root = Path(project_root) if project_root is not None else config.PROJECT_ROOT

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", *args], cwd=root, capture_output=True,
                                    text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    if revision is None:
        return {"revision": None, "dirty": None}
    pathspec = ["--", "."] + [f":(exclude){path}" for path in exclude] if exclude else []
    status = git("status", "--porcelain", "--untracked-files=no", *pathspec)
    return {"revision": revision, "dirty": bool(status) if status is not None else None}


def onednn_state() -> bool | None:
    """Whether this process's TensorFlow runs its oneDNN kernels.

    None when TensorFlow has not been imported (asking would import it). See
    `helpers/__init__.py` for why the project turns them on.
    """
    import sys

    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TensorFlow build without the probe
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def hardware(gpus: list[str] | None = None) -> dict[str, Any]:
    """CPU model, instruction set, logical cores, GPUs, platform, and oneDNN when TF is loaded."""
    description = {
        "cpu": cpu_model(),
        "instruction_set": instruction_set(),
        "logical_cores": os.cpu_count(),
        "gpus": gpu_names() if gpus is None else gpus,
        "platform": platform.platform(),
    }
    onednn = onednn_state()
    if onednn is not None:
        description["tensorflow_onednn"] = onednn
    return description



def stamp(gpus: list[str] | None = None, versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Git state, software versions and hardware: the one machine stamp.

    Without arguments it imports nothing heavy: versions from package
    metadata, GPUs from nvidia-smi. The run records pass what TensorFlow
    itself reports (:func:`describe_environment`); the report and the summary
    can call it as it is.

    Returns:
        {"git": {"revision", "dirty"}, "versions": {python, tensorflow,
        keras, numpy}, "hardware": :func:`hardware`}; the report's and the
        figures' own outputs do not count as dirty code.
    """
    return {
        # The report rewrites figures/ and report/ while it trains: those
        # outputs do not make the code that trained a run "dirty".
        "git": git_state(exclude=SERIES_OUTPUTS),
        "versions": versions if versions is not None else software_versions(),
        "hardware": hardware(gpus),
    }


def describe_environment() -> dict[str, Any]:
    """The machine stamp of a run record: :func:`stamp` as TensorFlow sees the machine.

    Imports TensorFlow: the GPUs named are the ones TensorFlow can use, and
    the versions the ones imported. Call it from code that trains.

    Used in: helpers.training (every run record).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except (ValueError, RuntimeError):
            details = {}
        gpus.append(details.get("device_name", device.name))
    versions = {"python": platform.python_version(), "tensorflow": tf.__version__,
                "keras": keras.__version__, "numpy": np.__version__}
    return stamp(gpus, versions)
