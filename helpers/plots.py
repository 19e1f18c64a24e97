"""One look for the whole series, and the one way figures are saved.

``save_figure(fig, name)`` writes ``figures/NN_name.png`` and ``.svg`` for the
notebook numbered NN. The number comes from the ``notebook`` argument, else
from the ``CIFAR_LAB_NOTEBOOK`` variable that the report runner sets, else
from ``set_notebook("03_resnet_depth")`` called at the top of a notebook.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# matplotlib falls back to the Agg backend by itself where there is no
# display (CI, the report runner); notebooks keep their inline backend.
import matplotlib.pyplot as plt
import numpy as np

from helpers import config

_current_notebook: str | None = None
_NOTEBOOK_PATTERN = re.compile(r"^(\d{2})(?:_[a-z0-9_]+)?$")
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

# Colour-blind-safe palette shared by every figure; arms of a comparison keep
# the same colour across notebooks where they recur.
PALETTE = "colorblind"


def set_theme() -> None:
    """Applies the series' seaborn theme (white grid, colour-blind palette).

    Used in: every notebook.
    """
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "axes.titleweight": "bold",
        "figure.autolayout": False,
        "svg.fonttype": "none",
    })


def set_notebook(notebook: str) -> None:
    """Declares which notebook is running, e.g. "03_resnet_depth".

    Used in: every notebook (first code cell).
    """
    if not _NOTEBOOK_PATTERN.match(notebook):
        raise ValueError(
            "notebook must start with its two-digit number, like '03_resnet_depth'. "
            f"Received: {notebook!r}"
        )
    global _current_notebook
    _current_notebook = notebook


def _notebook_number(notebook: str | None) -> str:
    candidate = notebook or os.environ.get("CIFAR_LAB_NOTEBOOK") or _current_notebook
    if not candidate:
        raise ValueError(
            "save_figure needs the notebook number: pass notebook='03_resnet_depth' "
            "or call helpers.plots.set_notebook(...) first. Received: notebook=None"
        )
    match = _NOTEBOOK_PATTERN.match(Path(candidate).stem)
    if not match:
        raise ValueError(
            f"notebook must start with its two-digit number. Received: {candidate!r}"
        )
    return match.group(1)


def save_figure(fig, name: str, notebook: str | None = None,
                figures_dir: str | os.PathLike | None = None) -> list[Path]:
    """Writes ``figures/NN_name.png`` and ``figures/NN_name.svg``.

    Args:
        fig: A matplotlib Figure.
        name: Short lowercase name, e.g. "gradient_heatmap".
        notebook: The notebook's name or number; see the module docstring.
        figures_dir: Overrides ``helpers.config.FIGURES_DIR`` (tests).

    Returns:
        The written paths (PNG first).

    Raises:
        ValueError: for a bad name or an unknown notebook number.

    Used in: every notebook.
    """
    if not _NAME_PATTERN.match(name or ""):
        raise ValueError(
            "Figure names are lowercase letters, digits, '_' and '-'. "
            f"Received: {name!r}"
        )
    number = _notebook_number(notebook)
    directory = Path(figures_dir) if figures_dir is not None else config.FIGURES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in (".png", ".svg"):
        path = directory / f"{number}_{name}{suffix}"
        temporary = path.with_name(f".{path.name}.tmp{suffix}")
        # Written beside and renamed, so a crash never leaves half a figure.
        fig.savefig(temporary, format=suffix[1:], metadata=_metadata(suffix))
        os.replace(temporary, path)
        paths.append(path)
    return paths


def _metadata(suffix: str) -> dict:
    # Fixed metadata keeps re-rendered SVGs byte-stable for unchanged plots.
    if suffix == ".svg":
        return {"Date": None}
    return {"Software": "CIFAR Lab"}


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names, per_class: int = 8,
                title: str | None = None):
    """A grid with one row per class and ``per_class`` example images.

    Used in: 00_data
    """
    num_classes = len(class_names)
    fig, axes = plt.subplots(num_classes, per_class,
                             figsize=(per_class * 0.9, num_classes * 0.95))
    axes = np.atleast_2d(axes)
    for class_index in range(num_classes):
        members = np.flatnonzero(labels == class_index)[:per_class]
        for column in range(per_class):
            axis = axes[class_index, column]
            axis.axis("off")
            if column < members.size:
                axis.imshow(images[members[column]], interpolation="nearest")
        axes[class_index, 0].text(-4, 16, class_names[class_index], ha="right",
                                  va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.18)
    return fig
