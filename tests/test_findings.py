"""helpers.findings: sentences built from run records' numbers."""

from __future__ import annotations

import math

import pytest

from helpers import findings, studies
from helpers.experiment import ExperimentConfig
from helpers.profiles import get_profile
from helpers.records import RunRecord


def _gated_record(epsilon, responses, steps_per_epoch=10, epochs=2):
    config = ExperimentConfig(model="eps_resnet20", name=f"eps {epsilon:g}", num_epochs=epochs,
                              model_options={"epsilon": epsilon}, schedule="constant",
                              learning_rate=0.1, momentum=0.9, weight_decay=1e-3)
    gates = {block: [0.0 if v <= epsilon else 1.0 for v in values] for block, values in responses.items()}
    return RunRecord(
        run_id=f"id-{epsilon}", status="completed", config=config,
        history={"epoch": list(range(1, epochs + 1)), "loss": [1.0] * epochs, "val_accuracy": [0.3] * epochs},
        test={"accuracy": 0.3}, parameter_count=10,
        diagnostics={"gates": gates, "gate_epochs": list(range(epochs + 1)), "gate_responses": dict(responses),
                     "discarded_blocks": [sum(1 for b in gates if gates[b][i] == 0.0) for i in range(epochs + 1)]},
        data={"steps_per_epoch": steps_per_epoch})


def test_weight_decay_shrink_integrates_the_schedule():
    constant = ExperimentConfig(model="resnet20", schedule="constant", learning_rate=0.1, momentum=0.9,
                                weight_decay=1e-3, num_epochs=4)
    # Coupled decay under momentum 0.9: lr * decay / (1 - m) per step, 40 steps.
    assert findings.weight_decay_shrink(constant, 10) == pytest.approx(math.exp(-40 * 0.1 * 1e-3 / 0.1))
    decoupled = constant.replace(weight_decay_mode="decoupled")
    assert findings.weight_decay_shrink(decoupled, 10) == pytest.approx(math.exp(-40 * 0.1 * 1e-3))
    # Step decay: rates 0.1, 0.1, 0.01, 0.001 by epoch (boundaries at 50% and 75%).
    step = constant.replace(schedule="step")
    assert findings.weight_decay_shrink(step, 10) == pytest.approx(
        math.exp(-10 * (0.1 + 0.1 + 0.01 + 0.001) * 1e-3 / 0.1), rel=1e-5)


def test_gate_findings_read_the_responses_against_epsilon():
    record = _gated_record(2.0, {"stage1_block1": [3.0, 2.5, 1.5], "stage2_block1": [4.0, 5.0, 6.0]})
    text = findings.gate_findings({"eps 2": record})
    assert "1 of 2 blocks discarded at the end" in text
    assert "spanned 3-4 before training and 1.5-6 after it, against epsilon 2: 1 of 2 blocks" in text
    assert "in training mode" not in text and "validation loss" not in text
    shrink = math.exp(-20 * 0.1 * 1e-3 / 0.1)
    assert f"to {100 * shrink:.1f}% of their size over this run (2 epochs of 10 steps)" in text
    assert "decided mostly by how large their responses start" in text  # 98% left: decay barely began


def test_gate_findings_compare_with_the_full_recipe():
    full = list(studies.gate_arms(get_profile("full")).values())[-1]
    steps = studies.steps_per_epoch(full)
    assert steps == (50_000 - 5_000) // 128
    record = _gated_record(2.5, {"stage1_block1": [3.0, 2.0, 1.0]})
    text = findings.gate_findings({"eps 2.5": record}, full_recipe=full, full_steps_per_epoch=steps)
    expected = findings.weight_decay_shrink(full, steps)
    assert expected < 0.1  # 160 epochs of decay shrink an unused branch by over 10x
    assert f"against {100 * expected:.1f}% over the full recipe ({full.num_epochs} epochs of {steps} steps)" in text


def test_gate_findings_skip_runs_without_responses():
    record = _gated_record(2.0, {"stage1_block1": [3.0, 2.5, 1.5]})
    record.diagnostics.pop("gate_responses")
    text = findings.gate_findings({"old": record})
    assert "blocks discarded at the end" in text and "spanned" not in text and "Weight decay" not in text


def test_gate_findings_compare_training_mode_and_flag_a_validation_blow_up():
    record = _gated_record(2.0, {"stage1_block1": [3.0, 2.5, 1.5], "stage2_block1": [4.0, 5.0, 6.0]})
    record.diagnostics["discarded_blocks_training"] = [0, 1, 2]
    record.history["val_loss"] = [3.0, 5.0e6]
    text = findings.gate_findings({"eps 2": record})
    assert "in training mode (batch norm on the batch's statistics, as `fit` sees the gates) 2 blocks are gated off, against 1 at inference" in text
    assert "validation loss (5e+06) is 5e+06 times its training loss (1)" in text
    record.history["val_loss"] = [3.0, 9.0]  # under ten times: nothing to flag
    assert "validation loss" not in findings.gate_findings({"eps 2": record})


def test_gate_findings_name_an_ungated_arm():
    record = _gated_record(2.0, {"stage1_block1": [3.0, 2.5, 1.5]})
    record.diagnostics = {}
    assert "no gates (epsilon 0)" in findings.gate_findings({"eps 0": record})
