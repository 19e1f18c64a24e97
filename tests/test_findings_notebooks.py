"""Each notebook's findings, fed synthetic records where the effect holds, is
reversed, or is absent (or rests on one seed): the text must say which.

The arms are the studies' own (``studies.*_arms(quick)``), so a renamed key
breaks these tests rather than silently dropping a finding.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import profiles, comparisons, findings, studies
from helpers.profiles import get_profile
from tests.test_findings import QUICK, arm_result, make_record, per_seed, results_of

TWO = (0, 1)


def _clear(high, low):
    """Two seeds a clear way apart."""
    return [high, high + 0.01], [low, low]


# -- 01 VGG ----------------------------------------------------------------------

VGG = studies.vgg_arms(QUICK)
NO_BN_HIGH, NO_BN_LOW = ("no_bn", "glorot", "sgd_high"), ("no_bn", "glorot", "sgd_low")
ADAM, HE_LOW = ("no_bn", "glorot", "adam"), ("no_bn", "he", "sgd_low")
BN_LOW, BN_HIGH = ("bn", "glorot", "sgd_low"), ("bn", "glorot", "sgd_high")
REMEDY = ("no_bn", "glorot", "sgd_high", "plateau")


def _norms(values):
    return {"gradient_norms": {f"block{i}_conv": [value, value] for i, value in enumerate(values)},
            "gradient_norm_epochs": [0, 1]}


STEADY_0056 = list(0.056 ** (1 - np.arange(8) / 7))            # falls at every step back, ratio 0.056
ZIGZAG_022 = [0.22, 0.5, 0.3, 0.6, 0.35, 0.7, 0.4, 1.0]        # ratio 0.22, falls at 4 of 7 steps back


def _vgg(stuck_keys, learned=0.45, seeds=TWO, gradients=None):
    gradients = gradients or {}
    specification = {}
    for key in VGG:
        accuracy = 0.10 if key in stuck_keys else learned + 0.02 * list(VGG).index(key) / 10
        common = {"diagnostics": _norms(gradients[key])} if key in gradients else {}
        specification[key] = ([accuracy + 0.005 * seed for seed in seeds], common)
    return results_of(VGG, specification)


def test_vgg_findings_when_batch_norm_fixes_the_high_rate():
    text = findings.vgg_findings(_vgg({NO_BN_HIGH, NO_BN_LOW}))
    assert "**BN, Glorot, SGD high rate** beats **no BN, Glorot, SGD high rate** on test accuracy by" in text
    assert "**BN, Glorot, SGD low rate** beats **no BN, Glorot, SGD low rate**" in text
    assert "**no BN, He, SGD low rate** beats **no BN, Glorot, SGD low rate**" in text
    assert ("Stayed at or near chance (10.0%) on every seed (diverged, or best validation accuracy below 15.0%): "
            "**no BN, Glorot, SGD high rate** and **no BN, Glorot, SGD low rate**.") in text
    assert "Learned on every seed" in text and "Mixed" not in text


def test_vgg_findings_when_the_effect_is_reversed():
    text = findings.vgg_findings(_vgg({BN_HIGH, BN_LOW, HE_LOW}))
    assert "**no BN, Glorot, SGD high rate** beats **BN, Glorot, SGD high rate**" in text
    assert "**no BN, Glorot, SGD low rate** beats **no BN, He, SGD low rate**" in text
    assert "**BN, Glorot, SGD high rate**" in text.split("Stayed at or near chance")[1].split("\n")[0]


def test_vgg_findings_when_nothing_differs_or_one_seed():
    text = findings.vgg_findings(_vgg(set()))
    assert " beats " not in text
    assert text.count("The budget does not resolve") == 4
    text = findings.vgg_findings(_vgg({NO_BN_HIGH}, seeds=(0,)))
    assert " beats " not in text
    assert text.count("one seed cannot support a claim") == 4


def test_vgg_findings_on_the_students_remedy():
    text = findings.vgg_findings(_vgg({NO_BN_HIGH}))
    assert ("The student's remedy, a plateau schedule, against the constant high rate: "
            "**no BN, Glorot, SGD high rate, plateau x0.1** beats **no BN, Glorot, SGD high rate**") in text
    text = findings.vgg_findings(_vgg({NO_BN_HIGH, REMEDY}))
    assert "The budget does not resolve **no BN, Glorot, SGD high rate, plateau x0.1**" in text
    assert "**no BN, Glorot, SGD high rate, plateau x0.1**" in text.split("Stayed at or near chance")[1].split("\n")[0]


def test_vgg_findings_tell_a_collapse_from_a_net_that_never_left_chance():
    never = findings.vgg_findings(_vgg({NO_BN_HIGH}))
    assert "No run learned and then collapsed: the stuck arms never left chance." in never
    results = _vgg({NO_BN_HIGH})
    arm = VGG[NO_BN_HIGH]
    collapsed = arm_result(arm, [0.10, 0.10])
    for record in collapsed.records[:1]:  # seed 0 rises to 40% at epoch 2, then falls back to chance
        record.history["val_accuracy"] = [0.2, 0.4, 0.1]
    results[NO_BN_HIGH] = collapsed
    text = findings.vgg_findings(results)
    assert ("Learned, then fell back to chance or diverged (the student's spike and collapse): "
            "**no BN, Glorot, SGD high rate** (1 of 2 seeds).") in text
    assert "never left chance" not in text


def test_vgg_findings_set_the_long_arm_against_the_short_one_and_the_students_70_percent():
    standard = get_profile("standard")
    arms = studies.vgg_arms(standard)
    long = ("bn", "glorot", "sgd_high", "long")
    assert long in arms and arms[long].config.num_epochs == standard.vgg_long_epochs == 12
    assert arms[long].config.schedule == "cosine" and arms[long].config.learning_rate == arms[BN_HIGH].config.learning_rate
    assert dict(arms[long].config.model_options) == dict(arms[BN_HIGH].config.model_options)
    assert long not in VGG  # quick has no long arm, so no such lines
    assert "What the budget decides" not in findings.vgg_findings(_vgg(set()))

    def text(long_accuracy, seeds=TWO):
        specification = {key: ([0.10 if key[0] == "no_bn" else 0.45] * len(seeds), {}) for key in arms}
        specification[long] = ([long_accuracy + 0.002 * seed for seed in seeds], {})
        return findings.vgg_findings(results_of(arms, specification))

    above = text(0.80)
    assert ("What the budget decides: batch norm at the high rate with cosine decay for 12 epochs against the "
            "constant rate for 3: **BN, Glorot, SGD high rate, cosine, 12 epochs** beats **BN, Glorot, SGD high "
            "rate**") in above
    assert "**BN, Glorot, SGD high rate, cosine, 12 epochs** against the student's VGG-19: Beats the student's 70%: " in above
    assert "Below the student's 70%: " in text(0.50)
    assert "Does not resolve against the student's 70%: " in text(0.70)


def test_vgg_findings_judge_each_seed_and_call_an_arm_mixed():
    results = _vgg(set())
    results[NO_BN_HIGH] = arm_result(VGG[NO_BN_HIGH], [0.10, 0.40])
    text = findings.vgg_findings(results)
    assert "Mixed, stuck on some seeds and not others: **no BN, Glorot, SGD high rate** (stuck on 1 of 2 seeds)" in text
    assert "Stayed at or near chance" not in text


def test_vgg_gradient_sentence_follows_the_norms_not_a_story():
    # The contradiction: He (ratio 0.056) learns, Glorot (0.22) is stuck.
    gradients = {HE_LOW: STEADY_0056, NO_BN_LOW: ZIGZAG_022}
    text = findings.vgg_findings(_vgg({NO_BN_LOW, NO_BN_HIGH}, gradients=gradients))
    he = next(line for line in text.splitlines() if line.startswith("- **no BN, He, SGD low rate**: before"))
    glorot = next(line for line in text.splitlines() if line.startswith("- **no BN, Glorot, SGD low rate**: before"))
    assert "0.056 +- 0 (n = 2) times the last layer's" in he
    assert "shrinks at 7 of 7 and 7 of 7 steps" in he and "shrinks layer by layer on the way back" in he
    assert "0.22 +- 0 (n = 2)" in glorot and "4 of 7 and 4 of 7" in glorot
    assert "layer by layer on the way back" not in glorot
    assert "but does not shrink layer by layer" in glorot
    assert ("The first/last ratio does not separate the arms that learned from those that stayed at chance: "
            "**no BN, He, SGD low rate** learned with a ratio of 0.056, while **no BN, Glorot, SGD low rate** "
            "stayed at chance with 0.22") in text
    assert "consistent with" not in text


def test_vgg_gradient_sentence_when_the_stuck_arm_has_the_smaller_ratio():
    gradients = {HE_LOW: ZIGZAG_022, NO_BN_LOW: STEADY_0056}
    text = findings.vgg_findings(_vgg({NO_BN_LOW}, gradients=gradients))
    assert ("Every arm that stayed at chance starts with a smaller first/last ratio (at most 0.056) than every arm "
            "that learned (at least 0.22)") in text
    assert "does not separate" not in text


def test_vgg_gradient_sentence_weighs_the_gradients_size_as_well_as_its_shape():
    # Measured at standard on a class-stratified batch: the stuck Glorot nets' gradients were about
    # 1,000 times smaller than He's at every layer, with no steady shrinking towards the input.
    tiny = [value * 1e-3 for value in ZIGZAG_022]
    text = findings.vgg_findings(_vgg({NO_BN_LOW}, gradients={HE_LOW: STEADY_0056, NO_BN_LOW: tiny}))
    assert "The first/last ratio does not separate" in text
    assert ("The size of the gradient does separate them: on every seed, every arm that stayed at chance starts "
            "with a median layer norm of at most 0.00045, every arm that learned with at least 0.24 "
            "(537 times more).") in text
    text = findings.vgg_findings(_vgg({NO_BN_LOW}, gradients={HE_LOW: tiny, NO_BN_LOW: STEADY_0056}))
    assert "Nor does the size of the gradient: an arm that stayed at chance starts with a median layer norm of 0.24" in text
    assert "does separate them" not in text


def test_vgg_gradient_sentence_when_the_gradient_grows_on_the_way_back():
    text = findings.vgg_findings(_vgg({NO_BN_LOW}, gradients={NO_BN_LOW: list(reversed(STEADY_0056))}))
    assert "18 +- 0 (n = 2) times the last layer's" in text
    assert "so it does not shrink on the way back" in text
    assert "No arm with gradient records learned on every seed, so the first/last ratio cannot be set" in text


# -- 02 schedules ----------------------------------------------------------------

SCHEDULES = studies.schedule_arms(QUICK)
CONSTANT, STEP, PLATEAU, COSINE = (("schedule", name) for name in ("constant", "step", "plateau", "cosine"))
LONG = ("schedule", "cosine", "long")
RATE = SCHEDULES[CONSTANT].config.learning_rate
EPOCHS = SCHEDULES[CONSTANT].config.num_epochs


def _schedules(accuracies: dict, plateau_rates=None):
    """The long arm scores what cosine does unless ``accuracies`` says otherwise."""
    specification = {key: (accuracies.get(key, accuracies[COSINE]),
                           {"epochs": SCHEDULES[key].config.num_epochs}) for key in SCHEDULES}
    if plateau_rates is not None:
        specification[PLATEAU][1]["learning_rates"] = per_seed(plateau_rates)
    return results_of(SCHEDULES, specification)


def test_schedule_findings_when_the_schedules_beat_the_constant_rate():
    results = _schedules({CONSTANT: [0.30, 0.31], STEP: [0.40, 0.41], PLATEAU: [0.50, 0.51], COSINE: [0.60, 0.61]})
    text = findings.schedule_findings(results)
    assert ("- Step against constant: **step /10 at 50%, 75%** beats **constant** on test accuracy by 10.0 points"
            in text)
    assert "- Cosine against constant: **cosine + warm-up** beats **constant** on test accuracy by 30.0 points" in text
    assert ("- Ranking (every pair resolved): **cosine + warm-up** > **plateau x0.1, patience 1** > "
            "**step /10 at 50%, 75%** > **constant**.") in text


def test_schedule_findings_when_the_constant_rate_wins():
    results = _schedules({CONSTANT: [0.60, 0.61], STEP: [0.40, 0.41], PLATEAU: [0.60, 0.60], COSINE: [0.40, 0.40]})
    text = findings.schedule_findings(results)
    assert "**constant** beats **step /10 at 50%, 75%** on test accuracy by 20.0 points" in text
    assert "**constant** beats **cosine + warm-up**" in text
    assert "The budget does not resolve **plateau x0.1, patience 1** against **constant**" in text
    assert "- Ranking: 4 of 6 pairs of schedules are resolved, so there is no full ranking." in text


def test_schedule_findings_when_nothing_differs_or_one_seed():
    same = {key: [0.40, 0.405] for key in SCHEDULES}
    text = findings.schedule_findings(_schedules(same))
    assert " beats " not in text and "Ranking (every pair" not in text
    assert "no pair of schedules is resolved at this budget (6 pairs compared), so they are not ranked" in text
    one = {key: [0.9 if key == COSINE else 0.1] for key in SCHEDULES}
    text = findings.schedule_findings(_schedules(one))
    assert " beats " not in text and text.count("one seed cannot support a claim") == 4


def test_schedule_findings_say_what_the_budget_decides():
    assert SCHEDULES[LONG].config.num_epochs == QUICK.long_epochs > EPOCHS
    assert SCHEDULES[LONG].config.replace(num_epochs=EPOCHS).id_fields() == SCHEDULES[COSINE].config.id_fields()
    accuracies = {CONSTANT: [0.30, 0.31], STEP: [0.40, 0.41], PLATEAU: [0.50, 0.51], COSINE: [0.60, 0.61]}
    text = findings.schedule_findings(_schedules({**accuracies, LONG: [0.80, 0.81]}))
    assert (f"- What the budget decides: cosine at {QUICK.long_epochs} epochs against cosine at {EPOCHS}: "
            f"**cosine + warm-up, {QUICK.long_epochs} epochs** beats **cosine + warm-up** on test accuracy") in text
    text = findings.schedule_findings(_schedules({**accuracies, LONG: [0.60, 0.605]}))
    assert f"The budget does not resolve **cosine + warm-up, {QUICK.long_epochs} epochs** against" in text


def test_schedule_findings_say_when_the_plateau_rule_fired():
    cut = [RATE] * 3 + [RATE / 10] * (EPOCHS - 3)
    accuracies = {key: [0.4, 0.4] for key in SCHEDULES}
    text = findings.schedule_findings(_schedules(accuracies, plateau_rates=[cut, [RATE] * EPOCHS]))
    assert (f"- Plateau rule (x0.1, patience 1 epoch): seed 0: fired after epoch 3 ({RATE:.3g} to {RATE / 10:.3g}); "
            f"seed 1: never fired (the rate stayed at {RATE:.3g} for all {EPOCHS} epochs).") in text
    assert ("- Where it never fired (seed 1) the plateau arm ran the constant arm's schedule, the same rate every "
            "epoch.") in text
    assert "lies under the constant one" not in text  # seed 0 differs, so the mean curve does too


def test_schedule_findings_when_the_plateau_rule_never_fired():
    text = findings.schedule_findings(_schedules({key: [0.4, 0.4] for key in SCHEDULES},
                                                 plateau_rates=[[RATE] * EPOCHS] * 2))
    assert "seed 0: never fired" in text and "seed 1: never fired" in text
    # Same schedule, same seeds, same initial weights: the factory gives the plateau arm the constant arm's curves.
    assert ("- The plateau rule never fired on any seed: the plateau arm equals the constant arm in its schedule (the "
            "same rate every epoch) and in its recorded curves, so its curve lies under the constant one in the "
            "figure.") in text


def test_schedule_findings_when_the_plateau_rule_fired_on_every_seed():
    cut = [RATE] * 2 + [RATE / 10] * 2 + [RATE / 100] * (EPOCHS - 4)
    text = findings.schedule_findings(_schedules({key: [0.4, 0.4] for key in SCHEDULES}, plateau_rates=[cut, cut]))
    assert "seed 0: fired after epochs 2 (" in text and " and 4 (" in text
    assert "never fired" not in text and "equals the constant arm" not in text


# -- 03 depth and stems ----------------------------------------------------------

DEGRADATION = studies.degradation_arms(QUICK)
SHALLOW, DEEP = QUICK.degradation_depths


def _degradation(losses: dict, accuracies=None):
    accuracies = accuracies or {}
    specification = {key: (accuracies.get(key, [0.4] * len(values)), {"loss": per_seed(values)})
                     for key, values in losses.items()}
    return results_of(DEGRADATION, specification)


def test_degradation_shown_when_the_plain_gap_exceeds_the_residual_gap():
    results = _degradation({("plain", SHALLOW): [0.50, 0.52], ("residual", SHALLOW): [0.50, 0.51],
                            ("plain", DEEP): [1.00, 1.05], ("residual", DEEP): [0.45, 0.47]},
                           accuracies={("residual", DEEP): [0.6, 0.61], ("plain", DEEP): [0.3, 0.3]})
    text = findings.degradation_findings(results, QUICK.degradation_depths)
    assert "plain +0.515 +- 0.021 (n = 2), residual -0.045 +- 0.007 (n = 2)" in text
    assert ("**Degradation shown**: adding depth raised the plain net's training loss more than the residual net's"
            in text)
    assert "Both deeper nets" not in text
    assert f"**ResNet-{DEEP}** beats **plain-{DEEP}** on test accuracy by 30.5 points" in text


def test_degradation_reversed_when_the_residual_gap_is_larger():
    results = _degradation({("plain", SHALLOW): [0.50, 0.52], ("residual", SHALLOW): [0.50, 0.51],
                            ("plain", DEEP): [0.45, 0.47], ("residual", DEEP): [1.00, 1.05]},
                           accuracies={("residual", DEEP): [0.3, 0.3], ("plain", DEEP): [0.6, 0.61]})
    text = findings.degradation_findings(results, QUICK.degradation_depths)
    assert "The reverse of degradation: adding depth raised the residual net's training loss more" in text
    assert "Degradation shown" not in text
    assert f"**plain-{DEEP}** beats **ResNet-{DEEP}**" in text


def test_degradation_not_shown_when_both_deep_nets_end_higher_alike():
    # The numbers: plain +0.488, residual +0.494. A higher loss at depth is not degradation.
    results = _degradation({("plain", SHALLOW): [0.500, 0.520], ("residual", SHALLOW): [0.400, 0.430],
                            ("plain", DEEP): [0.988, 1.010], ("residual", DEEP): [0.894, 0.920]})
    text = findings.degradation_findings(results, QUICK.degradation_depths)
    assert "plain +0.489 +- 0.001 (n = 2), residual +0.492 +- 0.003 (n = 2)" in text
    assert "Both deeper nets end with a higher training loss than their shallow versions" in text
    assert "The budget does not resolve the plain depth gap from the residual one" in text
    assert "Degradation is not shown." in text and "Degradation shown" not in text
    assert " beats " not in text


def test_degradation_with_one_seed_is_unresolved():
    results = _degradation({("plain", SHALLOW): [0.5], ("residual", SHALLOW): [0.5],
                            ("plain", DEEP): [1.5], ("residual", DEEP): [0.4]},
                           accuracies={("residual", DEEP): [0.9], ("plain", DEEP): [0.1]})
    text = findings.degradation_findings(results, QUICK.degradation_depths)
    assert "Plain gap minus residual gap: +1.100 (n = 1 seed)" in text and "is unresolved" in text
    assert "Degradation shown" not in text and " beats " not in text


def test_degradation_names_missing_arms():
    results = _degradation({("plain", SHALLOW): [0.5, 0.5], ("residual", SHALLOW): [0.5, 0.5]})
    assert "The depth gaps need all four arms" in findings.degradation_findings(results, QUICK.degradation_depths)


STEMS = studies.stem_arms(QUICK)


STEM_INTRO = "- resnet18, CIFAR stem against ImageNet stem: "


@pytest.mark.parametrize("cifar, imagenet, expected", [
    ([0.5, 0.51], [0.3, 0.3], STEM_INTRO + "**resnet18 cifar stem** beats **resnet18 imagenet stem**"),
    ([0.3, 0.3], [0.5, 0.51], STEM_INTRO + "**resnet18 imagenet stem** beats **resnet18 cifar stem**"),
    ([0.4, 0.405], [0.4, 0.4], STEM_INTRO + "The budget does not resolve **resnet18 cifar stem**"),
    ([0.9], [0.1], "one seed cannot support a claim"),
])
def test_stem_findings(cifar, imagenet, expected):
    specification = {("resnet18", "cifar"): (cifar, {}), ("resnet18", "imagenet"): (imagenet, {}),
                     ("resnet50", "cifar"): (cifar, {}), ("resnet50", "imagenet"): (imagenet, {})}
    text = findings.stem_findings(results_of(STEMS, specification))
    assert expected in text
    assert "- resnet50, CIFAR stem against ImageNet stem:" in text


# -- 04 dropout ------------------------------------------------------------------

DROPOUT = studies.dropout_arms(QUICK)
NONE, STUDENT = ("none",), ("student_dropout",)
AUG, AUG_CLASSIFIER, AUG_STUDENT = (("augmentation_weight_decay",), ("augmentation_weight_decay", "classifier_dropout"),
                                    ("augmentation_weight_decay", "student_dropout"))


def _dropout(accuracies: dict, train=None):
    train = train or {}
    specification = {key: (accuracies[key], {"train_accuracy": per_seed(train[key])} if key in train else {})
                     for key in DROPOUT}
    return results_of(DROPOUT, specification)


def test_dropout_findings_when_regularisation_helps_and_dropout_hurts_on_top():
    accuracies = {NONE: [0.30, 0.30], STUDENT: [0.40, 0.41], AUG: [0.60, 0.61], AUG_CLASSIFIER: [0.60, 0.60],
                  AUG_STUDENT: [0.45, 0.45]}
    # The student's puzzle: with dropout active in training, validation ends above training.
    text = findings.dropout_findings(_dropout(accuracies, train={STUDENT: [0.30, 0.32], AUG_STUDENT: [0.35, 0.36]}))
    assert "**student dropout only** beats **no regularisation** on test accuracy by 10.5 points" in text
    assert "**augmentation + weight decay** beats **no regularisation** on test accuracy by 30.5 points" in text
    assert ("- Student dropout on top of augmentation + weight decay: **augmentation + weight decay** beats "
            "**aug + wd + student dropout** on test accuracy by 15.5 points") in text
    assert ("- The student's dropout alone against augmentation + weight decay alone: **augmentation + weight decay** "
            "beats **student dropout only** on test accuracy by 20.0 points") in text
    assert ("- **student dropout only** (dropout), last epoch: running training accuracy 31.0 +- 1.4 (n = 2), validation "
            "40.5 +- 0.7 (n = 2); validation minus training +9.5 points, validation above training on 2 of 2 seeds."
            ) in text
    assert ("Validation accuracy is above training accuracy (mean over seeds) for **student dropout only** and "
            "**aug + wd + student dropout**.") in text
    assert "Only arms with dropout or augmentation show validation above training here." in text


def _with_clean_training(results, clean):
    """Gives each seed's record a ``train_eval_accuracy`` curve ending at ``clean[key][seed]``."""
    for key, values in clean.items():
        for record, value in zip(results[key].records, values):
            record.history["train_eval_accuracy"] = [0.1] * (record.epochs_completed - 1) + [value]
    return results


def test_dropout_findings_explain_the_puzzle_with_the_training_set_in_inference_mode():
    accuracies = {NONE: [0.30, 0.30], STUDENT: [0.40, 0.41], AUG: [0.60, 0.61], AUG_CLASSIFIER: [0.60, 0.60],
                  AUG_STUDENT: [0.45, 0.45]}
    train = {STUDENT: [0.30, 0.32], AUG_STUDENT: [0.35, 0.36]}
    # Explained: in inference mode the training images score above validation in every arm.
    results = _with_clean_training(_dropout(accuracies, train=train),
                                   {key: [value + 0.05 for value in accuracies[key]] for key in DROPOUT})
    text = findings.dropout_findings(results)
    assert ("- **student dropout only** (dropout), last epoch: running training accuracy 31.0 +- 1.4 (n = 2), "
            "validation 40.5 +- 0.7 (n = 2); validation minus training +9.5 points, validation above training on "
            "2 of 2 seeds; the same net on 1,500 training images in inference mode (dropout off, un-augmented) "
            "45.5 +- 0.7 (n = 2), -5.0 points from validation.") in text
    assert ("- In inference mode the training images score above the running training accuracy in 5 of 5 arms. "
            "Where validation was above the running figure, scoring the training images as validation is scored "
            "puts them at or above validation in **student dropout only** and **aug + wd + student dropout**: there "
            "the puzzle is the running figure's training-mode conditions") in text
    assert "does not account" not in text
    # Not explained: validation stays above the training images even in inference mode.
    results = _with_clean_training(_dropout(accuracies, train=train),
                                   {key: [value - 0.05 for value in accuracies[key]] for key in DROPOUT})
    text = findings.dropout_findings(results)
    assert ("Validation stays above them even so in **student dropout only** and **aug + wd + student dropout**: "
            "inference mode does not account for the puzzle there.") in text
    assert "at or above validation in" not in text


def test_dropout_findings_without_the_bare_arm_a_profile_leaves_out():
    accuracies = {NONE: [0.30, 0.30], STUDENT: [0.40, 0.41], AUG: [0.60, 0.61], AUG_CLASSIFIER: [0.60, 0.60],
                  AUG_STUDENT: [0.45, 0.45]}
    results = _dropout(accuracies, train={STUDENT: [0.30, 0.32], AUG_STUDENT: [0.35, 0.36]})
    del results[NONE]
    text = findings.dropout_findings(results)
    assert "no regularisation" not in text and "not compared" not in text
    assert ("- The student's dropout alone against augmentation + weight decay alone: **augmentation + weight decay** "
            "beats **student dropout only** on test accuracy by 20.0 points") in text
    assert ("Validation accuracy is above training accuracy (mean over seeds) for **student dropout only** and "
            "**aug + wd + student dropout**.") in text


def test_dropout_findings_when_reversed():
    accuracies = {NONE: [0.60, 0.61], STUDENT: [0.40, 0.40], AUG: [0.40, 0.40], AUG_CLASSIFIER: [0.40, 0.40],
                  AUG_STUDENT: [0.60, 0.61]}
    text = findings.dropout_findings(_dropout(accuracies, train={key: [0.9, 0.9] for key in DROPOUT}))
    assert "**no regularisation** beats **student dropout only**" in text
    assert "**no regularisation** beats **augmentation + weight decay**" in text
    assert "**aug + wd + student dropout** beats **augmentation + weight decay**" in text
    assert "In no arm is the mean validation accuracy above the training accuracy at the last epoch." in text


def test_dropout_puzzle_when_an_arm_without_dropout_shows_it_too():
    accuracies = {key: [0.4, 0.4] for key in DROPOUT}
    text = findings.dropout_findings(_dropout(accuracies, train={NONE: [0.3, 0.3], STUDENT: [0.3, 0.3]}))
    assert ("- Arms without dropout or augmentation show it too (**no regularisation**), so those two are not the "
            "whole explanation.") in text
    assert "Only arms with dropout" not in text


def test_dropout_findings_when_nothing_differs_or_one_seed():
    text = findings.dropout_findings(_dropout({key: [0.4, 0.405] for key in DROPOUT}))
    assert " beats " not in text and text.count("The budget does not resolve") == 6
    text = findings.dropout_findings(_dropout({key: [0.9 if key == AUG else 0.1] for key in DROPOUT}))
    assert " beats " not in text and text.count("one seed cannot support a claim") == 6


# -- 05 cyclical -----------------------------------------------------------------

CYCLICAL = studies.cyclical_arms(QUICK, 0.01, 0.04, high_learning_rate=0.3)
CYCLE_STEP, CLR, ONECYCLE, SHORT, HIGH = (("schedule", name) for name in (
    "step", "clr", "onecycle", "onecycle_short", "superconvergence"))
STEP_LABEL, CLR_LABEL = CYCLICAL[CYCLE_STEP].label, CYCLICAL[CLR].label
ONECYCLE_LABEL, HIGH_LABEL = CYCLICAL[ONECYCLE].label, CYCLICAL[HIGH].label


def _cyclical(accuracies):
    return results_of(CYCLICAL, {key: (accuracies[key], {}) for key in CYCLICAL})


def test_cyclical_arms_take_rates_from_the_range_test_and_step_decay_its_published_rate():
    assert CYCLICAL[CYCLE_STEP].config.learning_rate == studies.scaled_rate(QUICK, 0.1)
    assert CYCLICAL[CLR].config.learning_rate == 0.04
    assert CYCLICAL[CLR].config.schedule_options["base_learning_rate"] == 0.01
    assert CYCLICAL[ONECYCLE].config.learning_rate == 0.04 and CYCLICAL[HIGH].config.learning_rate == 0.3
    assert CYCLICAL[HIGH].config.num_epochs == CYCLICAL[ONECYCLE].config.num_epochs
    # 05's step decay is 02's run: one configuration, trained once.
    schedules = studies.schedule_arms(QUICK)
    assert CYCLICAL[CYCLE_STEP].config.id_fields() == schedules[("schedule", "step")].config.id_fields()
    assert HIGH not in studies.cyclical_arms(QUICK, 0.01, 0.04)


def test_cyclical_findings_each_against_step_decay():
    text = findings.cyclical_findings(_cyclical({CYCLE_STEP: [0.40, 0.40], CLR: [0.30, 0.30],
                                                 ONECYCLE: [0.55, 0.56], SHORT: [0.40, 0.405],
                                                 HIGH: [0.60, 0.62]}))
    assert (f"- {ONECYCLE_LABEL} against step decay: **{ONECYCLE_LABEL}** beats **{STEP_LABEL}** "
            "on test accuracy") in text
    assert f"- {CLR_LABEL} against step decay: **{STEP_LABEL}** beats **{CLR_LABEL}**" in text
    short = CYCLICAL[SHORT]
    assert (f"- {short.label} against step decay: The budget does not resolve **{short.label}** against "
            f"**{STEP_LABEL}**") in text
    assert short.config.num_epochs == 1 and CYCLICAL[CYCLE_STEP].config.num_epochs == 6
    assert "(1 epoch against step decay's 6.)" in text
    assert f"- {HIGH_LABEL} against {ONECYCLE_LABEL}: **{HIGH_LABEL}** beats **{ONECYCLE_LABEL}**" in text


def test_cyclical_findings_reversed_and_one_seed():
    text = findings.cyclical_findings(_cyclical({CYCLE_STEP: [0.55, 0.56], CLR: [0.60, 0.61],
                                                 ONECYCLE: [0.40, 0.40], SHORT: [0.40, 0.40],
                                                 HIGH: [0.30, 0.31]}))
    assert f"**{STEP_LABEL}** beats **{ONECYCLE_LABEL}**" in text
    assert f"**{CLR_LABEL}** beats **{STEP_LABEL}**" in text
    assert f"**{ONECYCLE_LABEL}** beats **{HIGH_LABEL}**" in text
    text = findings.cyclical_findings(_cyclical({key: [0.9 if key == ONECYCLE else 0.1] for key in CYCLICAL}))
    assert " beats " not in text and text.count("one seed cannot support a claim") == 5


# -- 06 gates --------------------------------------------------------------------

GATES = studies.gate_arms(QUICK)
DEPTH = QUICK.epsilon_depth


def _gate_diagnostics(epsilon, responses, training_off=None):
    gates = {block: [0.0 if value <= epsilon else 1.0 for value in values] for block, values in responses.items()}
    epochs = len(next(iter(responses.values())))
    discarded = [sum(1 for block in gates if gates[block][index] == 0.0) for index in range(epochs)]
    diagnostics = {"gates": gates, "gate_epochs": list(range(epochs)), "gate_responses": dict(responses),
                   "discarded_blocks": discarded, "num_gated_blocks": len(gates)}
    if training_off is not None:
        diagnostics["discarded_blocks_training"] = [0] * (epochs - 1) + [training_off]
    return diagnostics


RESPONSES = {8.0: {"stage1_block1": [9.0, 7.0, 6.0, 5.0], "stage2_block1": [12.0, 10.0, 9.0, 9.5]},
             16.0: {"stage1_block1": [9.0, 7.0, 6.0, 5.0], "stage2_block1": [20.0, 18.0, 17.0, 16.5]}}


def _gates(accuracies: dict, seeds=2, blow_up=(), training_off=None):
    specification = {}
    for key in GATES:
        depth, epsilon = key
        common = {}
        if epsilon > 0:
            common["diagnostics"] = _gate_diagnostics(epsilon, RESPONSES[epsilon], training_off)
        if key in blow_up:
            common["val_loss"] = 3.0e7
        specification[key] = (accuracies.get(key, [0.4, 0.405])[:seeds], common)
    results = results_of(GATES, specification)
    for result in results.values():
        for record in result.completed:
            record.data = {"steps_per_epoch": 23}
    return results


def test_gate_findings_when_the_gates_help():
    text = findings.gate_findings(_gates({(DEPTH, 0.0): [0.40, 0.40], (DEPTH, 8.0): [0.50, 0.51]}))
    assert (f"- Depth {DEPTH}, epsilon 8 against epsilon 0: **depth {DEPTH}, eps 8** beats **depth {DEPTH}, eps 0** "
            "on test accuracy by 10.5 points") in text
    assert "no gates (epsilon 0)" in text
    assert f"**depth {DEPTH}, eps 8** (2 of 2 completed, 3 epochs)" in text
    assert "blocks discarded at the end: 1 of 2 on every seed" in text
    assert ("each block's largest residual response |F| spanned 9-12 before training and 5-9.5 after it, against "
            "epsilon 8; blocks at or below it at the end: 1 of 2 on every seed.") in text
    assert "Blown up" not in text and "blew up" not in text
    assert "- Depth 20, epsilon 16 against epsilon 0: no ungated arm of depth 20 in these results." in text
    assert "Weight decay (0.0002) alone would shrink an unused branch's weights to" in text


def test_gate_findings_when_the_gates_hurt_and_an_arm_blew_up():
    results = _gates({(DEPTH, 0.0): [0.50, 0.51], (DEPTH, 16.0): [0.06, 0.06]}, blow_up={(DEPTH, 16.0)},
                     training_off=2)
    text = findings.gate_findings(results)
    assert f"**depth {DEPTH}, eps 0** beats **depth {DEPTH}, eps 16** on test accuracy by 44.5 points" in text
    assert (f"- **Blown up**: **depth {DEPTH}, eps 16** on 2 of 2 seeds: validation loss 3e+07, training loss 1; "
            "test accuracy 6.0%, chance is 10.0% on every seed.") in text
    assert "Its test accuracy reflects the blow-up, not an effect of the gates." in text
    assert f"(depth {DEPTH}, eps 16 blew up: this difference is not a gate effect.)" in text
    assert "as `fit` sees the gates: 2 gated off in training mode against 1 at inference on every seed." in text


def test_gate_findings_say_which_blocks_were_shut_at_initialisation_and_which_closed_in_training():
    # At epsilon 8 stage1_block1 (9, 7, 6, 5) is open before training and shut after it; at epsilon 16
    # it is shut from the start (9 <= 16) and stage2_block1 (20 ... 16.5) stays open.
    text = findings.gate_findings(_gates({}, training_off=2))
    eight, sixteen = (f"- When **depth {DEPTH}, eps {epsilon}**'s gates shut" for epsilon in (8, 16))
    line8 = next(line for line in text.splitlines() if line.startswith(eight))
    line16 = next(line for line in text.splitlines() if line.startswith(sixteen))
    assert ("already shut before training: 0 on every seed; closed during training: 1 (stage1_block1) on every "
            "seed; shut before training but open at the end: 0 on every seed.") in line8
    assert "Gated off in training mode, as `fit` sees them, before training and at the end: 0 and 2 on every seed." in line8
    assert line8.endswith("So on every seed the gates closed through training, none at initialisation.")
    assert "already shut before training: 1 on every seed; closed during training: 0 on every seed" in line16
    assert line16.endswith("this epsilon does not show the gates closing through training.")
    # Gates shut from the start and others closing in training: both are said.
    results = _gates({})
    record = results[(DEPTH, 8.0)].completed[0]
    record.diagnostics = _gate_diagnostics(8.0, {**RESPONSES[8.0], "stage3_block1": [7.5, 9.0, 9.0, 9.0]})
    line = next(line for line in findings.gate_findings(results).splitlines() if line.startswith(eight))
    assert "already shut before training: 1 (seed 0) and 0 (seed 1)" in line
    assert "shut before training but open at the end: 1 (seed 0) and 0 (seed 1)" in line
    assert "but some were already shut at initialisation: their discarding was not decided by training" in line


def test_gate_findings_unresolved_with_one_seed():
    text = findings.gate_findings(_gates({(DEPTH, 0.0): [0.40], (DEPTH, 8.0): [0.90], (DEPTH, 16.0): [0.90]}, seeds=1))
    assert " beats " not in text and text.count("one seed cannot support a claim") == 2
    assert "blocks discarded at the end: 1 of 2 (seed 0)" in text


def test_gate_findings_compare_with_the_full_recipe():
    full = list(studies.gate_arms(get_profile("full")).values())[-1].config
    steps = studies.steps_per_epoch(full)
    assert steps == (50_000 - 5_000) // 128
    text = findings.gate_findings(_gates({}), full_recipe=full, full_steps_per_epoch=steps)
    expected = findings.weight_decay_shrink(full, steps)
    assert expected < 0.1  # 160 epochs of decay shrink an unused branch by over 10x
    assert f"against {100 * expected:.1f}% over the full recipe ({full.num_epochs} epochs of {steps} steps)" in text


# -- 07 CIFAR-100 ----------------------------------------------------------------

CIFAR100 = studies.cifar100_arms(QUICK)
R18, R18_DROPOUT, R20 = ("resnet18",), ("resnet18", "post_add_dropout"), ("resnet20",)
R50_STUDENT = ("resnet50", "imagenet")


def _cifar100(top1: dict, top5: dict):
    """The student's ResNet-50 scores 0.15 / 0.40 unless ``top1``/``top5`` say otherwise."""
    top1, top5 = {R50_STUDENT: [0.15, 0.15], **top1}, {R50_STUDENT: [0.40, 0.40], **top5}
    return results_of(CIFAR100, {key: (top1[key], {"top5": per_seed(top5[key])}) for key in CIFAR100})


def test_cifar100_findings_on_the_students_resnet50_and_a_deep_net():
    text = findings.cifar100_findings(_cifar100({R18: [0.30, 0.31], R18_DROPOUT: [0.20, 0.20], R20: [0.25, 0.25]},
                                                {R18: [0.60, 0.60], R18_DROPOUT: [0.60, 0.605], R20: [0.5, 0.5]}))
    assert ("- The student's ResNet-50 (ImageNet stem) against ResNet-18 with the CIFAR stem, top-1 (they differ in "
            "depth and stem; 03_resnet_depth compares the stems alone): **resnet18** beats **resnet50 ImageNet stem**"
            ) in text
    standard = studies.cifar100_arms(profiles.get_profile("standard"))
    deep = standard[("resnet110",)]
    assert deep.config.num_epochs == 1 and deep.label == "resnet110, 1 epoch"
    results = results_of(standard, {key: ([0.3, 0.31], {"top5": 0.6, "epochs": arm.config.num_epochs})
                                    for key, arm in standard.items()})
    for record in results[("resnet110",)].records:
        record.history["epoch_seconds"] = [550.0]
        record.history["val_accuracy"] = [0.05]
    for record in results[R18].records:
        record.history["epoch_seconds"] = [100.0] * 5
        record.history["val_accuracy"] = [0.12, 0.2, 0.25, 0.3, 0.32]
    text = findings.cifar100_findings(results)
    assert ("- **resnet110, 1 epoch** costs 550 s per epoch against 100 s for **resnet18** (5.5 times), so a fixed "
            "time budget gives it 0.18 of the other's epochs.") in text
    assert ("- After 1 epoch, validation top-1: **resnet110, 1 epoch** 5.0 +- 0.0 (n = 2), **resnet18** 12.0 +- 0.0 "
            f"(n = 2) (the same number of epochs; **resnet18** then trains on to {standard[R18].config.num_epochs}).") in text


def test_cifar100_findings_top1_and_top5():
    text = findings.cifar100_findings(_cifar100({R18: [0.30, 0.31], R18_DROPOUT: [0.20, 0.20], R20: [0.25, 0.25]},
                                                {R18: [0.60, 0.60], R18_DROPOUT: [0.60, 0.605], R20: [0.5, 0.5]}))
    assert ("- Dropout after the add in ResNet-18, top-1: **resnet18** beats **resnet18 + dropout 0.5 after add** on "
            "test top-1 accuracy by 10.5 points") in text
    assert ("- Dropout after the add in ResNet-18, top-5: The budget does not resolve **resnet18 + dropout 0.5 after "
            "add** against **resnet18** on test top-5 accuracy") in text
    assert "test top-5 accuracy 60.0 +- 0.0 (n = 2)" in text


def test_cifar100_findings_reversed_and_one_seed():
    text = findings.cifar100_findings(_cifar100({R18: [0.20, 0.20], R18_DROPOUT: [0.30, 0.31], R20: [0.25, 0.25]},
                                                {R18: [0.40, 0.40], R18_DROPOUT: [0.60, 0.61], R20: [0.5, 0.5]}))
    assert "**resnet18 + dropout 0.5 after add** beats **resnet18** on test top-1 accuracy" in text
    assert "**resnet18 + dropout 0.5 after add** beats **resnet18** on test top-5 accuracy" in text
    text = findings.cifar100_findings(_cifar100({R18: [0.1], R18_DROPOUT: [0.9], R20: [0.2], R50_STUDENT: [0.1]},
                                                {R18: [0.1], R18_DROPOUT: [0.9], R20: [0.2], R50_STUDENT: [0.1]}))
    assert " beats " not in text and text.count("one seed cannot support a claim") == 3


def test_every_findings_function_names_its_notebook():
    for function in (findings.vgg_findings, findings.schedule_findings, findings.degradation_findings,
                     findings.stem_findings, findings.dropout_findings, findings.cyclical_findings,
                     findings.gate_findings, findings.cifar100_findings, comparisons.compare,
                     comparisons.comparison_sentence, comparisons.arm_line, findings.weight_decay_shrink):
        assert "Used in: " in function.__doc__.strip().splitlines()[-1], function.__name__


def test_a_record_without_per_image_scores_leaves_a_sentence_not_a_crash():
    results = _cifar100({R18: [0.30, 0.31], R18_DROPOUT: [0.20, 0.20], R20: [0.25, 0.25]},
                        {R18: [0.6, 0.6], R18_DROPOUT: [0.6, 0.6], R20: [0.5, 0.5]})
    results[R18].records[0] = make_record(CIFAR100[R18].config, 0.3, seed=0, per_image=False)
    text = findings.cifar100_findings(results)
    assert "top-1: not compared. Arm 'resnet18' has no per-image test scores" in text


def test_a_missing_arm_is_named_not_skipped_in_silence():
    results = _vgg({NO_BN_HIGH})
    del results[BN_HIGH]
    text = findings.vgg_findings(results)
    assert ("- Batch norm at the high rate (the student's set-up): not compared, ('bn', 'glorot', 'sgd_high') not in"
            in text)


def test_degradation_leaves_out_a_seed_without_a_finite_loss():
    results = _degradation({("plain", SHALLOW): [0.50, 0.52, 0.51], ("residual", SHALLOW): [0.50, 0.51, 0.50],
                            ("plain", DEEP): [1.00, 1.05, float("nan")], ("residual", DEEP): [0.45, 0.47, 0.46]})
    text = findings.degradation_findings(results, QUICK.degradation_depths)
    assert "(seed 2 left out: a run without a finite final loss)" in text
    assert "t over n = 2 seeds' paired differences" in text


def test_cifar100_findings_set_the_dropout_arms_training_accuracy_beside_its_validation_and_chance():
    # The standard run of the student's post-add dropout learned a little in training mode (3.8%) while
    # its validation, in inference mode, stayed at chance (1%): the line puts the three side by side.
    results = _cifar100({R18: [0.30, 0.31], R18_DROPOUT: [0.011, 0.012], R20: [0.25, 0.25]},
                        {R18: [0.60, 0.60], R18_DROPOUT: [0.05, 0.05], R20: [0.5, 0.5]})
    for record, (train, val) in zip(results[R18_DROPOUT].records, ((0.038, 0.010), (0.036, 0.012))):
        record.history["accuracy"] = [0.02, train]
        record.history["val_accuracy"] = [0.011, val]
    text = findings.cifar100_findings(results)
    assert ("- **resnet18 + dropout 0.5 after add** at its last epoch: running training accuracy (training mode, "
            "dropout on) 3.7 +- 0.1 (n = 2), validation accuracy (inference mode) 1.1 +- 0.1 (n = 2); chance is 1.0%."
            ) in text


def _with_block_responses(results, inference, training):
    for record in results[(DEPTH, 0.0)].completed:
        record.diagnostics = {"block_responses": inference, "block_responses_training": training,
                              "block_response_epochs": list(range(len(next(iter(inference.values())))))}
    return results


def test_gate_findings_read_the_ungated_arms_block_responses_against_any_epsilon():
    # Responses grow with training (the standard run's case): no epsilon keeps every gate open at
    # initialisation and shuts one through training.
    growing = _with_block_responses(_gates({}), {"stage1_block1": [7.0, 9.0, 12.0], "stage2_block1": [1019.6, 10.0, 9.5]},
                                    {"stage1_block1": [6.4, 8.0, 12.1], "stage2_block1": [8.0, 9.0, 9.0]})
    text = findings.gate_findings(growing)
    line = next(line for line in text.splitlines() if line.startswith("- Without gates"))
    assert line.startswith(f"- Without gates, **depth {DEPTH}, eps 0**'s blocks' largest residual responses |F| on "
                           "the same batch: before training 6.4-8 in training mode (as `fit` sees them) and 7-1,020 at "
                           "inference; after training 9-12.1 and 9.5-12.")
    assert "Per seed: smallest 6.4 before, 9.5 after on every seed." in line
    assert "so at this budget no epsilon keeps every gate open at initialisation and shuts one through training" in line
    # A block that shrinks below the smallest initial response: the epsilon range that would show it.
    shrinking = _with_block_responses(_gates({}), {"stage1_block1": [7.0, 6.0, 5.0], "stage2_block1": [30.0, 10.0, 9.5]},
                                      {"stage1_block1": [6.4, 6.0, 5.2], "stage2_block1": [8.0, 9.0, 9.0]})
    line = next(line for line in findings.gate_findings(shrinking).splitlines() if line.startswith("- Without gates"))
    assert line.endswith("An epsilon between the two would keep every gate open at initialisation and shut at least "
                         "one block by the end of this ungated run: 5 to 6.4 on every seed.")
    # Records without block responses (written before they were recorded) add no line.
    assert "- Without gates" not in findings.gate_findings(_gates({}))
