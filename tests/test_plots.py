"""helpers.plots: the one way figures are saved, and every series figure on synthetic records."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import plots  # noqa: E402
from helpers.experiment import ExperimentConfig  # noqa: E402
from helpers.records import RunRecord  # noqa: E402


def _record(name="arm", epochs=3, status="completed", diverged_epoch=None, gates=False):
    history = {
        "epoch": list(range(1, epochs + 1)),
        "loss": [2.0 / e for e in range(1, epochs + 1)],
        "accuracy": [0.2 * e for e in range(1, epochs + 1)],
        "val_loss": [2.2 / e for e in range(1, epochs + 1)],
        "val_accuracy": [0.18 * e for e in range(1, epochs + 1)],
        "learning_rate": [0.1, 0.01, 0.001][:epochs],
        "epoch_seconds": [3.0] * epochs,
    }
    diagnostics = {
        "gradient_norms": {"block1_conv1": [1e-4, 2e-4, 3e-4, 4e-4], "logits": [1e-1, 2e-1, 3e-1, 4e-1]},
        "gradient_norm_epochs": [0, 1, 2, 3],
    }
    if gates:
        diagnostics.update({"gates": {"stage1_block1": [1, 1, 0, 0], "stage2_block1": [1, 1, 1, 1]},
                            "gate_epochs": [0, 1, 2, 3], "discarded_blocks": [0, 0, 1, 1]})
    return RunRecord(run_id=f"id-{name}", status=status, config=ExperimentConfig(model="resnet20", name=name),
                     history=history, test={"accuracy": 0.5, "loss": 1.0}, diagnostics=diagnostics,
                     diverged_epoch=diverged_epoch, parameter_count=1000)


def test_save_figure_writes_png_and_svg_named_by_notebook(tmp_path):
    fig, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    paths = plots.save_figure(fig, "curve", notebook="03_resnet_depth", figures_dir=tmp_path)
    assert [p.name for p in paths] == ["03_curve.png", "03_curve.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:400]
    assert not list(tmp_path.glob(".*tmp*"))  # written beside, then renamed


def test_save_figure_takes_the_number_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_NOTEBOOK", "07_cifar100")
    fig, _ = plt.subplots()
    assert plots.save_figure(fig, "top5", figures_dir=tmp_path)[0].name == "07_top5.png"


@pytest.mark.parametrize("name, notebook, message", [
    ("Bad Name", "01", "lowercase"),
    ("ok", "vgg", "two-digit number"),
])
def test_save_figure_refuses_bad_names(tmp_path, name, notebook, message):
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match=message):
        plots.save_figure(fig, name, notebook=notebook, figures_dir=tmp_path)


def test_save_figure_needs_a_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR_LAB_NOTEBOOK", raising=False)
    monkeypatch.setattr(plots, "_current_notebook", None)
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="Received: notebook=None"):
        plots.save_figure(fig, "x", figures_dir=tmp_path)


def test_series_figures_draw_from_records():
    records = [_record("a"), _record("b", status="diverged", diverged_epoch=2, epochs=2),
               _record("c", gates=True)]
    figures = [
        plots.training_curves(records, metric="accuracy"),
        plots.training_curves(records, metric="loss", learning_rate_panel=False),
        plots.gradient_heatmap(records[0]),
        plots.first_step_gradients(records),
        plots.metric_against(records, [20, 32, 44], "depth"),
        plots.generalisation_gap(records),
        plots.discarded_blocks(records),
        plots.gate_map(records[2]),
        plots.confusion_heatmap(np.eye(3) * 5 + 1, ["a", "b", "c"], "confusion"),
    ]
    for figure in figures:
        assert figure.axes
        plt.close(figure)
    # The heatmap's colour scale spans the recorded norms (log scale).
    heatmap = plots.gradient_heatmap(records[0])
    image = heatmap.axes[0].images[0]
    assert math.isclose(image.norm.vmin, 1e-4) and math.isclose(image.norm.vmax, 4e-1)


def test_results_table_reads_each_record():
    table = plots.results_table([_record("a"), _record("b", status="diverged", diverged_epoch=2)])
    assert list(table["run"]) == ["a", "b"]
    assert table.loc[0, "best val acc"] == pytest.approx(0.54)
    assert table.loc[1, "status"] == "diverged (epoch 2)"
    assert table.loc[0, "test acc"] == 0.5


def test_figures_refuse_records_without_their_diagnostics():
    record = _record()
    record.diagnostics = {}
    with pytest.raises(ValueError, match="no gradient norms"):
        plots.gradient_heatmap(record)
    with pytest.raises(ValueError, match="no gates"):
        plots.gate_map(record)
