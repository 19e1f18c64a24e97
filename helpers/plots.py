"""One look for the whole series, and the one way figures are saved.

``save_figure(fig, name)`` writes ``figures/NN_name.png`` and ``.svg`` for the
notebook numbered NN. The number comes from the ``notebook`` argument, else
from the ``CIFAR_LAB_NOTEBOOK`` variable that the report runner sets, else
from ``set_notebook("03_resnet_depth")`` called at the top of a notebook.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

# matplotlib falls back to the Agg backend by itself where there is no
# display (CI, the report runner); notebooks keep their inline backend.
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np

from helpers import atomic, config

_current_notebook: str | None = None
_NOTEBOOK_PATTERN = re.compile(r"^(\d{2})(?:_[a-z0-9_]+)?$")
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

# Colour-blind-safe palette shared by every figure; arms of a comparison keep
# the same colour across notebooks where they recur.
PALETTE = "colorblind"


def set_theme() -> None:
    """Applies the series' seaborn theme (white grid, colour-blind palette).

    Used in: 00_data through 07_cifar100.
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

    Used in: 00_data through 07_cifar100 (first helpers cell).
    """
    if not _NOTEBOOK_PATTERN.match(notebook):
        raise ValueError(
            "notebook must start with its two-digit number, like '03_resnet_depth'. "
            f"Received: {notebook!r}"
        )
    global _current_notebook
    _current_notebook = notebook


def _notebook_number(notebook: str | None) -> str:
    candidate = notebook or os.environ.get(config.NOTEBOOK_ENV) or _current_notebook
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

    Used in: 00_data through 07_cifar100.
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
        # Written beside and renamed (helpers.atomic), so a crash never leaves
        # half a figure. A fixed hash salt makes the SVG's element ids (clip
        # paths, images) the same on every render, so an unchanged plot
        # rewrites the same bytes.
        with atomic.replacing_path(path) as temporary, \
                plt.rc_context({"svg.hashsalt": f"cifar-lab-{number}-{name}"}):
            fig.savefig(temporary, format=suffix[1:], metadata=_metadata(suffix))
        paths.append(path)
    return SavedFigures(paths)


class SavedFigures(list):
    """The paths ``save_figure`` wrote; displays as nothing in a notebook.

    As a cell's last expression a plain list would print its
    ``[PosixPath(...), ...]`` repr above the figure in the report.
    """

    def _ipython_display_(self) -> None:
        pass


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
    # Sizes in inches: square cells with a small gap, the class names in a
    # left margin and the title in a top margin of their own, so the grid
    # fills the figure (equal-aspect images leave no slack to spread).
    cell, gap, label, title_room, edge = 0.8, 0.05, 1.4, (0.45 if title else 0.05), 0.05
    width = label + per_class * cell + (per_class - 1) * gap * cell + edge
    height = title_room + num_classes * cell + (num_classes - 1) * gap * cell + edge
    fig, axes = plt.subplots(num_classes, per_class, figsize=(width, height))
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
    fig.subplots_adjust(wspace=gap, hspace=gap, left=label / width, right=1 - edge / width,
                        top=1 - title_room / height, bottom=edge / height)
    if title:
        fig.suptitle(title, y=1 - 0.08 / height, va="top")
    return fig


# ---------------------------------------------------------------------------
# Figures of the series. Each takes a study's results (helpers.studies
# .run_study: a mapping key -> ArmResult, or a list of ArmResult), draws one
# colour per arm and summarises the arm's seeds as their mean with a band
# spanning them (min..max). Factors come from an arm's key or configuration;
# its label is only displayed. Each returns a Figure for save_figure.
# ---------------------------------------------------------------------------

# Opacity of the band that spans an arm's seeds: light enough that six
# overlapping arms stay readable, dark enough to show in print.
BAND_ALPHA = 0.18
# Two mean curves closer than this fraction of the axis' span everywhere read
# as one line; the later arm is then drawn with markers and its legend says so
# (02's plateau arm whose rule never fired is the constant arm, seed for seed).
COINCIDENT_FRACTION = 0.01
BLOWN_UP_COLOUR = "#c00000"
OPEN_GATE_COLOUR = "black"
DISCARDED_GATE_COLOUR = "0.82"


def _arm_results(results, argument: str = "results") -> list:
    """The ArmResults of a mapping (key -> ArmResult) or of a list of them."""
    if isinstance(results, Mapping):
        arms = list(results.values())
    elif hasattr(results, "completed") and hasattr(results, "arm"):
        arms = [results]
    else:
        arms = list(results)
    for arm in arms:
        if not (hasattr(arm, "completed") and hasattr(arm, "label") and hasattr(arm, "key")):
            raise ValueError(
                f"{argument} must hold helpers.studies.ArmResult values (what run_study returns), as a "
                f"mapping key -> ArmResult or a list. Received: an item of type {type(arm).__name__}"
            )
    if not arms:
        raise ValueError(f"{argument} holds no arms. Received: {results!r}")
    return arms


def _colours() -> list:
    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _padded(rows) -> np.ndarray:
    """[seeds, longest] float matrix; NaN past a row's end and for None or infinities."""
    rows = [[np.nan if value is None else float(value) for value in row] for row in rows]
    matrix = np.full((len(rows), max((len(row) for row in rows), default=0)), np.nan)
    for index, row in enumerate(rows):
        matrix[index, :len(row)] = row
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix


def _spread(matrix: np.ndarray):
    """(mean, min, max) over seeds (axis 0) of the finite values; NaN where none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an epoch no seed reached
        return np.nanmean(matrix, axis=0), np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)


def _seed_curves(records, metric: str):
    """(epochs, values [seeds, epochs]) of a history key, or (None, None) if no seed has it."""
    having = [record for record in records if metric in record.history]
    if not having:
        return None, None
    matrix = _padded([record.curve(metric) for record in having])
    longest = max(having, key=lambda record: len(record.history.get("epoch", [])))
    epochs = np.asarray(longest.history.get("epoch", []), dtype=float)
    if epochs.size != matrix.shape[1]:
        epochs = np.arange(1, matrix.shape[1] + 1, dtype=float)
    return epochs, matrix


def _draw_spread(axis, x, matrix: np.ndarray, colour, **line):
    """The seeds' mean as a line and, with two or more seeds, their min..max band."""
    mean, low, high = _spread(matrix)
    if matrix.shape[0] > 1:
        axis.fill_between(x, low, high, color=colour, alpha=BAND_ALPHA, lw=0)
    axis.plot(x, mean, color=colour, **line)
    return mean


def _diverged(arm) -> list:
    return [record for record in arm.completed if record.status == "diverged"]


def _arm_legend(arm, note: str = "") -> str:
    """"label (n = 2)", "label (n = 2; 1 diverged)", "label (n = 2; same as constant)"."""
    diverged = len(_diverged(arm))
    notes = [f"n = {arm.n}"] + ([f"{diverged} diverged"] if diverged else []) + ([note] if note else [])
    return f"{arm.label} ({'; '.join(notes)})"


def _percent(metric: str) -> float:
    """Accuracies are drawn in percent, everything else as recorded."""
    return 100.0 if "accuracy" in metric else 1.0


def _epochs(record) -> np.ndarray:
    return np.asarray(record.history.get("epoch", []), dtype=float)


def _coincide(a, b, span: float, log: bool) -> bool:
    """True when two curves are as long and never further apart than a sliver of the axis."""
    if a is None or b is None:
        return a is None and b is None
    if len(a) != len(b) or not len(a):
        return False
    if log:
        a, b = np.log10(np.where(a > 0, a, np.nan)), np.log10(np.where(b > 0, b, np.nan))
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any() or (np.isfinite(a) != np.isfinite(b)).any():
        return False
    return bool(np.max(np.abs(a[both] - b[both])) <= COINCIDENT_FRACTION * max(span, 1e-12))


def training_curves(results, metric: str = "accuracy", learning_rate_panel: bool = True,
                    title: str | None = None):
    """Training (solid) and validation (dashed) curves per arm, the rate drawn under them.

    Each curve is the mean over the arm's seeds, with a band spanning them
    (min..max); the legend gives n. A diverged seed is marked with a cross at
    its divergence epoch, and the mean after it is that of the other seeds.
    The learning-rate panel shows each arm's first seed. An arm whose curves
    lie on an earlier arm's is drawn on top with hollow markers and its
    legend says "(same as X)" (same rate too) or "(on top of X)".
    Accuracies are drawn in percent; a loss on a log axis.

    Args:
        results: Mapping key -> ArmResult, or a list of ArmResult.
        metric: A history key ("accuracy", "loss", "top5_accuracy"); its
            "val_" twin is drawn dashed where recorded.

    Raises:
        ValueError: when no arm recorded ``metric``.

    Used in: 01_vgg_gradients, 02_lr_schedules, 03_resnet_depth, 04_dropout, 05_cyclical_lr, 07_cifar100
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    arms = [arm for arm in _arm_results(results) if arm.completed]
    scale = _percent(metric)
    log = "loss" in metric
    curves = []
    for arm in arms:
        epochs, train = _seed_curves(arm.completed, metric)
        val_epochs, val = _seed_curves(arm.completed, f"val_{metric}")
        if train is None and val is None:
            continue
        first = arm.completed[0]
        rate = np.asarray(first.curve("learning_rate")) if "learning_rate" in first.history else None
        if rate is not None:
            # A warm-up starts at rate 0, which a log axis cannot show: left out, not drawn as a cliff.
            rate = np.where(rate > 0, rate, np.nan)
        curve = {"arm": arm, "epochs": epochs, "val_epochs": val_epochs, "rate": rate,
                 "rate_epochs": _epochs(first), "seed": first.config.seed}
        for part, matrix in (("train", train), ("val", val)):
            curve[part] = None if matrix is None else matrix * scale
            curve[f"{part}_mean"] = None if matrix is None else _spread(curve[part])[0]
        curves.append(curve)
    if not curves:
        raise ValueError(f"No arm recorded {metric!r} in its history. Received: "
                         f"{[arm.label for arm in arms]}")
    means = [curve[f"{part}_mean"] for curve in curves for part in ("train", "val") if curve[part] is not None]
    finite = np.concatenate([mean[np.isfinite(mean)] for mean in means]) if means else np.array([])
    if log:
        finite = np.log10(finite[finite > 0])
    span = float(np.ptp(finite)) if finite.size else 1.0

    rows = 2 if learning_rate_panel else 1
    fig, axes = plt.subplots(rows, 1, figsize=(9.5, 5.8 if rows == 2 else 4.2), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.3][:rows]})
    axis = axes[0, 0]
    colours = _colours()
    handles = []
    any_diverged = False
    for index, curve in enumerate(curves):
        colour = colours[index % len(colours)]
        arm = curve["arm"]
        twin = next((earlier for earlier in curves[:index]
                     if all(_coincide(curve[part], earlier[part], span, log) for part in ("train_mean", "val_mean"))),
                    None)
        same_rate = (twin is not None and curve["rate"] is not None and twin["rate"] is not None
                     and curve["rate"].shape == twin["rate"].shape
                     and np.allclose(curve["rate"], twin["rate"], rtol=1e-9, equal_nan=True))
        # Drawn on top of its twin, thinner and with hollow markers: the twin
        # shows on both sides of it, and neither hides the other.
        marks = {"marker": "o", "ms": 5, "mfc": "none", "mew": 1.3, "zorder": 3} if twin is not None else {}
        if twin is None and len(curve["epochs"]) == 1:
            marks = {"marker": "o", "ms": 6}  # a one-epoch arm is a point, which a line alone would not show
        width = 0.9 if twin is not None else 1.8
        if curve["train"] is not None:
            _draw_spread(axis, curve["epochs"], curve["train"], colour, lw=width, **marks)
        if curve["val"] is not None:
            _draw_spread(axis, curve["val_epochs"], curve["val"], colour, lw=width, ls="--", **marks)
        for record in _diverged(arm):
            any_diverged = True
            _mark_divergence(axis, record, metric, scale, colour)
        note = "" if twin is None else f"{'same as' if same_rate else 'on top of'} {twin['arm'].label}"
        handles.append(Line2D([], [], color=colour, lw=width, label=_arm_legend(arm, note),
                              **{k: v for k, v in marks.items() if k != "zorder"}))
        if learning_rate_panel and curve["rate"] is not None:
            axes[1, 0].plot(curve["rate_epochs"], curve["rate"], color=colour,
                            **({"lw": 0.9, **marks} if same_rate
                               else {"lw": 1.5, **({"marker": "o", "ms": 4} if len(curve["rate"]) == 1 else {})}))
    axis.set_ylabel(f"{metric.replace('_', ' ')}{' (%)' if scale != 1 else ''}")
    if log:
        axis.set_yscale("log")
    key = [Line2D([], [], color="0.35", lw=1.8, label="training"),
           Line2D([], [], color="0.35", lw=1.8, ls="--", label="validation"),
           Patch(color="0.35", alpha=BAND_ALPHA + 0.1, lw=0, label="band: seeds' min to max")]
    if any_diverged:
        key.append(Line2D([], [], color="0.35", ls="none", marker="x", ms=8, mew=2, label="a seed diverged"))
    # One legend, outside the axes: the arms, a gap, then what the line styles mean.
    gap = Line2D([], [], ls="none", label=" ")
    axis.legend(handles=handles + [gap] + key, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                title="arm (n = seeds)", title_fontsize=8)
    if title:
        axis.set_title(title)
    if learning_rate_panel:
        seeds = sorted({curve["seed"] for curve in curves})
        axes[1, 0].set_ylabel("learning rate")
        axes[1, 0].set_yscale("log")
        axes[1, 0].set_title(f"learning rate of each arm's first seed ({', '.join(map(str, seeds))})", fontsize=9,
                             fontweight="normal", loc="left")
    _epoch_axis(axes[-1, 0])
    fig.tight_layout()
    return fig


def _mark_divergence(axis, record, metric: str, scale: float, colour) -> None:
    """A cross at (divergence epoch, the seed's last finite value); at the axis' foot if none."""
    epoch = record.diverged_epoch or record.epochs_completed
    if not epoch:
        return
    for key in (f"val_{metric}", metric):
        if key in record.history:
            values = np.asarray(record.curve(key), dtype=float)[:int(epoch)]
            values = values[np.isfinite(values)]
            if values.size:
                axis.plot([epoch], [values[-1] * scale], ls="none", marker="x", color=colour, ms=9, mew=2,
                          zorder=4)
                return
    axis.plot([epoch], [0.0], ls="none", marker="x", color=colour, ms=9, mew=2, clip_on=False, zorder=4,
              transform=axis.get_xaxis_transform())


def _layers_by_epochs(record, key: str, epochs_key: str, what: str, max_rows: int | None = None):
    """(row names, matrix [rows, epochs], epoch labels) of a per-layer diagnostic."""
    series = record.diagnostics.get(key, {})
    if not series:
        raise ValueError(f"Run {record.run_id} recorded no {what}. Received: {list(record.diagnostics)}")
    names = list(series)[:max_rows]
    matrix = np.array([[np.nan if v is None else v for v in series[name]] for name in names], dtype=float)
    epochs = record.diagnostics.get(epochs_key) or list(range(matrix.shape[1]))
    return names, matrix, epochs


def _epoch_axis(axis) -> None:
    """Labels an x axis of whole epochs, with integer ticks only."""
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _heatmap_axes(names, epochs, row_height: float):
    fig, axis = plt.subplots(figsize=(min(2 + 0.45 * len(epochs), 9), row_height * len(names) + 1.6))
    axis.set_yticks(range(len(names)), names, fontsize=7)
    axis.set_xticks(range(len(epochs)), [str(e) for e in epochs], fontsize=7)
    axis.set_xlabel("epoch (0 = before training)")
    axis.grid(False)  # the style's grid lines would cut every cell in two
    return fig, axis


def _first_record(arm, argument: str):
    if not (hasattr(arm, "completed") and hasattr(arm, "label")):
        raise ValueError(f"{argument} must be one helpers.studies.ArmResult. Received: {type(arm).__name__}")
    if not arm.completed:
        raise ValueError(f"Arm {arm.label!r} has no finished run to draw. Received: records {arm.records!r}")
    return arm.completed[0]


def gradient_heatmap(arm_result, title: str | None = None, max_layers: int = 60):
    """Per-layer gradient L2 norms over epochs of the arm's first seed: layers by epochs, log colour.

    Rows are weight layers from input (top) to output (bottom); column 0 is
    the measurement before the first step. A heatmap cannot average seeds
    honestly (their norms differ by orders of magnitude in places), so it
    shows one run and its title names the seed.

    Raises:
        ValueError: when the run recorded no gradient norms.

    Used in: 01_vgg_gradients
    """
    from matplotlib.colors import LogNorm

    record = _first_record(arm_result, "arm_result")
    names, matrix, epochs = _layers_by_epochs(record, "gradient_norms", "gradient_norm_epochs",
                                              "gradient norms", max_layers)
    matrix = np.where(matrix > 0, matrix, np.nan)
    finite = matrix[np.isfinite(matrix)]
    vmin = max(finite.min(), 1e-12) if finite.size else 1e-8
    vmax = finite.max() if finite.size else 1.0
    fig, axis = _heatmap_axes(names, epochs, 0.22)
    image = axis.imshow(matrix, aspect="auto", cmap="viridis",
                        norm=LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10)))
    fig.colorbar(image, ax=axis, label="gradient L2 norm (log)")
    axis.set_title(f"{title or arm_result.label} (seed {record.config.seed})")
    fig.tight_layout()
    return fig


def first_step_gradients(results, title: str = "Gradient norm per layer before the first step"):
    """Per-layer gradient norm at initialisation, input layer on the left.

    One line per arm: the mean over its seeds, with a band spanning them.

    Raises:
        ValueError: naming an arm none of whose runs recorded gradient norms.

    Used in: 01_vgg_gradients
    """
    from matplotlib.ticker import FixedLocator

    arms = _arm_results(results)
    fig, axis = plt.subplots(figsize=(9, 4.4))
    colours = _colours()
    layer_names = []
    for index, arm in enumerate(arms):
        recorded = [record.diagnostics["gradient_norms"] for record in arm.completed
                    if record.diagnostics.get("gradient_norms")]
        if not recorded:
            plt.close(fig)
            raise ValueError(f"Arm {arm.label!r}: no run recorded gradient norms (record_gradient_norms=True "
                             f"in its configuration). Received: {arm.n} runs")
        names = list(recorded[0])
        layer_names = names if len(names) > len(layer_names) else layer_names
        # Entry 0 of each layer's series is the norm before the first step; 0 cannot go on a log axis.
        matrix = _padded([[(norms.get(name) or [None])[0] for name in names] for norms in recorded])
        matrix[matrix <= 0] = np.nan
        _draw_spread(axis, np.arange(len(names)), matrix, colours[index % len(colours)], marker="o", ms=3,
                     lw=1.5, label=_arm_legend(arm))
    axis.set_yscale("log")
    if len(layer_names) <= 40:
        axis.xaxis.set_major_locator(FixedLocator(range(len(layer_names))))
        axis.set_xticklabels(layer_names, rotation=60, ha="right", fontsize=7)
    axis.set_xlabel("weight layer (input -> output)")
    axis.set_ylabel("gradient L2 norm (log)")
    axis.set_title(title)
    axis.legend(fontsize=8, title="mean over seeds; band: min to max", title_fontsize=8)
    fig.tight_layout()
    return fig


def _status(arm) -> str:
    """"2 completed", "1 completed, 1 diverged (epoch 3)", "1 not in the cache"."""
    parts = []
    completed = [record for record in arm.completed if record.status == "completed"]
    if completed:
        parts.append(f"{len(completed)} completed")
    diverged = _diverged(arm)
    if diverged:
        epochs = [str(record.diverged_epoch) for record in diverged if record.diverged_epoch]
        where = f" (epoch{'s' if len(epochs) > 1 else ''} {', '.join(epochs)})" if epochs else ""
        parts.append(f"{len(diverged)} diverged{where}")
    for status in sorted({record.status for record in arm.completed} - {"completed", "diverged"}):
        parts.append(f"{sum(record.status == status for record in arm.completed)} {status}")
    missing = sum(record is None for record in arm.records)
    if missing:
        parts.append(f"{missing} not in the cache")
    return ", ".join(parts) or "no runs"


def _seconds_per_epoch(arm) -> float:
    """Mean over seeds of each run's mean epoch time (training and validation), in seconds."""
    per_run = [float(np.nanmean(record.curve("epoch_seconds"))) for record in arm.completed
               if record.history.get("epoch_seconds")]
    return round(float(np.mean(per_run)), 2) if per_run else math.nan


def results_table(results):
    """One row per arm: seeds, their status, accuracies as mean +- sd, size, time.

    The index is the arm's label (named "arm"), so the table shows no 0..N
    column. Accuracies are in percent, "mean +- sd (n = k)" over the seeds
    with a finite value (helpers.intervals.format_mean_spread); "n/a" where
    none has. "test top-5 %" appears when any run measured it. "params" is
    the first seed's parameter count; "s/epoch" the mean over seeds of the
    mean epoch time (training and validation) on the machine that ran it.

    Used in: 01_vgg_gradients through 07_cifar100
    """
    import pandas as pd

    from helpers.intervals import format_mean_spread

    arms = _arm_results(results)
    top5 = any("top5_accuracy" in record.test for arm in arms for record in arm.completed)
    rows = []
    for arm in arms:
        row = {
            "n": arm.n,
            "status": _status(arm),
            "test accuracy %": format_mean_spread(arm.test_values("accuracy")),
            "best val accuracy %": format_mean_spread(arm.best_values("val_accuracy")),
        }
        if top5:
            row["test top-5 %"] = format_mean_spread(arm.test_values("top5_accuracy"))
        counts = [record.parameter_count for record in arm.completed if record.parameter_count is not None]
        row["params"] = counts[0] if counts else None
        row["s/epoch"] = _seconds_per_epoch(arm)
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index([arm.label for arm in arms], name="arm"))
    table["params"] = table["params"].astype("Int64")
    return table


def blown_up_reason(arm_result) -> str | None:
    """Why an arm's result is not a result, or None when every seed ended sound.

    An arm has blown up when any seed did, by the one rule of
    :func:`helpers.comparisons.blow_up` (diverged, or a final validation loss
    not finite or far above the training and chance-level losses).

    Returns:
        One line per seed that blew up, e.g. "seed 1: diverged (epoch 3)".

    Used in: 03_resnet_depth and 06_sparse_gates (through metric_against)
    """
    from helpers.comparisons import blow_up

    reasons = [f"seed {record.config.seed}: {reason}" for record in arm_result.completed
               if (reason := blow_up(record))]
    return "\n".join(reasons) or None


def _metric_values(arm, metric: str) -> list[float]:
    """Per seed: "test_X" is the test metric X; any other name a history key, best over epochs."""
    if metric.startswith("test_"):
        return arm.test_values(metric[len("test_"):])
    return arm.best_values(metric)


def metric_against(results, x_values, x_label: str, metric: str = "test_accuracy",
                   groups=None, title: str | None = None, log_x: bool = False):
    """An arm's result against a property of it (depth, epsilon, seconds per epoch).

    Each point is the mean over the arm's seeds with an error bar spanning
    them (min..max). ``metric`` "test_accuracy" (the default) is the final
    test accuracy; "test_X" the test metric X; any other name a history key,
    best over epochs. An arm that blew up (:func:`blown_up_reason`) is drawn
    as a hollow red circle annotated "blew up", left out of its line, so it
    is never read as a result. Accuracies are drawn in percent.

    Args:
        results: ArmResults (a list, or a mapping whose values are taken in order).
        x_values: One x per arm, in the same order.
        groups: One group name per arm: one line per group (default: one line).

    Raises:
        ValueError: when x_values or groups do not match the arms one to one.

    Used in: 03_resnet_depth, 06_sparse_gates
    """
    from matplotlib.lines import Line2D

    arms = _arm_results(results)
    x_values = list(x_values)
    groups = list(groups) if groups is not None else [None] * len(arms)
    if len(x_values) != len(arms) or len(groups) != len(arms):
        raise ValueError(f"metric_against needs one x value (and one group, if given) per arm. Received: "
                         f"{len(arms)} arms, {len(x_values)} x values, {len(groups)} groups")
    scale = _percent(metric)
    fig, axis = plt.subplots(figsize=(7, 4.4))
    colours = _colours()
    handles = []
    blown = False
    for group_index, group in enumerate(dict.fromkeys(groups)):
        colour = colours[group_index % len(colours)]
        members = sorted(((x, arm) for x, arm, g in zip(x_values, arms, groups) if g == group),
                         key=lambda pair: pair[0])
        line_x, line_y = [], []
        for x, arm in members:
            values = np.asarray(_metric_values(arm, metric), dtype=float) * scale
            values = values[np.isfinite(values)]
            reason = blown_up_reason(arm)
            if reason:
                blown = True
                if values.size:
                    where = {"xy": (x, float(values.mean()))}
                    axis.plot([x], [values.mean()], ls="none", marker="o", ms=11, mfc="none",
                              mec=BLOWN_UP_COLOUR, mew=2, zorder=4)
                else:  # no finite value at all: drawn at the axis' foot
                    where = {"xy": (x, 0.0), "xycoords": axis.get_xaxis_transform()}
                    axis.plot([x], [0.0], ls="none", marker="o", ms=11, mfc="none", mec=BLOWN_UP_COLOUR,
                              mew=2, zorder=4, clip_on=False, transform=axis.get_xaxis_transform())
                # Written towards the middle of the axis, so it stays inside the frame.
                right_half = _in_right_half(x, x_values, log_x)
                axis.annotate(f"blew up\n{reason}", **where, xytext=(-8 if right_half else 8, 6),
                              textcoords="offset points", color=BLOWN_UP_COLOUR, fontsize=8, va="bottom",
                              ha="right" if right_half else "left")
                continue
            if not values.size:
                continue
            mean = float(values.mean())
            axis.errorbar([x], [mean], yerr=[[mean - values.min()], [values.max() - mean]], fmt="o",
                          color=colour, ms=6, capsize=4, elinewidth=1.5, zorder=3)
            line_x.append(x)
            line_y.append(mean)
        axis.plot(line_x, line_y, color=colour, lw=1.5)
        counts = sorted({arm.n for _, arm in members})
        n = f"n = {counts[0]}" if len(counts) == 1 else f"n = {counts[0]}-{counts[-1]}"
        name = "mean over seeds" if group is None else str(group)
        handles.append(Line2D([], [], color=colour, marker="o", lw=1.5, label=f"{name} ({n}); bar: min to max"))
    if blown:
        handles.append(Line2D([], [], ls="none", marker="o", ms=9, mfc="none", mec=BLOWN_UP_COLOUR, mew=2,
                              label="blew up: not a result"))
    if log_x:
        axis.set_xscale("log")
    numeric = [x for x in x_values if isinstance(x, (int, float)) and math.isfinite(x)]
    if len(numeric) == len(x_values) and len(set(numeric)) <= 12:
        axis.set_xticks(sorted(set(numeric)), [f"{x:.3g}" for x in sorted(set(numeric))])
        axis.minorticks_off()
    axis.set_xlabel(x_label)
    what = (f"final test {metric[len('test_'):].replace('_', ' ')}" if metric.startswith("test_")
            else f"best {metric.replace('_', ' ')}")
    axis.set_ylabel(f"{what}{' (%)' if scale != 1 else ''}")
    axis.legend(handles=handles, fontsize=8, loc="best")
    axis.margins(x=0.08, y=0.12)
    if title:
        axis.set_title(title)
    fig.tight_layout()
    return fig


def _in_right_half(x, x_values, log_x: bool) -> bool:
    numeric = [value for value in x_values if isinstance(value, (int, float)) and math.isfinite(value)
               and (value > 0 or not log_x)]
    if not numeric or not isinstance(x, (int, float)) or (log_x and x <= 0):
        return False
    if log_x:
        return math.log(x) > (math.log(min(numeric)) + math.log(max(numeric))) / 2
    return x > (min(numeric) + max(numeric)) / 2


def _family_and_depth(arm) -> tuple[str, int]:
    """("plain" | "residual", depth) from the arm's key, else from its configured model."""
    key = arm.key
    if len(key) == 2 and key[0] in ("plain", "residual") and isinstance(key[1], int):
        return key[0], key[1]
    match = re.fullmatch(r"(plain|resnet)(\d+)", arm.config.model)
    if not match:
        raise ValueError(f"degradation compares plain and residual nets: arm {arm.label!r} has neither a key "
                         f"('plain' | 'residual', depth) nor a model named plainN or resnetN. "
                         f"Received: key {key!r}, model {arm.config.model!r}")
    return ("plain" if match.group(1) == "plain" else "residual"), int(match.group(2))


def degradation(results, title: str = "Plain vs residual (He et al., Figure 1/6)"):
    """Training loss and validation error per epoch: plain dashed, residual solid.

    One colour per depth; each line is the mean over the arm's seeds, with a
    band spanning them. Family and depth come from the arm's key
    (("plain", 44), ("residual", 20)) or its configured model. The loss panel
    has a linear axis and is cut above the curves after the first epoch when
    a first epoch went over three times higher (a plain deep net blowing
    up), so it cannot flatten the rest; mean values above the cut are listed
    in the panel, read from the records.

    Used in: 03_resnet_depth
    """
    arms = [arm for arm in _arm_results(results) if arm.completed]
    factors = [_family_and_depth(arm) for arm in arms]
    fig, (loss_axis, error_axis) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    colours = _colours()
    depths = sorted({depth for _, depth in factors})
    losses = [_seed_curves(arm.completed, "loss") for arm in arms]
    mean_losses = [None if matrix is None else _spread(matrix)[0] for _, matrix in losses]
    later = np.concatenate([mean[1:][np.isfinite(mean[1:])] for mean in mean_losses if mean is not None] or [[]])
    firsts = [mean[0] for mean in mean_losses if mean is not None and mean.size and np.isfinite(mean[0])]
    top = 1.15 * later.max() if later.size and firsts and max(firsts) > 3 * later.max() else None
    clipped = []
    for arm, (family, depth), (epochs, loss), mean in zip(arms, factors, losses, mean_losses):
        colour = colours[depths.index(depth) % len(colours)]
        style = "--" if family == "plain" else "-"
        label = _arm_legend(arm)
        if loss is not None:
            _draw_spread(loss_axis, epochs, loss, colour, ls=style, lw=1.8, label=label)
            if top is not None:
                clipped.extend(f"{arm.label} epoch {int(e)}: {v:.3g}" for e, v in zip(epochs, mean)
                               if np.isfinite(v) and v > top)
        val_epochs, accuracy = _seed_curves(arm.completed, "val_accuracy")
        if accuracy is not None:
            _draw_spread(error_axis, val_epochs, 100 * (1 - accuracy), colour, ls=style, lw=1.8, label=label)
    if top is not None:
        bottom = later.min()
        loss_axis.set_ylim(bottom - 0.05 * (top - bottom), top)
    if clipped:
        loss_axis.text(0.98, 0.98, "above the axis (mean):\n" + "\n".join(clipped), transform=loss_axis.transAxes,
                       ha="right", va="top", fontsize=7, color="0.3")
    loss_axis.set_ylabel("training loss")
    loss_axis.set_title("Training loss")
    error_axis.set_ylabel("validation error (%)")
    error_axis.set_title("Validation error")
    error_axis.legend(fontsize=8, title="mean over seeds; band: min to max", title_fontsize=7)
    for axis in (loss_axis, error_axis):
        _epoch_axis(axis)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def generalisation_gap(results, title: str = "Generalisation gap (train - validation accuracy)"):
    """Training minus validation accuracy per epoch, in points: mean over seeds with their band.

    Used in: 04_dropout
    """
    fig, axis = plt.subplots(figsize=(9.5, 4.2))
    colours = _colours()
    for index, arm in enumerate(_arm_results(results)):
        records = [record for record in arm.completed
                   if "accuracy" in record.history and "val_accuracy" in record.history]
        if not records:
            continue
        epochs, train = _seed_curves(records, "accuracy")
        _, val = _seed_curves(records, "val_accuracy")
        width = min(train.shape[1], val.shape[1])
        _draw_spread(axis, epochs[:width], 100 * (train[:, :width] - val[:, :width]),
                     colours[index % len(colours)], lw=1.8, label=_arm_legend(arm))
    axis.axhline(0, color="grey", lw=0.8)
    _epoch_axis(axis)
    axis.set_ylabel("train - validation accuracy (points)")
    axis.set_title(title)
    axis.legend(fontsize=8, title="mean over seeds; band: min to max", title_fontsize=7, loc="upper left",
                bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def training_modes(results, title: str = "Last epoch: training accuracy two ways, and validation"):
    """Per arm, at the last epoch: the running training accuracy (what ``fit``
    reports: a mean over the epoch in training mode, dropout on, augmented
    images), the same net on training images in inference mode
    (``train_eval_accuracy``, where recorded) and the validation accuracy.
    Bars: mean over seeds; dots: each seed.

    Used in: 04_dropout
    """
    series = (("accuracy", "training, running (training mode)"),
              ("train_eval_accuracy", "training images, inference mode"),
              ("val_accuracy", "validation"))
    arms = [arm for arm in _arm_results(results) if arm.completed]
    fig, axis = plt.subplots(figsize=(9.5, 4.2))
    colours = _colours()
    width = 0.8 / len(series)
    shown = set()
    for position, arm in enumerate(arms):
        for offset, (key, name) in enumerate(series):
            values = [100 * record.final(key) for record in arm.completed
                      if key in record.history and record.epochs_completed]
            values = [value for value in values if np.isfinite(value)]
            if not values:
                continue
            x = position + (offset - (len(series) - 1) / 2) * width
            axis.bar(x, float(np.mean(values)), width=width * 0.92, color=colours[offset % len(colours)],
                     label=None if key in shown else name)
            axis.scatter([x] * len(values), values, s=10, color="black", zorder=3)
            shown.add(key)
    axis.set_xticks(range(len(arms)))
    import textwrap

    axis.set_xticklabels(["\n".join(textwrap.wrap(arm.label, 18)) + f"\n(n = {arm.n})" for arm in arms], fontsize=8)
    axis.set_ylabel("accuracy (%)")
    axis.set_title(title)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def lr_range_test(result, chosen_base: float | None = None, chosen_max: float | None = None,
                  chosen_high: float | None = None):
    """Smoothed loss against the learning rate (log x), chosen rates marked.

    Used in: 05_cyclical_lr
    """
    fig, axis = plt.subplots(figsize=(6.5, 4))
    axis.plot(result.learning_rates, result.losses, color="0.75", lw=1, label="loss")
    axis.plot(result.learning_rates, result.smoothed_losses, lw=2, label="smoothed loss")
    axis.set_xscale("log")
    for value, name, style in ((chosen_base, "base LR", ":"), (chosen_max, "max LR", "--"),
                               (chosen_high, "high LR", "-.")):
        if value:
            axis.axvline(value, color="C3", ls=style, label=f"{name} = {value:.3g}")
    finite = np.asarray(result.smoothed_losses, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        # From below, every recorded loss shows (the raw loss falls further
        # than its moving average); from above, the smoothed curve sets the
        # limit, so the raw loss's spikes as it diverges do not flatten it.
        raw = np.asarray(result.losses, dtype=float)
        raw = raw[np.isfinite(raw)]
        lowest = min(finite.min(), raw.min()) if raw.size else finite.min()
        axis.set_ylim(lowest * 0.95, min(finite.max(), finite[0] * 2.5) * 1.05)
    axis.set_xlabel("learning rate (log)")
    axis.set_ylabel("training loss")
    axis.set_title("LR range test")
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _gate_series(record, key: str):
    """(epochs, counts) of a per-epoch count in a record's gate diagnostics, or None."""
    counts = record.diagnostics.get(key)
    if not counts:
        return None
    epochs = list(record.diagnostics.get("gate_epochs") or [])
    epochs = epochs[-len(counts):] if len(epochs) >= len(counts) else list(range(len(counts)))
    return epochs, counts


def discarded_blocks(results, title: str = "Blocks discarded: inference (solid), training mode (dashed)"):
    """Number of gated-off residual blocks per epoch, one colour per arm.

    Solid: at inference (moving statistics), as the trained net is used.
    Dashed, where recorded: the same probe batch in training mode, as the
    gates act during ``fit``. Each line is the mean over the arm's seeds,
    with a band spanning them. An arm whose counts equal an earlier arm's
    (two that discard nothing) is drawn over it, thinner with hollow
    markers, and its legend says "same as X".

    Raises:
        ValueError: when no arm recorded discarded blocks.

    Used in: 06_sparse_gates
    """
    arms = _arm_results(results)
    fig, axis = plt.subplots(figsize=(9, 4.2))
    colours = _colours()
    drawn = []  # (label, mean counts) of the arms drawn so far
    for arm in arms:
        pairs = [(_gate_series(record, "discarded_blocks"), _gate_series(record, "discarded_blocks_training"))
                 for record in arm.completed]
        pairs = [(inference, training) for inference, training in pairs if inference]
        if not pairs:
            continue
        colour = colours[len(drawn) % len(colours)]
        epochs = max((inference[0] for inference, _ in pairs), key=len)
        counts = _padded([inference[1] for inference, _ in pairs])
        mean = _spread(counts)[0]
        # Counts are whole blocks: a span of 1 makes "coincide" mean "equal".
        twin = next((label for label, other in drawn if _coincide(mean, other, 1.0, log=False)), None)
        style = ({"marker": "o", "ms": 8, "mfc": "none", "mew": 1.3, "lw": 0.9, "zorder": 3} if twin
                 else {"marker": "o", "ms": 4, "lw": 1.6})
        _draw_spread(axis, epochs, counts, colour, label=_arm_legend(arm, f"same as {twin}" if twin else ""),
                     **style)
        training = [training[1] for inference, training in pairs
                    if training and len(training[1]) == len(inference[1])]
        if training:
            matrix = _padded(training)
            axis.plot(epochs[:matrix.shape[1]], _spread(matrix)[0], color=colour, marker="x", ls="--",
                      lw=0.9 if twin else 1.2, ms=8 if twin else 6)
        drawn.append((arm.label, mean))
    if not drawn:
        plt.close(fig)
        raise ValueError("No arm's runs recorded discarded blocks (diagnostics['discarded_blocks'], kept for "
                         f"gated models). Received: {[arm.label for arm in arms]}")
    _epoch_axis(axis)
    axis.set_ylabel("discarded blocks")
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title)
    axis.legend(fontsize=8, title="mean over seeds; band: min to max", title_fontsize=7, loc="upper left",
                bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def gate_responses(results, title: str = "Largest residual response per block against epsilon"):
    """Each block's largest ``|F|`` at the start and the end, with epsilon drawn.

    A gate discards its block exactly when this response is at most epsilon,
    so the distance between an arm's markers and its dashed epsilon line is
    how far each block is from being discarded. One colour per arm and one
    marker per seed: hollow before training (dotted line through their
    mean), filled after the last epoch (solid line through their mean).
    Log y axis.

    Raises:
        ValueError: when no arm's runs recorded gate responses.

    Used in: 06_sparse_gates
    """
    arms = _arm_results(results)
    fig, axis = plt.subplots(figsize=(9.5, 4.4))
    colours = _colours()
    drawn = 0
    most_blocks = 0
    for arm in arms:
        recorded = [record.diagnostics["gate_responses"] for record in arm.completed
                    if record.diagnostics.get("gate_responses")]
        if not recorded:
            continue
        # Colours in drawing order, as in discarded_blocks, so an arm keeps its colour.
        colour = colours[drawn % len(colours)]
        names = list(recorded[0])
        positions = np.arange(1, len(names) + 1)
        most_blocks = max(most_blocks, len(names))
        first = _padded([[(responses.get(name) or [None])[0] for name in names] for responses in recorded])
        last = _padded([[(responses.get(name) or [None])[-1] for name in names] for responses in recorded])
        axis.plot(positions, _spread(first)[0], color=colour, lw=0.8, ls=":")
        axis.plot(positions, _spread(last)[0], color=colour, lw=1.5, label=_arm_legend(arm))
        for row in first:
            axis.plot(positions, row, ls="none", marker="o", ms=4, mfc="none", mec=colour)
        for row in last:
            axis.plot(positions, row, ls="none", marker="o", ms=4, color=colour)
        epsilon = gate_epsilon(arm)
        if epsilon:
            axis.axhline(epsilon, color=colour, ls="--", lw=1)
        drawn += 1
    if not drawn:
        plt.close(fig)
        raise ValueError("None of the runs recorded gate responses (diagnostics['gate_responses']). They are "
                         "recorded for models with epsilon > 0 by this version of the engine; a run cached by an "
                         "older version lacks them: delete its folder under runs/ to train it again. "
                         f"Received: {[arm.label for arm in arms]}")
    axis.set_yscale("log")
    axis.set_xlim(0.5, most_blocks + 0.5)
    axis.set_xlabel("gated block (input to output)")
    axis.set_ylabel("largest |F| on the probe batch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title)
    axis.legend(fontsize=8, title="one marker per seed:\nafter training (filled)\nbefore (hollow)\n"
                "epsilon (dashed)", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def gate_epsilon(run) -> float:
    """The gate threshold a run (or arm) was built with (the builder's default if not set).

    Used in: 06_sparse_gates (through gate_responses)
    """
    epsilon = run.config.model_options.get("epsilon")
    if epsilon is None and run.config.model.startswith("eps_"):
        from helpers.models import DEFAULT_EPSILON

        epsilon = DEFAULT_EPSILON
    return float(epsilon or 0.0)


def _gate_variation(matrix: np.ndarray) -> tuple[int, int]:
    """(gates that change state over the epochs, cells in the minority state); (0, 0) = nothing varies."""
    states = np.where(np.isfinite(matrix), matrix >= 0.5, np.nan)
    changing = sum(1 for row in states if len(set(row[np.isfinite(row)].tolist())) > 1)
    open_cells = int(np.nansum(states))
    closed_cells = int(np.isfinite(states).sum()) - open_cells
    return changing, min(open_cells, closed_cells)


def gate_map(results, title: str | None = None):
    """Each block's gate (black open, grey discarded) over epochs, for the arm whose gates vary most.

    The map is drawn from each arm's first seed. The arm chosen is the one
    with the most gates that change state over the epochs, then the most
    cells in the minority state (some open, some closed); the earlier arm on
    a tie. A map in which every gate is open, or every one closed, at every
    epoch is one colour and says nothing a sentence cannot.

    Returns:
        The Figure, or None (and nothing drawn) when no arm has a gate that
        varies: the notebook then saves no figure.

    Raises:
        ValueError: when no arm's first seed recorded gates at all.

    Used in: 06_sparse_gates
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    arms = _arm_results(results)
    best = None
    for index, arm in enumerate(arms):
        if not arm.completed or not arm.completed[0].diagnostics.get("gates"):
            continue
        record = arm.completed[0]
        names, matrix, epochs = _layers_by_epochs(record, "gates", "gate_epochs", "gates")
        score = _gate_variation(matrix)
        if best is None or score > best[0]:
            best = (score, arm, record, names, matrix, epochs)
    if best is None:
        raise ValueError("No arm's first seed recorded gates (diagnostics['gates'], kept for gated models). "
                         f"Received: {[arm.label for arm in arms]}")
    score, arm, record, names, matrix, epochs = best
    if score == (0, 0):
        return None
    fig, axis = _heatmap_axes(names, epochs, 0.25)
    # Discarded in light grey, not white, so a discarded cell never reads as an empty one.
    states = ListedColormap([DISCARDED_GATE_COLOUR, OPEN_GATE_COLOUR]).with_extremes(bad="white")
    axis.imshow(matrix, aspect="auto", cmap=states, vmin=0, vmax=1, interpolation="nearest")
    axis.set_title(f"{title or f'Gates of {arm.label}'} (seed {record.config.seed})")
    axis.legend(handles=[Patch(facecolor=OPEN_GATE_COLOUR, edgecolor="0.5", label="open"),
                         Patch(facecolor=DISCARDED_GATE_COLOUR, edgecolor="0.5", label="discarded")],
                fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def confusion_heatmap(matrix: np.ndarray, class_names, title: str, normalise: bool = True):
    """A confusion matrix as a heatmap, rows = true class, normalised per row.

    Used in: 07_cifar100
    """
    import seaborn as sns

    matrix = np.asarray(matrix, dtype=float)
    if normalise:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 3 + 0.35 * len(class_names)
    fig, axis = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(matrix, ax=axis, cmap="rocket_r", vmin=0, vmax=1 if normalise else None,
                xticklabels=class_names, yticklabels=class_names, square=True,
                cbar_kws={"label": "fraction of true class" if normalise else "count"})
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    axis.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def augmentation_preview(images: np.ndarray, augmented: np.ndarray, title: str = "Pad-4 crop and flip"):
    """Originals (top row) and augmented versions (rows below).

    ``augmented`` has shape [repeats, N, 32, 32, 3] in 0..1 or uint8.

    Used in: 00_data
    """
    repeats, count = augmented.shape[:2]
    fig, axes = plt.subplots(repeats + 1, count, figsize=(count * 1.0, (repeats + 1) * 1.05))
    for column in range(count):
        axes[0, column].imshow(images[column])
        for row in range(repeats):
            axes[row + 1, column].imshow(np.clip(augmented[row, column], 0, 1)
                                         if augmented.dtype != np.uint8 else augmented[row, column])
    for axis in axes.ravel():
        axis.axis("off")
    axes[0, 0].set_title("original", fontsize=8, loc="left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_balance(data):
    """Images per class in the training, validation and test splits.

    Used in: 00_data
    """
    import pandas as pd
    import seaborn as sns

    rows = []
    for split, labels in (("train", data.y_train), ("validation", data.y_val), ("test", data.y_test)):
        counts = np.bincount(labels, minlength=data.num_classes)
        rows += [{"split": split, "class": data.class_names[i], "images": int(c)} for i, c in enumerate(counts)]
    frame = pd.DataFrame(rows)
    fig, axis = plt.subplots(figsize=(min(3 + 0.5 * data.num_classes, 12), 3.8))
    sns.barplot(frame, x="class", y="images", hue="split", ax=axis)
    axis.tick_params(axis="x", rotation=45 if data.num_classes <= 20 else 90, labelsize=8)
    axis.set_title(f"{data.name}: images per class")
    # Outside the axes: inside, the legend covered the last classes' bars.
    sns.move_legend(axis, "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def channel_histograms(images: np.ndarray, title: str = "Pixel values per channel (training split)"):
    """Histograms of R, G and B pixel values, with the means marked.

    Used in: 00_data
    """
    fig, axis = plt.subplots(figsize=(6.5, 3.6))
    sample = images[: min(len(images), 5000)]
    for channel, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
        values = sample[..., channel].ravel()
        axis.hist(values, bins=64, range=(0, 255), histtype="step", color=colour, lw=1.5,
                  density=True, label="RGB"[channel])
        axis.axvline(values.mean(), color=colour, ls="--", lw=1)
    axis.set_xlabel("pixel value")
    axis.set_ylabel("density")
    axis.set_title(title)
    axis.legend()
    fig.tight_layout()
    return fig
