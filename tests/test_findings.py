"""helpers.findings: sentences computed from arms' records, with their intervals.

This module holds the synthetic-record factory (used by
``test_findings_notebooks.py`` too) and the tests of the shared pieces:
``compare``, ``comparison_sentence``, ``arm_line``, ``weight_decay_shrink``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from helpers import comparisons, findings, studies
from helpers.experiment import ExperimentConfig
from helpers.profiles import get_profile
from helpers.records import RunRecord, labels_digest, pack_bits

QUICK = get_profile("quick")
IMAGES = 400
DIGEST = labels_digest(np.arange(IMAGES) % 10)


# -- factory ---------------------------------------------------------------------


def scores(accuracy: float, seed: int, salt: int = 0, images: int = IMAGES) -> np.ndarray:
    """Exactly round(accuracy * images) correct images, spread at random (seeded)."""
    correct = np.zeros(images, dtype=np.uint8)
    correct[np.random.default_rng([seed, salt]).permutation(images)[:round(accuracy * images)]] = 1
    return correct


def make_record(config: ExperimentConfig, test_accuracy: float, *, seed: int = 0, salt: int = 0, epochs: int = 3,
                loss: float = 1.0, train_accuracy: float | None = None, val_accuracy: float | None = None,
                val_loss: float | None = None, learning_rates=None, top5: float | None = None,
                status: str = "completed", diverged_epoch: int | None = None, diagnostics=None,
                per_image: bool = True, digest: str = DIGEST) -> RunRecord:
    """A finished run whose history ends at the given values (curves rise or fall linearly to them)."""
    config = config.replace(seed=seed)
    chance = 0.01 if config.dataset == "cifar100" else 0.1

    def ramp(start, end):
        return [float(v) for v in np.linspace(start, end, epochs)]

    train_accuracy = test_accuracy if train_accuracy is None else train_accuracy
    val_accuracy = test_accuracy if val_accuracy is None else val_accuracy
    history = {
        "epoch": list(range(1, epochs + 1)),
        "loss": ramp(2.3, loss),
        "accuracy": ramp(min(chance, train_accuracy), train_accuracy),
        "val_loss": ramp(2.3, loss * 1.1 if val_loss is None else val_loss),
        "val_accuracy": ramp(min(chance, val_accuracy), val_accuracy),
        "learning_rate": [config.learning_rate] * epochs if learning_rates is None else list(learning_rates),
    }
    correct = scores(test_accuracy, seed, salt)
    test = {"loss": loss, "accuracy": float(correct.mean())}
    predictions = {"images": IMAGES, "labels_digest": digest, "accuracy": pack_bits(correct)}
    if top5 is not None:
        top5_correct = scores(top5, seed, salt + 1)
        history["top5_accuracy"] = ramp(0.05, top5)
        test["top5_accuracy"] = float(top5_correct.mean())
        predictions["top5_accuracy"] = pack_bits(top5_correct)
    return RunRecord(run_id=f"{config.label}-{seed}", status=status, config=config, history=history, test=test,
                     test_predictions=predictions if per_image else {}, diverged_epoch=diverged_epoch,
                     diagnostics=diagnostics or {}, data={})


class per_seed:  # noqa: N801 - reads as a marker in calls: loss=per_seed([0.5, 0.6])
    def __init__(self, values):
        self.values = list(values)


def _salt(arm) -> int:
    return zlib.crc32(repr(arm.key).encode())


def arm_result(arm: studies.Arm, accuracies, **common) -> studies.ArmResult:
    """An arm with one record per accuracy (seeds 0, 1, ...); ``common`` goes to every record.

    A value of ``common`` given as ``per_seed([...])`` is spread over the seeds instead.
    """
    records = []
    for index, accuracy in enumerate(accuracies):
        values = {name: value.values[index] if isinstance(value, per_seed) else value
                  for name, value in common.items()}
        records.append(make_record(arm.config, accuracy, seed=index, salt=_salt(arm), **values))
    return studies.ArmResult(arm=arm, seeds=tuple(range(len(accuracies))), records=records)


def results_of(arms, specification) -> dict:
    """{key: ArmResult} in the arms' order, for the keys in ``specification`` ({key: (accuracies, common)})."""
    results = {}
    for key, arm in arms.items():
        if key in specification:
            accuracies, common = specification[key]
            results[key] = arm_result(arm, accuracies, **common)
    return results


# -- compare and comparison_sentence ---------------------------------------------


def _two_arms(accuracies_a, accuracies_b, **common):
    arms = studies.stem_arms(QUICK)
    a, b = arms["resnet18", "cifar"], arms["resnet18", "imagenet"]
    return arm_result(a, accuracies_a, **common), arm_result(b, accuracies_b, **common)


def test_compare_is_the_paired_difference_of_the_per_image_scores():
    a, b = _two_arms([0.60, 0.62], [0.40, 0.41])
    interval = comparisons.compare(a, b)
    assert interval.estimate == pytest.approx(0.205)
    assert interval.seeds == 2 and interval.images == IMAGES
    assert interval.resolved


def test_compare_names_the_arm_without_per_image_scores():
    a, b = _two_arms([0.6, 0.6], [0.4, 0.4])
    b.records[1] = make_record(b.config, 0.4, seed=1, per_image=False)
    with pytest.raises(ValueError, match="resnet18 imagenet stem.*no per-image test scores"):
        comparisons.compare(a, b)
    # A seed missing from the cache: compared on what there is, and the interval says so.
    b.records[1] = None
    assert comparisons.compare(a, b).seeds == 1
    assert "one seed cannot support a claim" in comparisons.comparison_sentence(a, b)


def test_compare_refuses_arms_scored_on_different_images():
    a, b = _two_arms([0.6, 0.6], [0.4, 0.4])
    for index, record in enumerate(b.records):
        b.records[index] = make_record(b.config, 0.4, seed=index, digest="other")
    with pytest.raises(ValueError, match="different test images"):
        comparisons.compare(a, b)


def test_comparison_sentence_states_a_direction_only_when_resolved():
    a, b = _two_arms([0.60, 0.62], [0.40, 0.41])
    text = comparisons.comparison_sentence(a, b)
    assert text.startswith("**resnet18 cifar stem** beats **resnet18 imagenet stem** on test accuracy by 20.5 points")
    assert "n = 2 seeds, 400 test images" in text
    # Reversed: the winner is named first, the size is positive.
    text = comparisons.comparison_sentence(b, a)
    assert text.startswith("**resnet18 cifar stem** beats **resnet18 imagenet stem** on test accuracy by 20.5 points")
    # Absent: no direction, the signed difference and its interval.
    a, b = _two_arms([0.50, 0.51], [0.50, 0.50])
    text = comparisons.comparison_sentence(a, b, what="test top-1")
    assert " beats " not in text
    assert text.startswith("The budget does not resolve **resnet18 cifar stem** against **resnet18 imagenet stem** "
                           "on test top-1: resnet18 cifar stem minus resnet18 imagenet stem = +0.5 points")
    assert "one seed" not in text


def test_comparison_sentence_with_one_seed_never_claims():
    a, b = _two_arms([0.90], [0.10])
    text = comparisons.comparison_sentence(a, b)
    assert " beats " not in text
    assert "= +80.0 points" in text and text.endswith(", and one seed cannot support a claim.")


def test_comparison_sentence_with_seeds_that_disagree_is_unresolved():
    # The seeds disagree on the sign: two seeds pin down little (t at df 1).
    a, b = _two_arms([0.60, 0.40], [0.45, 0.55])
    assert "The budget does not resolve" in comparisons.comparison_sentence(a, b)


# -- arm_line --------------------------------------------------------------------


def test_arm_line_counts_statuses_and_gives_mean_and_spread():
    arm = studies.vgg_arms(QUICK)["no_bn", "glorot", "sgd_high"]
    result = arm_result(arm, [0.30, 0.10], status=per_seed(["completed", "diverged"]),
                        diverged_epoch=per_seed([None, 3]), val_accuracy=per_seed([0.32, 0.10]))
    line = comparisons.arm_line(result)
    assert line.startswith("- **no BN, Glorot, SGD high rate** "
                           "(1 of 2 completed, 1 of 2 diverged at epoch 3, 3 epochs)")
    assert "test accuracy 20.0 +- 14.1 (n = 2)" in line
    assert "best validation accuracy 21.0 +- 15.6 (n = 2)" in line
    assert "top-5" not in line
    result.records[1] = None
    assert "(1 of 2 completed, 1 of 2 not run, 3 epochs): test accuracy 30.0 (n = 1)" in comparisons.arm_line(result)
    result.records[0] = None
    assert "no record of this arm" in comparisons.arm_line(result)


def test_arm_line_shows_top5_where_recorded():
    arm = studies.cifar100_arms(QUICK)["resnet18",]
    line = comparisons.arm_line(arm_result(arm, [0.20, 0.22], top5=0.5))
    assert "test top-5 accuracy 50.0 +- 0.0 (n = 2)" in line


def test_findings_import_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, helpers.findings; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


# -- weight decay ----------------------------------------------------------------


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


def test_the_cost_line_sums_the_records_wall_times_and_names_the_machines():
    from helpers import comparisons

    arms = studies.stem_arms(QUICK)
    results = {key: arm_result(arm, [0.5, 0.6]) for key, arm in list(arms.items())[:2]}
    assert comparisons.cost_line(results) is None  # no wall times recorded
    for index, record in enumerate(record for result in results.values() for record in result.records):
        record.wall_seconds = 60.0 * (index + 1)
        record.environment = {"hardware": {"cpu": "Xeon" if index < 3 else "EPYC",
                                           "instruction_set": {"widest": "AVX-512" if index < 3 else "AVX2"}}}
    line = comparisons.cost_line(results)
    assert line == ("Training time: 10.0 min for these 4 runs (the sum of their records' wall times: "
                    "1 on EPYC (AVX2); 3 on Xeon (AVX-512)).")
    # A run listed under two arms (a shared run) counts once.
    key = next(iter(results))
    results[("again",)] = results[key]
    assert comparisons.cost_line(results) == line
    assert f"- {line}" in comparisons.arm_block(results)
