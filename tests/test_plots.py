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
                            "gate_epochs": [0, 1, 2, 3], "discarded_blocks": [0, 0, 1, 1],
                            "gate_responses": {"stage1_block1": [3.0, 2.8, 2.0, 1.9],
                                               "stage2_block1": [4.0, 4.2, 4.5, 5.0]}})
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


def test_save_figure_rewrites_identical_bytes_for_an_unchanged_plot(tmp_path):
    images = np.random.default_rng(0).random((4, 4, 3))

    def draw():
        fig, axis = plt.subplots()
        axis.imshow(images)  # embedded images and clip paths carry generated ids
        axis.plot([0, 1], [1, 0])
        return fig

    first = [p.read_bytes() for p in plots.save_figure(draw(), "same", notebook="01", figures_dir=tmp_path)]
    second = [p.read_bytes() for p in plots.save_figure(draw(), "same", notebook="01", figures_dir=tmp_path)]
    assert first == second
    plt.close("all")


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
        plots.gate_responses(records),
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


def _degradation_record(model, loss):
    record = _record(model, epochs=len(loss))
    record.config = ExperimentConfig(model=model, name=model)
    record.history["loss"] = list(loss)
    return record


def test_degradation_cuts_an_exploding_first_epoch_and_lists_it():
    records = [_degradation_record("plain20", [2.3, 2.0, 1.8]), _degradation_record("plain44", [2.0e4, 2.4, 2.2]),
               _degradation_record("resnet20", [2.2, 1.8, 1.5]), _degradation_record("resnet44", [2.4, 2.1, 1.9])]
    figure = plots.degradation(records)
    loss_axis, error_axis = figure.axes[:2]
    assert loss_axis.get_ylim()[1] == pytest.approx(1.15 * 2.4)  # the largest loss after epoch 1
    assert "plain44 epoch 1: 2e+04" in loss_axis.texts[0].get_text()
    # Plain nets dashed, residual solid; one colour per depth.
    lines = {line.get_label(): line for line in loss_axis.get_lines()}
    assert lines["plain44"].get_linestyle() == "--" and lines["resnet44"].get_linestyle() == "-"
    assert lines["plain44"].get_color() == lines["resnet44"].get_color() != lines["resnet20"].get_color()
    # Validation error in percent.
    errors = {line.get_label(): line.get_ydata() for line in error_axis.get_lines()}
    assert errors["resnet20"][0] == pytest.approx(82.0)
    plt.close(figure)


def test_degradation_keeps_every_value_when_nothing_explodes():
    records = [_degradation_record("plain20", [4.8, 2.0, 1.8]), _degradation_record("resnet20", [2.2, 1.8, 1.5])]
    figure = plots.degradation(records)
    assert figure.axes[0].get_ylim()[1] > 4.8 and not figure.axes[0].texts
    plt.close(figure)


def test_gate_responses_draws_each_block_against_its_epsilon():
    record = _record("eps", gates=True)
    record.config = ExperimentConfig(model="eps_resnet20", name="eps", model_options={"epsilon": 2.5})
    figure = plots.gate_responses([record])
    axis = figure.axes[0]
    lines = axis.get_lines()
    assert list(lines[0].get_ydata()) == [3.0, 4.0]  # before training
    assert list(lines[1].get_ydata()) == [1.9, 5.0]  # after the last epoch
    assert list(lines[2].get_ydata()) == [2.5, 2.5]  # epsilon
    assert plots.gate_epsilon(record) == 2.5
    default = _record("default")
    default.config = ExperimentConfig(model="eps_resnet56", name="default")
    assert plots.gate_epsilon(default) == 2.5  # the builder's default
    assert plots.gate_epsilon(_record("ungated")) == 0.0  # resnet20
    plt.close(figure)
    record.diagnostics["discarded_blocks_training"] = [0, 1, 2, 2]
    figure = plots.discarded_blocks([record])
    inference, training = figure.axes[0].get_lines()
    assert list(training.get_ydata()) == [0, 1, 2, 2] and training.get_linestyle() == "--"
    assert training.get_color() == inference.get_color() and list(inference.get_ydata()) == [0, 0, 1, 1]
    plt.close(figure)
    with pytest.raises(ValueError, match="gate responses"):
        plots.gate_responses([_record("plain")])
