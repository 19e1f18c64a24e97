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
from matplotlib.ticker import MaxNLocator
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
        # A fixed hash salt makes the SVG's element ids (clip paths, images)
        # the same on every render, so an unchanged plot rewrites the same bytes.
        with plt.rc_context({"svg.hashsalt": f"cifar-lab-{number}-{name}"}):
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


# ---------------------------------------------------------------------------
# Figures of the series. Each takes run records (helpers.records.RunRecord)
# and returns a Figure; notebooks pass it to save_figure.
# ---------------------------------------------------------------------------

def _label(record) -> str:
    return record.config.label


def _epochs(record) -> np.ndarray:
    return np.asarray(record.history.get("epoch", []), dtype=float)


def training_curves(records, metric: str = "accuracy", learning_rate_panel: bool = True,
                    title: str | None = None):
    """Training (solid) and validation (dashed) curves, the rate drawn under them.

    Diverged runs end where they diverged, marked with a cross.

    Used in: 01_vgg_gradients, 02_lr_schedules, 04_dropout, 05_cyclical_lr, 07_cifar100
    """
    rows = 2 if learning_rate_panel else 1
    fig, axes = plt.subplots(rows, 1, figsize=(7.5, 5.8 if rows == 2 else 4),
                             sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.3][:rows]})
    axis = axes[0, 0]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, record in enumerate(records):
        colour = colours[index % len(colours)]
        epochs = _epochs(record)
        if metric in record.history:
            axis.plot(epochs, record.curve(metric), color=colour, lw=1.8,
                      label=f"{_label(record)} (train)")
        if f"val_{metric}" in record.history:
            axis.plot(epochs, record.curve(f"val_{metric}"), color=colour, lw=1.8, ls="--",
                      label=f"{_label(record)} (val)")
        if record.status == "diverged" and record.diverged_epoch:
            axis.plot([record.diverged_epoch], [axis.get_ylim()[0]], marker="x", color=colour,
                      ms=10, mew=2, clip_on=False)
        if learning_rate_panel and "learning_rate" in record.history:
            axes[1, 0].plot(epochs, record.curve("learning_rate"), color=colour, lw=1.5)
    axis.set_ylabel(metric.replace("_", " "))
    if "loss" in metric:
        axis.set_yscale("log")
    axis.legend(fontsize=7, ncol=2, loc="best")
    if title:
        axis.set_title(title)
    if learning_rate_panel:
        axes[1, 0].set_ylabel("learning rate")
        axes[1, 0].set_yscale("log")
    _epoch_axis(axes[-1, 0])
    fig.tight_layout()
    return fig


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


def gradient_heatmap(record, title: str | None = None, max_layers: int = 60):
    """Per-layer gradient L2 norms over epochs: layers by epochs, log colour scale.

    Rows are weight layers from input (top) to output (bottom); column 0 is
    the measurement before the first step.

    Used in: 01_vgg_gradients
    """
    from matplotlib.colors import LogNorm

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
    axis.set_title(title or _label(record))
    fig.tight_layout()
    return fig


def first_step_gradients(records, title: str = "Gradient norm per layer before the first step"):
    """Per-layer gradient norm at initialisation, input layer on the left.

    Used in: 01_vgg_gradients
    """
    fig, axis = plt.subplots(figsize=(8, 4))
    for record in records:
        norms = record.diagnostics.get("gradient_norms", {})
        values = [norms[name][0] if norms[name] and norms[name][0] else np.nan for name in norms]
        axis.plot(range(len(values)), values, marker="o", ms=3, label=_label(record))
    axis.set_yscale("log")
    axis.set_xlabel("weight layer (input -> output)")
    axis.set_ylabel("gradient L2 norm")
    axis.set_title(title)
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def results_table(records, extra_columns: dict | None = None):
    """A pandas DataFrame with one row per run: status, epochs, accuracies, time.

    Used in: every notebook's Findings
    """
    import pandas as pd

    rows = []
    for record in records:
        row = {
            "run": _label(record),
            "status": record.status + (f" (epoch {record.diverged_epoch})" if record.diverged_epoch else ""),
            "epochs": record.epochs_completed,
            "best val acc": record.best("val_accuracy") if "val_accuracy" in record.history else np.nan,
            "final val acc": record.final("val_accuracy") if "val_accuracy" in record.history and record.epochs_completed else np.nan,
            "test acc": record.test_metric("accuracy"),
        }
        if "top5_accuracy" in record.test:
            row["test top-5"] = record.test_metric("top5_accuracy")
        row["params"] = record.parameter_count
        row["s/epoch"] = (float(np.nanmean(record.curve("epoch_seconds")))
                          if "epoch_seconds" in record.history and record.epochs_completed else np.nan)
        for column, function in (extra_columns or {}).items():
            row[column] = function(record)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table


def metric_against(records, x_values, x_label: str, metric: str = "val_accuracy",
                   groups=None, title: str | None = None, log_x: bool = False):
    """Best ``metric`` of each run against a property (depth, parameters, time).

    ``groups`` (one label per record) draws one line per group.

    Used in: 03_resnet_depth, 06_sparse_gates
    """
    fig, axis = plt.subplots(figsize=(6, 4))
    groups = list(groups) if groups is not None else ["runs"] * len(records)
    for group in dict.fromkeys(groups):
        members = [(x, r) for x, r, g in zip(x_values, records, groups) if g == group]
        members.sort(key=lambda pair: pair[0])
        xs = [x for x, _ in members]
        ys = [r.best(metric) if metric in r.history else r.test_metric(metric) for _, r in members]
        axis.plot(xs, ys, marker="o", label=group)
    if log_x:
        axis.set_xscale("log")
    axis.set_xlabel(x_label)
    axis.set_ylabel(f"best {metric.replace('_', ' ')}")
    if len(set(groups)) > 1:
        axis.legend()
    if title:
        axis.set_title(title)
    fig.tight_layout()
    return fig


def degradation(records, title: str = "Plain vs residual (He et al., Figure 1/6)"):
    """Training loss and validation error per epoch: plain dashed, residual solid.

    One colour per depth. The loss panel has a linear axis and is cut above
    above the curves after the first epoch when a first epoch went over three
    times higher (a plain deep net blowing up), so it cannot flatten the rest;
    values above the cut are listed in the panel, read from the records.

    Used in: 03_resnet_depth
    """
    records = list(records)
    fig, (loss_axis, error_axis) = plt.subplots(1, 2, figsize=(10, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    depths = list(dict.fromkeys(_depth(record) for record in records))
    later = []
    for record in records:
        values = np.asarray(record.curve("loss"), dtype=float)
        later.extend(values[1:][np.isfinite(values[1:])])
    top = None
    if later:
        firsts = [record.curve("loss")[0] for record in records if record.curve("loss")]
        if max(firsts) > 3 * max(later):
            top = 1.15 * max(later)
    clipped = []
    for record in records:
        colour = colours[depths.index(_depth(record)) % len(colours)]
        style = "--" if record.config.model.startswith("plain") else "-"
        epochs = _epochs(record)
        loss = np.asarray(record.curve("loss"), dtype=float)
        loss_axis.plot(epochs, loss, color=colour, ls=style, lw=1.8, label=_label(record))
        if "val_accuracy" in record.history:
            error = 100 * (1 - np.asarray(record.curve("val_accuracy"), dtype=float))
            error_axis.plot(epochs, error, color=colour, ls=style, lw=1.8, label=_label(record))
        if top is not None:
            clipped.extend(f"{_label(record)} epoch {int(e)}: {v:.3g}"
                           for e, v in zip(epochs, loss) if np.isfinite(v) and v > top)
    if top is not None:
        bottom = min(later) if later else 0
        loss_axis.set_ylim(bottom - 0.05 * (top - bottom), top)
    if clipped:
        loss_axis.text(0.98, 0.98, "above the axis:\n" + "\n".join(clipped), transform=loss_axis.transAxes,
                       ha="right", va="top", fontsize=7, color="0.3")
    loss_axis.set_ylabel("training loss")
    loss_axis.set_title("Training loss")
    error_axis.set_ylabel("validation error (%)")
    error_axis.set_title("Validation error")
    error_axis.legend(fontsize=8)
    for axis in (loss_axis, error_axis):
        _epoch_axis(axis)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _depth(record) -> str:
    match = re.search(r"(\d+)$", record.config.model)
    return match.group(1) if match else record.config.model


def generalisation_gap(records, title: str = "Generalisation gap (train - validation accuracy)"):
    """Training minus validation accuracy per epoch, one line per run.

    Used in: 04_dropout
    """
    fig, axis = plt.subplots(figsize=(7, 4))
    for record in records:
        gap = np.asarray(record.curve("accuracy")) - np.asarray(record.curve("val_accuracy"))
        axis.plot(_epochs(record), gap, label=_label(record))
    axis.axhline(0, color="grey", lw=0.8)
    _epoch_axis(axis)
    axis.set_ylabel("train - val accuracy")
    axis.set_title(title)
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def lr_range_test(result, chosen_base: float | None = None, chosen_max: float | None = None):
    """Smoothed loss against the learning rate (log x), chosen bounds marked.

    Used in: 05_cyclical_lr
    """
    fig, axis = plt.subplots(figsize=(6.5, 4))
    axis.plot(result.learning_rates, result.losses, color="0.75", lw=1, label="loss")
    axis.plot(result.learning_rates, result.smoothed_losses, lw=2, label="smoothed loss")
    axis.set_xscale("log")
    for value, name, style in ((chosen_base, "base LR", ":"), (chosen_max, "max LR", "--")):
        if value:
            axis.axvline(value, color="C3", ls=style, label=f"{name} = {value:.3g}")
    finite = np.asarray(result.smoothed_losses, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        axis.set_ylim(finite.min() * 0.9, min(finite.max(), finite[0] * 2.5) * 1.05)
    axis.set_xlabel("learning rate (log)")
    axis.set_ylabel("training loss")
    axis.set_title("LR range test")
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def discarded_blocks(records, title: str = "Blocks discarded: inference (solid), training mode (dashed)"):
    """Number of gated-off residual blocks per epoch, one line per epsilon.

    Solid: at inference (moving statistics), as the trained net is used.
    Dashed, where recorded: the same probe batch in training mode, as the
    gates act during ``fit``.

    Used in: 06_sparse_gates
    """
    fig, axis = plt.subplots(figsize=(6.5, 4))
    for record in records:
        counts = record.diagnostics.get("discarded_blocks")
        if counts:
            epochs = record.diagnostics.get("gate_epochs") or list(range(len(counts)))
            epochs = list(epochs)[-len(counts):] if len(epochs) >= len(counts) else list(range(len(counts)))
            line, = axis.plot(epochs, counts, marker="o", label=_label(record))
            training = record.diagnostics.get("discarded_blocks_training")
            if training and len(training) == len(counts):
                axis.plot(epochs, training, marker="x", ls="--", color=line.get_color())
    _epoch_axis(axis)
    axis.set_ylabel("discarded blocks")
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title)
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gate_responses(records, title: str = "Largest residual response per block against epsilon"):
    """Each block's largest ``|F|`` at the start and the end, with epsilon drawn.

    A gate discards its block exactly when this response is at most epsilon,
    so the distance between a run's markers and its dashed epsilon line is
    how far each block is from being discarded. One colour per run; hollow
    markers before training, filled after the last epoch. Log y axis.

    Used in: 06_sparse_gates
    """
    fig, axis = plt.subplots(figsize=(9.5, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = 0
    most_blocks = 0
    for record in records:
        responses = record.diagnostics.get("gate_responses")
        if not responses:
            continue
        # Colours in drawing order, as in discarded_blocks, so an arm keeps its colour.
        colour = colours[drawn % len(colours)]
        names = list(responses)
        positions = np.arange(1, len(names) + 1)
        most_blocks = max(most_blocks, len(names))
        first = [responses[name][0] for name in names]
        last = [responses[name][-1] for name in names]
        axis.plot(positions, first, color=colour, lw=0.8, ls=":", marker="o", ms=4, mfc="none")
        axis.plot(positions, last, color=colour, lw=1.5, marker="o", ms=4, label=_label(record))
        epsilon = gate_epsilon(record)
        if epsilon:
            axis.axhline(epsilon, color=colour, ls="--", lw=1)
        drawn += 1
    if not drawn:
        raise ValueError("None of the runs recorded gate responses (diagnostics['gate_responses']). They are "
                         "recorded for models with epsilon > 0 by this version of the engine; a run cached by an "
                         "older version lacks them: delete its folder under runs/ to train it again. "
                         f"Received: {[getattr(r, 'run_id', r) for r in records]}")
    axis.set_yscale("log")
    axis.set_xlim(0.5, most_blocks + 0.5)
    axis.set_xlabel("gated block (input to output)")
    axis.set_ylabel("largest |F| on the probe batch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title)
    axis.legend(fontsize=8, title="after training (filled)\nbefore (hollow)\nepsilon (dashed)",
                title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def gate_epsilon(record) -> float:
    """The gate threshold a run was built with (the builder's default if not set)."""
    epsilon = record.config.model_options.get("epsilon")
    if epsilon is None and record.config.model.startswith("eps_"):
        from helpers.models import DEFAULT_EPSILON

        epsilon = DEFAULT_EPSILON
    return float(epsilon or 0.0)


def gate_map(record, title: str | None = None):
    """Each block's gate (1 open, 0 discarded) over epochs.

    Used in: 06_sparse_gates
    """
    names, matrix, epochs = _layers_by_epochs(record, "gates", "gate_epochs", "gates")
    fig, axis = _heatmap_axes(names, epochs, 0.25)
    axis.imshow(matrix, aspect="auto", cmap="Greys", vmin=0, vmax=1)
    axis.set_title(title or f"Gates of {_label(record)} (black = open)")
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
