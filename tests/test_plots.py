"""helpers.plots: the one way figures are saved, and every series figure on synthetic ArmResults.

Each arm here runs for two seeds (0 and 1) whose curves differ by a known
offset, so a test can check that a figure draws their mean, a band spanning
them and n.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from helpers import plots  # noqa: E402
from helpers.experiment import ExperimentConfig  # noqa: E402
from helpers.intervals import format_mean_spread  # noqa: E402
from helpers.records import RunRecord  # noqa: E402
from helpers.studies import Arm, ArmResult  # noqa: E402

SEEDS = (0, 1)
# Seed 1's accuracies sit this far above seed 0's.
SEED_OFFSET = 0.04


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _record(name="arm", seed=0, epochs=3, status="completed", diverged_epoch=None, gates=False,
            model="resnet20", learning_rate=(0.1, 0.01, 0.001), **config):
    offset = SEED_OFFSET * seed
    history = {
        "epoch": list(range(1, epochs + 1)),
        "loss": [2.0 / e + offset for e in range(1, epochs + 1)],
        "accuracy": [0.2 * e + offset for e in range(1, epochs + 1)],
        "val_loss": [2.2 / e + offset for e in range(1, epochs + 1)],
        "val_accuracy": [0.18 * e + offset for e in range(1, epochs + 1)],
        "learning_rate": list(learning_rate)[:epochs],
        "epoch_seconds": [3.0 + seed] * epochs,
    }
    diagnostics = {
        "gradient_norms": {"block1_conv1": [1e-4 * (1 + seed), 2e-4, 3e-4, 4e-4],
                           "logits": [1e-1 * (1 + seed), 2e-1, 3e-1, 4e-1]},
        "gradient_norm_epochs": [0, 1, 2, 3],
    }
    if gates:
        diagnostics.update({"gates": {"stage1_block1": [1, 1, 0, 0], "stage2_block1": [1, 1, 1, 1]},
                            "gate_epochs": [0, 1, 2, 3], "discarded_blocks": [0, 0, 1, 1 + seed],
                            "gate_responses": {"stage1_block1": [3.0 + seed, 2.8, 2.0, 1.9 + seed],
                                               "stage2_block1": [4.0 + seed, 4.2, 4.5, 5.0 + seed]}})
    return RunRecord(run_id=f"id-{name}-{seed}", status=status,
                     config=ExperimentConfig(model=model, name=name, seed=seed, **config), history=history,
                     test={"accuracy": 0.5 + offset, "loss": 1.0}, diagnostics=diagnostics,
                     diverged_epoch=diverged_epoch, parameter_count=1000)


def _arm(label="arm", key=None, records=None, **record_options) -> ArmResult:
    """An ArmResult over SEEDS; ``records`` overrides the synthetic ones."""
    if records is None:
        records = [_record(label, seed=seed, **record_options) for seed in SEEDS]
    config = records[0].config.replace(seed=0) if records[0] is not None else ExperimentConfig(model="resnet20")
    return ArmResult(arm=Arm(key or ("arm", label), label, config), seeds=SEEDS, records=records)


def _legend_texts(axis) -> list[str]:
    return [text.get_text() for text in axis.get_legend().get_texts()]


def _band(axis, index=0):
    """(low, high) of the index-th band (fill_between) drawn on ``axis``."""
    bands = [collection for collection in axis.collections if isinstance(collection, PolyCollection)]
    vertices = bands[index].get_paths()[0].vertices
    return vertices[:, 1].min(), vertices[:, 1].max()


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


def _gated_arm(label, gates_per_block, key=None, epsilon=2.5, model="eps_resnet20"):
    """An arm whose seeds record the given gates {block: [state per epoch]} (responses from _record)."""
    records = [_record(label, seed=seed, gates=True, model=model, model_options={"epsilon": epsilon})
               for seed in SEEDS]
    for record in records:
        record.diagnostics["gates"] = {name: list(states) for name, states in gates_per_block.items()}
    return _arm(label, key=key, records=records)


def test_series_figures_draw_from_a_mapping_or_a_list_of_arm_results():
    results = {("arm", "a"): _arm("a"),
               ("arm", "b"): _arm("b", records=[_record("b"), _record("b", seed=1, status="diverged",
                                                                     diverged_epoch=2, epochs=2)]),
               ("arm", "c"): _arm("c", gates=True, model="eps_resnet20", model_options={"epsilon": 2.5})}
    figures = [
        plots.training_curves(results, metric="accuracy"),
        plots.training_curves(list(results.values()), metric="loss", learning_rate_panel=False),
        plots.gradient_heatmap(results[("arm", "a")]),
        plots.first_step_gradients(results),
        plots.metric_against(results, [20, 32, 44], "depth"),
        plots.generalisation_gap(results),
        plots.discarded_blocks(results),
        plots.gate_map(results),
        plots.gate_responses(results),
        plots.confusion_heatmap(np.eye(3) * 5 + 1, ["a", "b", "c"], "confusion"),
    ]
    for figure in figures:
        assert figure.axes
    # The heatmap's colour scale spans the first seed's recorded norms (log scale).
    image = figures[2].axes[0].images[0]
    assert math.isclose(image.norm.vmin, 1e-4) and math.isclose(image.norm.vmax, 4e-1)


def test_figures_refuse_run_records_in_place_of_arm_results():
    with pytest.raises(ValueError, match="ArmResult"):
        plots.training_curves([_record("a")])
    with pytest.raises(ValueError, match="ArmResult"):
        plots.gradient_heatmap(_record("a"))
    with pytest.raises(ValueError, match="no arms"):
        plots.results_table({})


def test_training_curves_draw_the_seeds_mean_and_band_with_n_in_the_legend():
    figure = plots.training_curves({("arm", "a"): _arm("a")}, learning_rate_panel=False)
    axis = figure.axes[0]
    train, val = axis.get_lines()[:2]
    # Seeds 0 and 1: 20/40/60% and 24/44/64% training accuracy.
    assert list(train.get_ydata()) == pytest.approx([22.0, 42.0, 62.0])
    assert train.get_linestyle() == "-" and val.get_linestyle() == "--"
    assert _band(axis, 0) == pytest.approx((20.0, 64.0))  # training band spans both seeds
    assert _band(axis, 1) == pytest.approx((18.0, 58.0))  # validation band
    assert "a (n = 2)" in _legend_texts(axis)
    assert axis.get_ylabel() == "accuracy (%)"


def test_training_curves_mark_a_diverged_seed_at_its_epoch():
    records = [_record("b"), _record("b", seed=1, status="diverged", diverged_epoch=2, epochs=2)]
    figure = plots.training_curves([_arm("b", records=records)], learning_rate_panel=False)
    axis = figure.axes[0]
    crosses = [line for line in axis.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [2]
    assert crosses[0].get_ydata()[0] == pytest.approx(40.0)  # seed 1's validation accuracy at epoch 2
    assert "b (n = 2; 1 diverged)" in _legend_texts(axis)
    assert "a seed diverged" in _legend_texts(axis)


def test_training_curves_keep_an_arm_that_equals_an_earlier_one_visible():
    # 02: a plateau rule that never fired trains exactly the constant arm.
    flat = (0.1, 0.1, 0.1)
    constant = _arm("constant", learning_rate=flat)
    plateau = _arm("plateau", learning_rate=flat)
    cosine = _arm("cosine", records=[_record("cosine", seed=seed, learning_rate=flat) for seed in SEEDS])
    for record in cosine.records:
        record.history["accuracy"] = [value + 0.2 for value in record.history["accuracy"]]
    figure = plots.training_curves([constant, plateau, cosine])
    axis, rate_axis = figure.axes[:2]
    texts = _legend_texts(axis)
    assert "plateau (n = 2; same as constant)" in texts
    assert "cosine (n = 2)" in texts  # a different curve gets no note
    constant_train, _, plateau_train = axis.get_lines()[:3]
    # Drawn over the constant arm, thinner and with markers, so both show.
    assert plateau_train.get_marker() == "o" and plateau_train.get_zorder() > constant_train.get_zorder()
    assert plateau_train.get_linewidth() < constant_train.get_linewidth()
    assert rate_axis.get_lines()[1].get_marker() == "o"
    # The same accuracy under another rate: on top of, not the same arm.
    step = _arm("step", learning_rate=(0.1, 0.01, 0.001))
    texts = _legend_texts(plots.training_curves([constant, step]).axes[0])
    assert "step (n = 2; on top of constant)" in texts


def test_first_step_gradients_average_the_seeds():
    figure = plots.first_step_gradients([_arm("a")])
    axis = figure.axes[0]
    line = axis.get_lines()[0]
    # Entry 0 of each layer: seed 0 has 1e-4 and 1e-1, seed 1 twice that.
    assert list(line.get_ydata()) == pytest.approx([1.5e-4, 1.5e-1])
    assert _band(axis) == pytest.approx((1e-4, 2e-1))
    assert "a (n = 2)" in _legend_texts(axis)
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["block1_conv1", "logits"]


def test_gradient_heatmap_shows_the_first_seed_and_says_which():
    figure = plots.gradient_heatmap(_arm("a"), title="No BN, Glorot")
    assert figure.axes[0].get_title() == "No BN, Glorot (seed 0)"
    arm = _arm("bare")
    for record in arm.records:
        record.diagnostics = {}
    with pytest.raises(ValueError, match="no gradient norms"):
        plots.gradient_heatmap(arm)


def test_results_table_has_one_row_per_arm_with_mean_and_spread():
    diverged = _arm("b", records=[_record("b"), _record("b", seed=1, status="diverged", diverged_epoch=2)])
    missing = _arm("c", records=[_record("c"), None])
    table = plots.results_table({("arm", "a"): _arm("a"), ("arm", "b"): diverged, ("arm", "c"): missing})
    assert table.index.name == "arm" and list(table.index) == ["a", "b", "c"]
    assert list(table.columns) == ["n", "status", "test accuracy %", "best val accuracy %", "params", "s/epoch"]
    assert list(table["n"]) == [2, 2, 1]
    assert list(table["status"]) == ["2 completed", "1 completed, 1 diverged (epoch 2)",
                                     "1 completed, 1 not in the cache"]
    assert table.loc["a", "test accuracy %"] == format_mean_spread([0.5, 0.54]) == "52.0 +- 2.8 (n = 2)"
    assert table.loc["a", "best val accuracy %"] == "56.0 +- 2.8 (n = 2)"
    assert table.loc["c", "test accuracy %"] == "50.0 (n = 1)"
    assert table.loc["a", "params"] == 1000
    assert table.loc["a", "s/epoch"] == pytest.approx(3.5)  # seeds' 3 s and 4 s per epoch
    # Top-5 only where measured (CIFAR-100).
    assert "test top-5 %" not in table.columns
    top5 = _arm("d")
    for record, value in zip(top5.records, (0.8, 0.9)):
        record.test["top5_accuracy"] = value
    table = plots.results_table([top5])
    assert table.loc["d", "test top-5 %"] == "85.0 +- 7.1 (n = 2)"
    assert list(table.columns).index("test top-5 %") == list(table.columns).index("params") - 1


def _blown_up_arm(label="c"):
    records = [_record(label, seed=seed) for seed in SEEDS]
    records[0].history["val_loss"][-1] = 3.1e7  # 06: a net that blew up on unseen images
    records[0].test["accuracy"] = 0.06
    return _arm(label, records=records)


def test_metric_against_plots_final_test_accuracy_with_the_seeds_range():
    arms = [_arm("a"), _arm("b"), _blown_up_arm("c")]
    figure = plots.metric_against(arms, [20, 32, 44], "depth")
    axis = figure.axes[0]
    assert axis.get_ylabel() == "final test accuracy (%)"
    container = axis.containers[0]
    assert list(container.lines[0].get_ydata()) == pytest.approx([52.0])  # mean of 50% and 54%
    segment = container.lines[2][0].get_segments()[0]
    assert segment[:, 1] == pytest.approx([50.0, 54.0])  # the bar spans the seeds
    texts = _legend_texts(axis)
    assert "mean over seeds (n = 2); bar: min to max" in texts


def test_metric_against_marks_a_blown_up_arm_and_leaves_it_out_of_the_line():
    figure = plots.metric_against([_arm("a"), _arm("b"), _blown_up_arm("c")], [0.0, 4.0, 8.0], "epsilon")
    axis = figure.axes[0]
    hollow = [line for line in axis.get_lines() if line.get_markerfacecolor() == "none"
              and line.get_markeredgecolor() == plots.BLOWN_UP_COLOUR]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [8.0]
    assert any(text.get_text().startswith("blew up\nseed 0: validation loss 3.1e+07") for text in axis.texts)
    connecting = [line for line in axis.get_lines() if len(line.get_xdata()) > 1]
    assert [list(line.get_xdata()) for line in connecting] == [[0.0, 4.0]]
    assert "blew up: not a result" in _legend_texts(axis)


def test_metric_against_reads_a_history_metric_as_its_best_and_checks_its_arguments():
    figure = plots.metric_against([_arm("a")], [20], "depth", metric="val_accuracy")
    assert list(figure.axes[0].containers[0].lines[0].get_ydata()) == pytest.approx([56.0])
    assert figure.axes[0].get_ylabel() == "best val accuracy (%)"
    with pytest.raises(ValueError, match="one x value"):
        plots.metric_against([_arm("a"), _arm("b")], [20], "depth")


def test_blown_up_reason_names_divergence_and_exploded_validation_loss_but_not_overfitting():
    assert plots.blown_up_reason(_arm("a")) is None
    diverged = _arm("b", records=[_record("b"), _record("b", seed=1, status="diverged", diverged_epoch=2)])
    assert plots.blown_up_reason(diverged) == "seed 1: diverged (epoch 2)"
    assert plots.blown_up_reason(_blown_up_arm()) == "seed 0: validation loss 3.1e+07, training loss 0.667"
    overfit = _arm("fit")
    for record in overfit.records:
        record.history["loss"][-1] = 0.01  # fits its training set ...
        record.history["val_loss"][-1] = 1.5  # ... and is 150 times worse on validation: not blown up
    assert plots.blown_up_reason(overfit) is None
    nan = _arm("nan")
    nan.records[1].history["val_loss"][-1] = None
    assert plots.blown_up_reason(nan) == "seed 1: validation loss not finite"


def _degradation_arm(key, label, model, loss):
    records = [_record(label, seed=seed, model=model, epochs=len(loss)) for seed in SEEDS]
    for record in records:
        record.history["loss"] = list(loss)
    return _arm(label, key=key, records=records)


def test_degradation_cuts_an_exploding_first_epoch_and_lists_it():
    results = {("plain", 20): _degradation_arm(("plain", 20), "plain-20", "plain20", [2.3, 2.0, 1.8]),
               ("plain", 44): _degradation_arm(("plain", 44), "plain-44", "plain44", [2.0e4, 2.4, 2.2]),
               ("residual", 20): _degradation_arm(("residual", 20), "ResNet-20", "resnet20", [2.2, 1.8, 1.5]),
               ("residual", 44): _degradation_arm(("residual", 44), "ResNet-44", "resnet44", [2.4, 2.1, 1.9])}
    figure = plots.degradation(results)
    loss_axis, error_axis = figure.axes[:2]
    assert loss_axis.get_ylim()[1] == pytest.approx(1.15 * 2.4)  # the largest mean loss after epoch 1
    assert "plain-44 epoch 1: 2e+04" in loss_axis.texts[0].get_text()
    # Plain nets dashed, residual solid; one colour per depth.
    lines = {line.get_label(): line for line in loss_axis.get_lines()}
    assert lines["plain-44 (n = 2)"].get_linestyle() == "--" and lines["ResNet-44 (n = 2)"].get_linestyle() == "-"
    assert (lines["plain-44 (n = 2)"].get_color() == lines["ResNet-44 (n = 2)"].get_color()
            != lines["ResNet-20 (n = 2)"].get_color())
    # Validation error in percent, mean over seeds (18% and 22% accurate after epoch 1).
    errors = {line.get_label(): line.get_ydata() for line in error_axis.get_lines()}
    assert errors["ResNet-20 (n = 2)"][0] == pytest.approx(80.0)
    assert _band(error_axis, 2) == pytest.approx((100 - 58.0, 100 - 18.0))


def test_degradation_reads_family_and_depth_from_the_key_or_model_never_the_label():
    # A misleading label: the key says plain, so the line is dashed.
    plain = _degradation_arm(("plain", 20), "ResNet-20 (mislabelled)", "resnet20", [2.3, 2.0, 1.8])
    # No (family, depth) key: the configured model says residual.
    residual = _degradation_arm(("other",), "plain-56 (mislabelled)", "resnet56", [2.2, 1.8, 1.5])
    lines = plots.degradation([plain, residual]).axes[0].get_lines()
    assert [line.get_linestyle() for line in lines] == ["--", "-"]
    assert lines[0].get_color() != lines[1].get_color()  # depths 20 and 56
    with pytest.raises(ValueError, match="plainN or resnetN"):
        plots.degradation([_arm("vgg", key=("vgg",), model="vgg19")])


def test_degradation_keeps_every_value_when_nothing_explodes():
    results = [_degradation_arm(("plain", 20), "plain-20", "plain20", [4.8, 2.0, 1.8]),
               _degradation_arm(("residual", 20), "ResNet-20", "resnet20", [2.2, 1.8, 1.5])]
    figure = plots.degradation(results)
    assert figure.axes[0].get_ylim()[1] > 4.8 and not figure.axes[0].texts


def test_generalisation_gap_is_in_points_over_seeds():
    figure = plots.generalisation_gap([_arm("a")])
    axis = figure.axes[0]
    assert list(axis.get_lines()[0].get_ydata()) == pytest.approx([2.0, 4.0, 6.0])
    assert "a (n = 2)" in _legend_texts(axis)


def test_discarded_blocks_average_the_seeds_and_flag_an_arm_hidden_under_another():
    first, second = _arm("first", gates=True), _arm("second", gates=True)
    for record in first.records + second.records:
        record.diagnostics["discarded_blocks_training"] = [0, 1, 2, 2]
    figure = plots.discarded_blocks([first, second])
    axis = figure.axes[0]
    inference, training = axis.get_lines()[:2]
    assert list(inference.get_ydata()) == pytest.approx([0, 0, 1, 1.5])  # seeds: [0, 0, 1, 1] and [0, 0, 1, 2]
    assert _band(axis) == pytest.approx((0, 2))
    assert list(training.get_ydata()) == [0, 1, 2, 2] and training.get_linestyle() == "--"
    assert training.get_color() == inference.get_color()
    assert _legend_texts(axis) == ["first (n = 2)", "second (n = 2; same as first)"]
    assert axis.get_lines()[2].get_markerfacecolor() == "none"
    with pytest.raises(ValueError, match="discarded blocks"):
        plots.discarded_blocks([_arm("plain")])


def test_gate_responses_draw_each_seed_against_its_epsilon():
    arm = _arm("eps", gates=True, model="eps_resnet20", model_options={"epsilon": 2.5})
    figure = plots.gate_responses({(20, 2.5): arm})
    axis = figure.axes[0]
    lines = axis.get_lines()
    assert list(lines[0].get_ydata()) == pytest.approx([3.5, 4.5])  # before training, mean of seeds
    assert list(lines[1].get_ydata()) == pytest.approx([2.4, 5.5])  # after the last epoch
    assert list(lines[2].get_ydata()) == [3.0, 4.0] and lines[2].get_markerfacecolor() == "none"  # seed 0
    assert list(lines[5].get_ydata()) == [2.9, 6.0]  # seed 1, after training, filled
    assert list(lines[6].get_ydata()) == [2.5, 2.5]  # epsilon
    assert "eps (n = 2)" in _legend_texts(axis)
    with pytest.raises(ValueError, match="gate responses"):
        plots.gate_responses([_arm("plain")])


def test_gate_epsilon_reads_the_configuration():
    assert plots.gate_epsilon(_record("eps", model="eps_resnet20", model_options={"epsilon": 2.5})) == 2.5
    assert plots.gate_epsilon(_arm("eps", model="eps_resnet20", model_options={"epsilon": 8.0})) == 8.0
    assert plots.gate_epsilon(_record("default", model="eps_resnet56")) == 2.5  # the builder's default
    assert plots.gate_epsilon(_record("ungated")) == 0.0  # resnet20


def test_gate_map_draws_the_arm_whose_gates_vary_most():
    all_open = _gated_arm("all open", {"stage1_block1": [1, 1, 1], "stage2_block1": [1, 1, 1]})
    one_closes = _gated_arm("one closes", {"stage1_block1": [1, 0, 0], "stage2_block1": [1, 1, 1]})
    two_close = _gated_arm("two close", {"stage1_block1": [1, 0, 0], "stage2_block1": [1, 1, 0]})
    figure = plots.gate_map({(56, 0.0): all_open, (56, 4.0): one_closes, (56, 8.0): two_close})
    axis = figure.axes[0]
    assert axis.get_title() == "Gates of two close (seed 0)"
    states = axis.images[0].get_array()
    assert {0.0, 1.0} <= set(np.unique(states))  # a map, not a blank panel
    # Some open and some closed, though none changes: still worth a map.
    mixed = _gated_arm("mixed", {"stage1_block1": [0, 0, 0], "stage2_block1": [1, 1, 1]})
    assert plots.gate_map([all_open, mixed]).axes[0].get_title() == "Gates of mixed (seed 0)"


def test_gate_map_returns_none_and_draws_nothing_when_no_gate_varies():
    all_closed = _gated_arm("all closed", {"stage1_block1": [0, 0, 0], "stage2_block1": [0, 0, 0]})
    all_open = _gated_arm("all open", {"stage1_block1": [1, 1, 1], "stage2_block1": [1, 1, 1]})
    before = plt.get_fignums()
    assert plots.gate_map({(56, 16.0): all_closed, (56, 0.0): all_open}) is None
    assert plt.get_fignums() == before
    with pytest.raises(ValueError, match="recorded gates"):
        plots.gate_map([_arm("plain")])


def test_training_curves_show_a_one_epoch_arm_as_a_point_and_leave_rate_zero_out():
    short = _arm("short", epochs=1)
    fig = plots.training_curves({("short",): short, ("long",): _arm("long")})
    axis, rates = fig.axes[0], fig.axes[1]
    one_point = [line for line in axis.get_lines() if len(line.get_xdata()) == 1 and line.get_marker() == "o"]
    assert one_point, "a one-epoch arm must be drawn with a marker"
    plt.close(fig)
    warm = _arm("warm")
    for record in warm.records:
        record.history["learning_rate"][0] = 0.0  # a warm-up's first rate
    fig = plots.training_curves({("warm",): warm})
    drawn = fig.axes[1].get_lines()[0].get_ydata()
    assert np.isnan(drawn[0]) and np.all(np.asarray(drawn[1:]) > 0)
    plt.close(fig)


def test_training_modes_draws_each_way_of_scoring_the_training_set_beside_validation():
    with_clean, without = _arm("dropout"), _arm("old record", key=("arm", "old"))
    for index, record in enumerate(with_clean.records):
        record.history["train_eval_accuracy"] = [0.5, 0.6, 0.7 + 0.1 * index]
    figure = plots.training_modes([with_clean, without])
    axis = figure.axes[0]
    bars = [patch for patch in axis.patches]
    assert len(bars) == 3 + 2  # the older record has no inference-mode score: no bar, not a zero
    inference = [bar for bar in bars if bar.get_facecolor() == bars[1].get_facecolor()]
    assert len(inference) == 1 and inference[0].get_height() == pytest.approx(75.0)
    assert [text.get_text() for text in axis.get_xticklabels()] == ["dropout\n(n = 2)", "old record\n(n = 2)"]
    assert set(_legend_texts(axis)) == {"training, running (training mode)", "training images, inference mode",
                                        "validation"}


# -- 00's data figures -------------------------------------------------------------


def test_sample_grid_puts_its_title_just_above_the_images_and_fills_the_figure():
    # The old layout left about an inch of white between the title and the first row.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 8)
    images = rng.integers(0, 255, (labels.size, 32, 32, 3), dtype=np.uint8)
    fig = plots.sample_grid(images, labels, [f"class {i}" for i in range(20)], per_class=8, title="a title")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    dpi = fig.dpi
    title = fig._suptitle.get_window_extent(renderer)
    boxes = [axis.get_window_extent(renderer) for axis in fig.axes]
    top_row = max(box.y1 for box in boxes)
    bottom_row = min(box.y0 for box in boxes)
    assert 0 <= (title.y0 - top_row) / dpi < 0.3
    assert (fig.bbox.height - (top_row - bottom_row)) / dpi < 0.7
    for box in boxes:
        assert box.width == pytest.approx(box.height, rel=0.02)


def test_class_balance_keeps_its_legend_off_the_bars():
    from types import SimpleNamespace

    names = [f"class {i}" for i in range(10)]
    data = SimpleNamespace(y_train=np.repeat(np.arange(10), 45), y_val=np.repeat(np.arange(10), 5),
                           y_test=np.repeat(np.arange(10), 10), num_classes=10, class_names=names, name="cifar10")
    fig = plots.class_balance(data)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axis = fig.axes[0]
    legend = axis.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["train", "validation", "test"]
    assert legend.get_window_extent(renderer).x0 >= axis.get_window_extent(renderer).x1
    assert legend.get_window_extent(renderer).x1 <= fig.bbox.x1 + 1


def test_lr_range_test_shows_the_raw_loss_below_its_smoothed_curve_and_not_its_divergence():
    from types import SimpleNamespace

    rates = np.geomspace(1e-5, 10, 50)
    smoothed = np.linspace(3.3, 2.2, 50)
    smoothed[-5:] = [2.3, 2.5, 2.8, 3.2, 3.6]
    raw = smoothed - 0.4  # the raw loss runs ahead of its moving average
    raw[-1] = 1e4  # the last step diverges
    raw[10] = np.nan
    result = SimpleNamespace(learning_rates=rates, losses=raw, smoothed_losses=smoothed)
    fig = plots.lr_range_test(result, chosen_base=0.01, chosen_max=0.04)
    low, high = fig.axes[0].get_ylim()
    assert low <= np.nanmin(raw[:-1]), "the lowest raw loss must be inside the plot"
    assert high < 10, "a diverging raw loss must not set the upper limit"
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert "max LR = 0.04" in labels and "base LR = 0.01" in labels
    plt.close(fig)
