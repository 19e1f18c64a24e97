"""Findings text computed from the arms' run records, never typed in.

Every sentence that says what happened is worded from this execution's
records (one per seed of each arm) by the rules of :mod:`helpers.intervals`:
a direction ("A beats B") is stated only when the interval of the
difference excludes zero with at least two seeds; otherwise the sentence
says that the budget does not resolve the comparison and gives the
interval. With the smoke profile's single seed every comparison therefore
comes out unresolved.

Each ``*_findings`` function takes the ``{key: ArmResult}`` mapping of
:func:`helpers.studies.run_study`, looks arms up by their keys (never by a
label) and returns Markdown bullets for the notebook's Findings cell. An arm
missing from the mapping leaves a sentence that says so instead of a number.

Imports numpy and the light helper modules only.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from helpers import intervals
from helpers.comparisons import (
    PER_ARM_HEADER, arm_block, arm_line, blow_up, bold, by_seed, chance_level, compare_line, flipped, join_words, loss_text,
    number, pairwise, percent, ranking_line, seed_of, seeds_text, values_text,
)

# A run "stayed at chance" when its best validation accuracy stayed below
# chance plus this margin (15% on CIFAR-10), or when it diverged.
CHANCE_MARGIN = 0.05
# The gradient "shrinks layer by layer on the way back" only when, on every
# seed, it falls at this share of the steps from one weight layer to the one
# before it and the first layer ends below the last.
STEADY_SHRINK_SHARE = 0.8



def _stuck(record, result) -> bool:
    """Diverged, or best validation (else test) accuracy below chance + margin."""
    if record.status == "diverged":
        return True
    value = record.best("val_accuracy") if "val_accuracy" in record.history else record.test_metric("accuracy")
    return not math.isfinite(value) or value < chance_level(result) + CHANCE_MARGIN


def _collapsed(record, result) -> bool:
    """Left chance, then fell back to it: best validation accuracy at least chance +
    margin, but the run diverged or ended below that (the spike and collapse)."""
    if "val_accuracy" not in record.history or not record.epochs_completed:
        return False
    threshold = chance_level(result) + CHANCE_MARGIN
    best = record.best("val_accuracy")
    if not math.isfinite(best) or best < threshold:
        return False
    final = record.final("val_accuracy")
    return record.status == "diverged" or not math.isfinite(final) or final < threshold


def _first_step_norms(record) -> list[float] | None:
    """Each weight layer's gradient norm before the first step, input layer first."""
    norms = (record.diagnostics or {}).get("gradient_norms") or {}
    values = [series[0] for series in norms.values() if series]
    values = [float(value) for value in values if value is not None and math.isfinite(value) and value > 0]
    return values if len(values) >= 2 else None


def _gradient_profile(record) -> dict | None:
    values = _first_step_norms(record)
    if values is None:
        return None
    steps = len(values) - 1
    # Going back from layer i + 1 to layer i, the norm shrinks when values[i] < values[i + 1].
    shrinking = sum(1 for index in range(steps) if values[index] < values[index + 1])
    ratio = values[0] / values[-1]
    return {"ratio": ratio, "shrinking": shrinking, "steps": steps, "median": float(np.median(values)),
            "steady": ratio < 1.0 and shrinking >= STEADY_SHRINK_SHARE * steps}


def _gradient_lines(results, outcome: Mapping[tuple, str]) -> list[str]:
    profiles = {}
    for key, result in results.items():
        found = [profile for profile in map(_gradient_profile, result.completed) if profile is not None]
        if found:
            profiles[key] = found
    if not profiles:
        return ["- No gradient norms were recorded, so nothing is said about gradients."]
    lines = []
    for key, found in profiles.items():
        ratios = [profile["ratio"] for profile in found]
        shrinking = join_words([f"{profile['shrinking']} of {profile['steps']}" for profile in found])
        if all(profile["steady"] for profile in found):
            verdict = "so the gradient shrinks layer by layer on the way back"
        elif float(np.mean(ratios)) < 1.0:
            verdict = "so it is smaller at the first layer than at the last, but does not shrink layer by layer"
        else:
            verdict = "so it does not shrink on the way back"
        lines.append(f"- {bold(results[key])}: before the first step the first weight layer's gradient norm is "
                     f"{values_text(ratios)} times the last layer's (median layer norm "
                     f"{values_text([profile['median'] for profile in found])}); going back from the last layer "
                     f"to the first it shrinks at {shrinking} steps between adjacent layers (per seed), {verdict}.")
    mean_ratio = {key: float(np.mean([profile["ratio"] for profile in found])) for key, found in profiles.items()}
    stuck = {key: ratio for key, ratio in mean_ratio.items() if outcome.get(key) == "stuck"}
    learned = {key: ratio for key, ratio in mean_ratio.items() if outcome.get(key) == "learned"}
    if not stuck or not learned:
        missing = "stayed at chance" if not stuck else "learned"
        lines.append(f"- No arm with gradient records {missing} on every seed, so the first/last ratio cannot be "
                     "set against the outcome.")
    elif max(stuck.values()) < min(learned.values()):
        lines.append(f"- Every arm that stayed at chance starts with a smaller first/last ratio (at most "
                     f"{number(max(stuck.values()))}) than every arm that learned (at least "
                     f"{number(min(learned.values()))}): consistent with gradients too small at the first layers.")
    else:
        stuck_key = max(stuck, key=stuck.get)
        learned_key = min(learned, key=learned.get)
        lines.append(f"- The first/last ratio does not separate the arms that learned from those that stayed at "
                     f"chance: {bold(results[learned_key])} learned with a ratio of {number(learned[learned_key])}, "
                     f"while {bold(results[stuck_key])} stayed at chance with {number(stuck[stuck_key])}. How "
                     "much the gradient shrinks on the way back at initialisation does not by itself explain which "
                     "arms stay at chance.")
    if stuck and learned:
        # The size of the whole gradient, seed by seed: every stuck seed's median against every learning one's.
        stuck_median = max(profile["median"] for key in stuck for profile in profiles[key])
        learned_median = min(profile["median"] for key in learned for profile in profiles[key])
        if stuck_median < learned_median:
            lines.append(f"- The size of the gradient does separate them: on every seed, every arm that stayed at "
                         f"chance starts with a median layer norm of at most {number(stuck_median)}, every arm "
                         f"that learned with at least {number(learned_median)} ({learned_median / stuck_median:,.0f} "
                         "times more). Before the first step the stuck arms' gradient is small at every layer, "
                         "not only at the first ones.")
        else:
            lines.append(f"- Nor does the size of the gradient: an arm that stayed at chance starts with a median "
                         f"layer norm of {number(stuck_median)}, an arm that learned with {number(learned_median)}.")
    return lines


def vgg_findings(results: Mapping[tuple, object]) -> str:
    """Which VGG-19 arms stayed at chance, what fixed it, and what the gradients show.

    Each seed's run is judged stuck when it diverged or its best validation
    accuracy stayed below chance + 5 points; an arm is "stuck" only when
    every seed was, "mixed" when some were. The fixes are compared on test
    accuracy with their intervals: batch norm at the high rate against the
    student's set-up (no batch norm, high rate), He against Glorot at the
    low rate, batch norm against none at the low rate. The gradient
    sentences are computed from each record's first-step norms
    (diagnostics "gradient_norms", entry 0): the first/last ratio, how many
    steps back between adjacent layers it shrinks, and whether that ratio,
    and the median layer norm (the gradient's overall size), separate the
    arms that learned from the arms that did not. Where the
    profile has the long arm (batch norm, high rate, cosine, a longer
    budget), it is compared with batch norm at the shared budget and its
    accuracy interval is set against the student's 70% (the summary table's
    rule).

    Used in: 01_vgg_gradients
    """
    lines = arm_block(results)
    outcome, groups = {}, {"stuck": [], "learned": [], "mixed": []}
    for key, result in results.items():
        if not result.completed:
            continue
        flags = [_stuck(record, result) for record in result.completed]
        outcome[key] = "stuck" if all(flags) else "learned" if not any(flags) else "mixed"
        label = bold(result)
        if outcome[key] == "mixed":
            label += f" (stuck on {sum(flags)} of {len(flags)} seeds)"
        groups[outcome[key]].append(label)
    if results:
        chance = chance_level(next(iter(results.values())))
        threshold = percent(chance + CHANCE_MARGIN)
        if groups["stuck"]:
            lines.append(f"- Stayed at or near chance ({percent(chance)}) on every seed (diverged, or best validation "
                         f"accuracy below {threshold}): {join_words(groups['stuck'])}.")
        if groups["learned"]:
            lines.append(f"- Learned on every seed (best validation accuracy at least {threshold}): "
                         f"{join_words(groups['learned'])}.")
        if groups["mixed"]:
            lines.append(f"- Mixed, stuck on some seeds and not others: {join_words(groups['mixed'])}.")
        collapsed = []
        for result in results.values():
            count = sum(1 for record in result.completed if _collapsed(record, result))
            if count:
                collapsed.append(f"{bold(result)} ({count} of {result.n} seeds)")
        if collapsed:
            lines.append(f"- Learned, then fell back to chance or diverged (the student's spike and collapse): "
                         f"{join_words(collapsed)}.")
        elif groups["stuck"]:
            lines.append("- No run learned and then collapsed: the stuck arms never left chance.")
    lines.append(compare_line(results, ("bn", "glorot", "sgd_high"), ("no_bn", "glorot", "sgd_high"),
                               "Batch norm at the high rate (the student's set-up)"))
    lines.append(compare_line(results, ("no_bn", "glorot", "sgd_high", "plateau"), ("no_bn", "glorot", "sgd_high"),
                               "The student's remedy, a plateau schedule, against the constant high rate"))
    lines.append(compare_line(results, ("no_bn", "he", "sgd_low"), ("no_bn", "glorot", "sgd_low"),
                               "He against Glorot initialisation at the low rate"))
    lines.append(compare_line(results, ("bn", "glorot", "sgd_low"), ("no_bn", "glorot", "sgd_low"),
                               "Batch norm against none at the low rate"))
    long, short = ("bn", "glorot", "sgd_high", "long"), ("bn", "glorot", "sgd_high")
    if long in results:
        lines.append(compare_line(results, long, short, (
            f"What the budget decides: batch norm at the high rate with cosine decay for "
            f"{results[long].config.num_epochs} epochs against the constant rate for "
            f"{results[short].config.num_epochs}") if short in results else "What the budget decides"))
        lines.append(f"- {bold(results[long])} against the student's VGG-19: {_student_vgg_line(results[long])}")
    # The long arm starts from the same weights as batch norm at the high rate: its first-step norms are those.
    lines.extend(_gradient_lines({key: result for key, result in results.items() if key != long}, outcome))
    return "\n".join(lines)


def _student_vgg_line(result) -> str:
    # The student's number is quoted in helpers.references; the verdict is the
    # summary table's rule (the whole accuracy interval above or below it).
    from helpers import summary
    from helpers.references import references_for

    quoted = summary.student_number(references_for("VGG-19 on CIFAR-10", "student"))
    if quoted is None:
        return "no student number is quoted for it."
    return summary.against_student_number(result, quoted.value)


# -- 02: schedules ---------------------------------------------------------------


def _rate_cuts(record) -> list[tuple[int, float, float]] | None:
    """(epoch after which the rate fell, rate before, rate after) for each fall."""
    if "learning_rate" not in record.history:
        return None
    rates, epochs = record.curve("learning_rate"), record.history.get("epoch", [])
    return [(epochs[index - 1], rates[index - 1], rates[index]) for index in range(1, min(len(rates), len(epochs)))
            if math.isfinite(rates[index]) and rates[index] < rates[index - 1] * (1 - 1e-6)]


def _same_curves(record_a, record_b, names=("loss", "accuracy", "val_loss", "val_accuracy")) -> bool:
    shared = [name for name in names if name in record_a.history and name in record_b.history]
    return bool(shared) and all(np.allclose(record_a.curve(name), record_b.curve(name), equal_nan=True)
                                for name in shared)


def _plateau_lines(results) -> list[str]:
    plateau, constant = results.get(("schedule", "plateau")), results.get(("schedule", "constant"))
    if plateau is None or not plateau.completed:
        return []
    patience = plateau.config.schedule_options.get("patience")
    intro = f"- Plateau rule (x{plateau.config.schedule_options.get('factor', 0.1):g}"
    intro += f", patience {patience} epoch{'s' if patience != 1 else ''})" if patience is not None else ")"
    constant_by_seed = {seed_of(record): record for record in (constant.completed if constant else [])}
    per_seed, never = [], []
    for record in plateau.completed:
        cuts = _rate_cuts(record)
        if cuts is None:
            per_seed.append(f"seed {seed_of(record)}: no learning-rate history recorded")
        elif cuts:
            per_seed.append(f"seed {seed_of(record)}: fired after epoch{'s' if len(cuts) > 1 else ''} "
                            + join_words([f"{epoch} ({before:.3g} to {after:.3g})" for epoch, before, after in cuts]))
        else:
            rate = record.curve("learning_rate")[0] if record.curve("learning_rate") else math.nan
            per_seed.append(f"seed {seed_of(record)}: never fired (the rate stayed at {rate:.3g} for all "
                            f"{record.epochs_completed} epochs)")
            never.append(record)
    lines = [f"{intro}: {'; '.join(per_seed)}."]
    twins, differing, lone = [], [], []
    for record in never:
        twin = constant_by_seed.get(seed_of(record))
        if twin is None or "learning_rate" not in twin.history:
            lone.append(record)
        elif not np.allclose(record.curve("learning_rate"), twin.curve("learning_rate")):
            differing.append(record)
        else:
            twins.append((record, _same_curves(record, twin)))
    if twins and len(twins) == len(plateau.completed):
        curves = all(same for _, same in twins)
        lines.append("- The plateau rule never fired on any seed: the plateau arm equals the constant arm in its "
                     "schedule (the same rate every epoch)" + (
                         " and in its recorded curves, so its curve lies under the constant one in the figure."
                         if curves else ", so its curve lies on the constant one's, apart from run-to-run noise."))
    elif twins:
        lines.append(f"- Where it never fired ({seeds_text([record for record, _ in twins])}) the plateau arm ran "
                     "the constant arm's schedule, the same rate every epoch.")
    if differing:
        lines.append(f"- On {seeds_text(differing)} the plateau arm never cut its rate, yet its rates differ from the "
                     "constant arm's, so the two are not the same schedule.")
    if lone:
        lines.append(f"- On {seeds_text(lone)} the plateau arm kept its starting rate throughout: a constant "
                     "schedule (no constant-arm record of that seed to set it against).")
    return lines


def schedule_findings(results: Mapping[tuple, object]) -> str:
    """Each schedule against the constant rate, a ranking where resolved, and the plateau rule.

    Step, plateau and cosine are each compared with the constant rate on
    test accuracy; every pair of schedules is compared, and an ordering is
    stated only for resolved pairs (a full ranking only when all are). For
    the plateau arm, each seed's recorded "learning_rate" history says
    whether and after which epoch the rule cut the rate; where it never
    did, the arm ran the constant arm's schedule. The long cosine arm is
    compared with cosine at the shared budget.

    Used in: 02_lr_schedules
    """
    lines = arm_block(results)
    keys = [key for key in (("schedule", name) for name in ("constant", "step", "plateau", "cosine"))
            if key in results]
    pairs = pairwise(results, keys)
    constant = ("schedule", "constant")
    for name in ("step", "plateau", "cosine"):
        key = ("schedule", name)
        if key not in results:
            continue
        known = pairs.get((constant, key))
        lines.append(compare_line(results, key, constant, f"{name.capitalize()} against constant",
                                   interval=None if known is None else flipped(known)))
    if len(keys) >= 2:
        lines.append(ranking_line(results, keys, pairs, "schedules"))
    lines.extend(_plateau_lines(results))
    long, cosine = ("schedule", "cosine", "long"), ("schedule", "cosine")
    if long in results and cosine in results:
        lines.append(compare_line(results, long, cosine, (
            f"What the budget decides: cosine at {results[long].config.num_epochs} epochs against cosine at "
            f"{results[cosine].config.num_epochs}")))
    return "\n".join(lines)


# -- 03: depth and stems ---------------------------------------------------------


def _final_loss_by_seed(result) -> dict[int, float]:
    return {seed_of(record): record.final("loss") for record in result.completed
            if record.epochs_completed and "loss" in record.history}


def degradation_findings(results: Mapping[tuple, object], depths: tuple[int, int]) -> str:
    """He et al.'s degradation test: the plain depth gap against the residual one.

    The plain gap is the final training loss of the deep plain net minus the
    shallow one's; the residual gap likewise. A higher loss at depth alone
    is not degradation (a deeper net may just train more slowly at a short
    budget): "degradation shown" is stated only when the plain gap exceeds
    the residual gap with a 95% t-interval over the seeds' paired gap
    differences that excludes zero (one seed: unresolved). The deep
    residual net is also compared with the deep plain one on test accuracy.

    Used in: 03_resnet_depth
    """
    shallow, deep = depths
    keys = [(kind, depth) for kind in ("plain", "residual") for depth in (shallow, deep)]
    lines = arm_block(results)
    missing = [repr(key) for key in keys if key not in results]
    if missing:
        lines.append(f"- The depth gaps need all four arms; {join_words(missing)} not in these results.")
        return "\n".join(lines)
    losses = {key: _final_loss_by_seed(results[key]) for key in keys}
    seeds = sorted(set.intersection(*(set(values) for values in losses.values())))
    seeds = [seed for seed in seeds if all(math.isfinite(losses[key][seed]) for key in keys)]
    names = {key: results[key].label for key in keys}
    lines.append("- Final training loss (mean +- standard deviation over seeds): " + "; ".join(
        f"{names[key]} {loss_text(list(losses[key].values()))}" for key in keys) + ".")
    if not seeds:
        lines.append("- No seed has a finite final training loss in all four arms, so the gaps are not computed.")
        return "\n".join(lines)
    left_out = sorted(set().union(*(set(values) for values in losses.values())) - set(seeds))
    plain_gap = [losses["plain", deep][seed] - losses["plain", shallow][seed] for seed in seeds]
    residual_gap = [losses["residual", deep][seed] - losses["residual", shallow][seed] for seed in seeds]
    difference = [p - r for p, r in zip(plain_gap, residual_gap)]
    lines.append(f"- Depth gap in final training loss, {deep} layers minus {shallow}: plain "
                 f"{loss_text(plain_gap, signed=True)}, residual {loss_text(residual_gap, signed=True)}"
                 + (f" (seed{'s' if len(left_out) > 1 else ''} {join_words([str(s) for s in left_out])} left out: a "
                    "run without a finite final loss)" if left_out else "") + ".")
    if min(np.mean(plain_gap), np.mean(residual_gap)) > 0:
        lines.append("- Both deeper nets end with a higher training loss than their shallow versions, so a higher "
                     "loss at depth on its own is not the degradation problem; the difference between the two "
                     "gaps is.")
    mean = float(np.mean(difference))
    count = len(difference)
    if count < intervals.MINIMUM_SEEDS_FOR_A_CLAIM:
        lines.append(f"- Plain gap minus residual gap: {mean:+.3f} (n = 1 seed). One seed gives no interval, so "
                     "whether the plain net degrades more with depth is unresolved.")
    else:
        half = intervals.t_quantile(0.975, count - 1) * float(np.std(difference, ddof=1)) / math.sqrt(count)
        low, high = mean - half, mean + half
        interval = (f"{mean:+.3f} (95% interval {low:+.3f} to {high:+.3f}; t over n = {count} seeds' paired "
                    "differences)")
        if low > 0:
            lines.append(f"- **Degradation shown**: adding depth raised the plain net's training loss more than "
                         f"the residual net's, plain gap minus residual gap {interval}. It is the training loss "
                         "that degrades, so this is an optimisation failure that the shortcuts reduce, as He et al. "
                         "report.")
        elif high < 0:
            lines.append(f"- The reverse of degradation: adding depth raised the residual net's training loss more "
                         f"than the plain net's, plain gap minus residual gap {interval}.")
        else:
            lines.append(f"- The budget does not resolve the plain depth gap from the residual one: plain gap minus "
                         f"residual gap {interval}. Degradation is not shown.")
    lines.append(compare_line(results, ("residual", deep), ("plain", deep), f"At depth {deep}, shortcuts"))
    return "\n".join(lines)


def stem_findings(results: Mapping[tuple, object]) -> str:
    """The CIFAR stem against the ImageNet stem, per model, on test accuracy.

    Used in: 03_resnet_depth
    """
    lines = arm_block(results)
    models = list(dict.fromkeys(key[0] for key in results))
    for model in models:
        lines.append(compare_line(results, (model, "cifar"), (model, "imagenet"),
                                   f"{model}, CIFAR stem against ImageNet stem"))
    return "\n".join(lines)


# -- 04: dropout -----------------------------------------------------------------


def _has_dropout(config) -> bool:
    options = config.model_options
    return any(float(options.get(name) or 0) > 0 for name in ("block_dropout", "classifier_dropout",
                                                               "post_add_dropout"))


def dropout_findings(results: Mapping[tuple, object]) -> str:
    """Each regulariser against none (where the profile runs the bare arm),
    the student's dropout alone against augmentation + weight decay alone,
    dropout on top of augmentation + weight decay, and the student's puzzle
    (validation accuracy above training).

    The puzzle is read from the last epoch: the training accuracy is a
    running mean over the epoch with dropout active (and on augmented images
    where augmentation is on); the validation accuracy is measured after the
    epoch with neither. Means over seeds, and the seeds where validation is
    above training. Where the records hold ``train_eval_accuracy`` (training
    images in inference mode, ``ExperimentConfig.train_eval_size``), it is
    set beside both: if validation is no longer above it, training-mode
    conditions explain the puzzle.

    Used in: 04_dropout
    """
    lines = arm_block(results)
    none = ("none",)
    if none in results:  # a profile may leave it out (Profile.left_out)
        for key, result in results.items():
            if key != none:
                lines.append(compare_line(results, key, none, f"{result.label} against no regularisation"))
    lines.append(compare_line(results, ("student_dropout",), ("augmentation_weight_decay",),
                               "The student's dropout alone against augmentation + weight decay alone"))
    lines.append(compare_line(results, ("augmentation_weight_decay", "student_dropout"),
                               ("augmentation_weight_decay",), "Student dropout on top of augmentation + weight decay"))
    above, shown, clean_gaps = [], 0, []
    for key, result in results.items():
        records = [record for record in result.completed
                   if record.epochs_completed and "accuracy" in record.history and "val_accuracy" in record.history]
        if not records:
            continue
        shown += 1
        train = [record.final("accuracy") for record in records]
        val = [record.final("val_accuracy") for record in records]
        higher = sum(1 for t, v in zip(train, val) if v > t)
        gap = float(np.nanmean(np.subtract(val, train)))
        regularised = [name for name, on in (("dropout", _has_dropout(result.config)),
                                             ("augmentation", result.config.augment)) if on]
        clean = [record.final("train_eval_accuracy") for record in records if "train_eval_accuracy" in record.history]
        clean_text = ""
        if len(clean) == len(records):
            clean_gap = float(np.nanmean(np.subtract(val, clean)))
            clean_text = (f"; the same net on {result.config.train_eval_size:,} training images in inference mode "
                          f"(dropout off, un-augmented) {intervals.format_mean_spread(clean)}, "
                          f"{100 * clean_gap:+.1f} points from validation")
            clean_gaps.append((result, float(np.nanmean(clean)) - float(np.nanmean(train)), clean_gap))
        lines.append(f"- {bold(result)} ({join_words(regularised) or 'neither dropout nor augmentation'}), last epoch: "
                     f"running training accuracy {intervals.format_mean_spread(train)}, validation "
                     f"{intervals.format_mean_spread(val)}; validation minus training {100 * gap:+.1f} points, "
                     f"validation above training on {higher} of {len(records)} seeds{clean_text}.")
        if gap > 0:
            above.append((result, regularised))
    if shown:
        if above:
            with_either = [result for result, regularised in above if regularised]
            lines.append("- Validation accuracy is above training accuracy (mean over seeds) for "
                         + join_words([bold(result) for result, _ in above]) + ". The training figure is a running mean "
                         "over the epoch with dropout active and on augmented images; the validation figure is "
                         "measured at the epoch's end with neither.")
            if len(with_either) == len(above):
                lines.append("- Only arms with dropout or augmentation show validation above training here.")
            else:
                lines.append("- Arms without dropout or augmentation show it too ("
                             + join_words([bold(result) for result, regularised in above if not regularised])
                             + "), so those two are not the whole explanation.")
        else:
            lines.append("- In no arm is the mean validation accuracy above the training accuracy at the last epoch.")
    if clean_gaps:
        gap_of = {id(result): gap for result, _, gap in clean_gaps}
        puzzle = [result for result, _ in above if id(result) in gap_of]
        lifted = sum(1 for _, lift, _ in clean_gaps if lift > 0)
        line = (f"- In inference mode the training images score above the running training accuracy in {lifted} "
                f"of {len(clean_gaps)} arms.")
        if puzzle:
            explained = [bold(result) for result in puzzle if gap_of[id(result)] <= 0]
            unexplained = [bold(result) for result in puzzle if gap_of[id(result)] > 0]
            if explained:
                line += (" Where validation was above the running figure, scoring the training images as validation "
                         "is scored puts them at or above validation in " + join_words(explained)
                         + ": there the puzzle is the running figure's training-mode conditions (dropout, "
                         "augmentation, a mean over an epoch of moving weights).")
            if unexplained:
                line += (" Validation stays above them even so in " + join_words(unexplained)
                         + ": inference mode does not account for the puzzle there.")
        lines.append(line)
    return "\n".join(lines)


# -- 05: cyclical rates ----------------------------------------------------------


def cyclical_findings(results: Mapping[tuple, object]) -> str:
    """One-cycle, triangular CLR, the short one-cycle and the high-peak one-cycle
    (super-convergence), each against step decay; and the high peak against
    one-cycle at the range test's maximum.

    Used in: 05_cyclical_lr
    """
    lines = arm_block(results)
    step = ("schedule", "step")
    for name in ("onecycle", "clr", "onecycle_short", "superconvergence"):
        key = ("schedule", name)
        if key not in results:
            continue
        note = ""
        if step in results and results[key].config.num_epochs != results[step].config.num_epochs:
            epochs = results[key].config.num_epochs
            note = (f" ({epochs} epoch{'s' if epochs != 1 else ''} against step decay's "
                    f"{results[step].config.num_epochs}.)")
        lines.append(compare_line(results, key, step, f"{results[key].label} against step decay", note=note))
    high, peak = ("schedule", "superconvergence"), ("schedule", "onecycle")
    if high in results and peak in results:
        lines.append(compare_line(results, high, peak, f"{results[high].label} against {results[peak].label}"))
    return "\n".join(lines)


# -- 06: epsilon gates -----------------------------------------------------------


def weight_decay_shrink(config, steps_per_epoch: int) -> float:
    """How much weight decay alone shrinks a weight over a run's schedule.

    For a weight whose data gradient is negligible (a branch the network
    does not use), coupled decay with heavy-ball momentum m shrinks it by
    about ``learning_rate * decay / (1 - m)`` per step once momentum has
    built up (decoupled decay: ``learning_rate * decay``). The product over
    the run is ``exp(-sum of those)``; the rate is sampled at the middle of
    each epoch. Plateau schedules are taken at their starting rate, an
    upper bound on the shrinking.

    Used in: 06_sparse_gates
    """
    from helpers.schedules import learning_rate_at, make_schedule

    schedule = make_schedule(config.schedule, learning_rate=config.learning_rate, steps_per_epoch=steps_per_epoch,
                             num_epochs=config.num_epochs, **dict(config.schedule_options))
    rate_sum = sum(learning_rate_at(schedule, epoch * steps_per_epoch + steps_per_epoch // 2) * steps_per_epoch
                   for epoch in range(config.num_epochs))
    per_unit = config.weight_decay
    if config.weight_decay_mode == "coupled" and config.optimizer == "sgd":
        per_unit /= 1.0 - config.momentum
    return math.exp(-per_unit * rate_sum)


def _depth_and_epsilon(key, result) -> tuple[object, float]:
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], (int, float)):
        return key[0], float(key[1])
    epsilon = result.config.model_options.get("epsilon")
    return result.config.model, float(epsilon or 0.0)


def _blow_up(record, result) -> str | None:
    """Why this run's numbers are a blow-up rather than a result, or None."""
    reasons = [reason] if (reason := blow_up(record)) else []
    test = record.test_metric("accuracy")
    if not math.isfinite(test) or test < chance_level(result) + CHANCE_MARGIN:
        reasons.append(f"test accuracy {percent(test)}, chance is {percent(chance_level(result))}")
    return "; ".join(reasons) or None


def _gate_count_text(result) -> str:
    per_seed = []
    for record in result.completed:
        total = len(record.diagnostics.get("gates") or {}) or int(record.diagnostics.get("num_gated_blocks") or 0)
        counts = record.diagnostics.get("discarded_blocks") or []
        if total:
            per_seed.append((seed_of(record), f"{counts[-1] if counts else 0} of {total}"))
    if not per_seed:
        return "no gates (epsilon 0)"
    return f"blocks discarded at the end: {by_seed(per_seed)}"


def _response_line(result, epsilon: float) -> str | None:
    records = [record for record in result.completed if (record.diagnostics or {}).get("gate_responses")]
    if not records:
        return None
    first, last, below, training = [], [], [], []
    for record in records:
        responses = record.diagnostics["gate_responses"]
        first += [values[0] for values in responses.values() if values]
        final = [values[-1] for values in responses.values() if values]
        last += final
        below.append((seed_of(record), f"{sum(1 for value in final if value <= epsilon)} of {len(final)}"))
        counts = record.diagnostics.get("discarded_blocks_training") or []
        inference = (record.diagnostics.get("discarded_blocks") or [None])[-1]
        if counts:
            training.append((seed_of(record), f"{counts[-1]} gated off in training mode against {inference} at "
                                            "inference"))
    text = (f"- {bold(result)}: each block's largest residual response |F| spanned {min(first):.3g}-{max(first):.3g} "
            f"before training and {min(last):.3g}-{max(last):.3g} after it, against epsilon {epsilon:g}; blocks at "
            f"or below it at the end: {by_seed(below)}.")
    if training:
        text += (" On the same batch with batch norm on the batch's statistics, as `fit` sees the gates: "
                 + by_seed(training) + ".")
    return text


def _when_closed_line(result) -> str | None:
    """Which of an arm's discarded blocks were shut before training and which closed during it.

    From each record's per-block inference-mode gates (index 0 is before
    the first epoch) and its training-mode counts. A gate shut before
    training was not closed by training, which is not the paper's
    mechanism: a trained branch that weight decay shrinks below epsilon.
    A block shut at inference may still be open in training mode (batch
    norm on the batch's statistics), so the training-mode counts are given
    beside.
    """
    at_start, during, reopened, training = [], [], [], []
    shut_counts, closed_counts = [], []
    for record in result.completed:
        gates = (record.diagnostics or {}).get("gates") or {}
        gates = {block: values for block, values in gates.items() if values}
        if not gates or len(next(iter(gates.values()))) < 2:
            continue
        seed = seed_of(record)
        shut = [block for block, values in gates.items() if values[0] == 0.0]
        closed = [block for block, values in gates.items() if values[0] != 0.0 and values[-1] == 0.0]
        opened = [block for block, values in gates.items() if values[0] == 0.0 and values[-1] != 0.0]
        shut_counts.append(len(shut))
        closed_counts.append(len(closed))
        at_start.append((seed, str(len(shut))))
        during.append((seed, f"{len(closed)}" + (f" ({', '.join(closed)})" if closed else "")))
        reopened.append((seed, str(len(opened))))
        counts = record.diagnostics.get("discarded_blocks_training") or []
        if len(counts) >= 2:
            training.append((seed, f"{counts[0]} and {counts[-1]}"))
    if not at_start:
        return None
    text = (f"- When {bold(result)}'s gates shut (inference mode, before training against after each epoch): "
            f"already shut before training: {by_seed(at_start)}; closed during training: {by_seed(during)}; "
            f"shut before training but open at the end: {by_seed(reopened)}.")
    if training:
        text += f" Gated off in training mode, as `fit` sees them, before training and at the end: {by_seed(training)}."
    any_shut = any(shut_counts)
    every_closed = all(closed_counts)
    if every_closed and not any_shut:
        text += " So on every seed the gates closed through training, none at initialisation."
    elif every_closed:
        text += (" So gates closed through training on every seed, but some were already shut at initialisation: "
                 "their discarding was not decided by training, which is not the paper's mechanism (a trained "
                 "branch that weight decay shrinks below epsilon).")
    elif any_shut:
        text += (" So the blocks discarded here were decided at initialisation, not by training: this epsilon "
                 "does not show the gates closing through training.")
    else:
        text += " No gate closed at this budget."
    return text


def _size(value: float) -> str:
    # Three significant figures, without an exponent for the responses in the thousands.
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _span(values) -> str:
    return f"{_size(min(values))}-{_size(max(values))}"


def _ungated_response_lines(results) -> list[str]:
    """What the ungated arm's block responses say about any epsilon at this budget.

    A gate is open at initialisation, in both modes, exactly when epsilon is
    below the block's response before training; it is shut after training
    when epsilon is at or above its response (at inference) then. So some
    epsilon keeps every gate open at initialisation and shuts one by the end
    exactly when the smallest response after training is below the smallest
    before it. Read from an ungated run, where no gate has steered training.
    """
    lines = []
    for key, result in results.items():
        if _depth_and_epsilon(key, result)[1] > 0:
            continue
        records = [record for record in result.completed if (record.diagnostics or {}).get("block_responses")]
        if not records:
            continue
        before_training, before_inference, after_training, after_inference, verdicts = [], [], [], [], []
        for record in records:
            inference = [values for values in record.diagnostics["block_responses"].values() if values]
            training = [values for values in (record.diagnostics.get("block_responses_training") or {}).values()
                        if values]
            before_inference += [values[0] for values in inference]
            after_inference += [values[-1] for values in inference]
            before_training += [values[0] for values in training]
            after_training += [values[-1] for values in training]
            smallest_before = min([values[0] for values in inference] + [values[0] for values in training])
            smallest_after = min(values[-1] for values in inference)
            verdicts.append((seed_of(record), smallest_before, smallest_after))
        text = (f"- Without gates, {bold(result)}'s blocks' largest residual responses |F| on the same batch: before "
                f"training {_span(before_training)} in training mode (as `fit` sees them) and "
                f"{_span(before_inference)} at inference; after training {_span(after_training)} and "
                f"{_span(after_inference)}.")
        pairs = [(seed, f"smallest {before:.3g} before, {after:.3g} after") for seed, before, after in verdicts]
        text += f" Per seed: {by_seed(pairs)}."
        if all(after >= before for _, before, after in verdicts):
            text += (" No block's response falls below the smallest one at initialisation, so at this budget no "
                     "epsilon keeps every gate open at initialisation and shuts one through training: the responses "
                     "grow with training here rather than shrink, as the paper's gates need over hundreds of epochs "
                     "of weight decay.")
        else:
            open_seeds = [(seed, f"{after:.3g} to {before:.3g}") for seed, before, after in verdicts if after < before]
            text += (" An epsilon between the two would keep every gate open at initialisation and shut at least "
                     f"one block by the end of this ungated run: {by_seed(open_seeds)}.")
        lines.append(text)
    return lines


def gate_findings(results: Mapping[tuple, object], full_recipe=None, full_steps_per_epoch: int | None = None) -> str:
    """Blocks discarded and why, blow-ups flagged, and each gated arm against the ungated one.

    Per arm over seeds: blocks discarded at the end; each block's recorded
    response against epsilon before and after training, and the count gated
    off in training mode against inference; which discarded blocks were
    already shut before training and which closed during it; for an ungated
    arm that recorded its blocks' responses, whether any epsilon would keep
    every gate open at initialisation yet shut one by the end; how much weight decay alone
    would shrink an unused branch over this run (and over ``full_recipe``,
    a configuration of the full profile, with ``full_steps_per_epoch``).
    A run whose validation loss is non-finite or above ten times its
    training loss, or whose test accuracy stays near chance, is flagged as
    blown up, so its accuracy is not read as a gate effect. Each gated arm
    is compared on test accuracy with the ungated (epsilon 0) arm of its
    depth.

    Used in: 06_sparse_gates
    """
    lines = [PER_ARM_HEADER, ""]
    for result in results.values():
        line = arm_line(result)
        lines.append(line[:-1] + f"; {_gate_count_text(result)}." if result.completed else line)
    lines.append("")
    blown = {}
    for key, result in results.items():
        response = _response_line(result, _depth_and_epsilon(key, result)[1])
        if response:
            lines.append(response)
        when = _when_closed_line(result)
        if when:
            lines.append(when)
        reasons = [(seed_of(record), _blow_up(record, result)) for record in result.completed]
        reasons = [(seed, reason) for seed, reason in reasons if reason]
        if reasons:
            blown[key] = True
            lines.append(f"- **Blown up**: {bold(result)} on {len(reasons)} of {result.n} seeds: "
                         f"{by_seed(reasons)}. Its test accuracy reflects the blow-up, not an effect of the gates.")
    lines.extend(_ungated_response_lines(results))
    gated = [result for key, result in results.items() if _depth_and_epsilon(key, result)[1] > 0
             and any(record.diagnostics.get("gate_responses") for record in result.completed)]
    if gated:
        record = next(record for record in gated[0].completed if record.diagnostics.get("gate_responses"))
        steps = int(record.data.get("steps_per_epoch") or 0)
        if steps:
            shrink = weight_decay_shrink(record.config, steps)
            text = (f"- Weight decay ({record.config.weight_decay:g}) alone would shrink an unused branch's weights "
                    f"to {100 * shrink:.1f}% of their size over this run ({record.config.num_epochs} epochs of "
                    f"{steps} steps)")
            if full_recipe is not None and full_steps_per_epoch:
                full = weight_decay_shrink(full_recipe, full_steps_per_epoch)
                text += (f", against {100 * full:.1f}% over the full recipe ({full_recipe.num_epochs} epochs of "
                         f"{full_steps_per_epoch} steps)")
            if shrink > 0.9:
                text += (". Discarding a block needs its branch to shrink below epsilon; at this budget decay has "
                         "barely begun, so which blocks are discarded is decided mostly by how large their responses "
                         "start")
            lines.append(text + ".")
    for key, result in results.items():
        depth, epsilon = _depth_and_epsilon(key, result)
        if epsilon <= 0:
            continue
        ungated = next((other for other, candidate in results.items()
                        if _depth_and_epsilon(other, candidate) == (depth, 0.0)), None)
        intro = f"Depth {depth}, epsilon {epsilon:g} against epsilon 0"
        if ungated is None:
            lines.append(f"- {intro}: no ungated arm of depth {depth} in these results.")
            continue
        flagged = [results[k].label for k in (key, ungated) if blown.get(k)]
        note = (f" ({join_words(flagged)} blew up: this difference is not a gate effect.)" if flagged else "")
        lines.append(compare_line(results, key, ungated, intro, note=note))
    return "\n".join(lines)


# -- 07: CIFAR-100 ---------------------------------------------------------------


def cifar100_findings(results: Mapping[tuple, object]) -> str:
    """Top-1 and top-5 per arm, and the student's dropout on ResNet-18, with
    intervals; the student's ResNet-50 (ImageNet stem) against the CIFAR-stem
    net; ResNet-110's cost per epoch and its accuracy after its epochs beside
    ResNet-18's after as many.

    Used in: 07_cifar100
    """
    lines = arm_block(results)
    for metric, what in (("accuracy", "test top-1 accuracy"), ("top5_accuracy", "test top-5 accuracy")):
        lines.append(compare_line(results, ("resnet18", "post_add_dropout"), ("resnet18",),
                                   f"Dropout after the add in ResNet-18, {what.split()[1]}", metric=metric, what=what))
    lines.extend(_training_against_validation_line(results, ("resnet18", "post_add_dropout")))
    student50, cifar50, r18 = ("resnet50", "imagenet"), ("resnet50",), ("resnet18",)
    if student50 in results and cifar50 in results:
        lines.append(compare_line(results, cifar50, student50, "ResNet-50, CIFAR stem against the student's ImageNet "
                                  "stem, top-1"))
    elif student50 in results and r18 in results:
        lines.append(compare_line(results, r18, student50, (
            "The student's ResNet-50 (ImageNet stem) against ResNet-18 with the CIFAR stem, top-1 (they differ in "
            "depth and stem; 03_resnet_depth compares the stems alone)")))
    lines.extend(_deep_net_lines(results, ("resnet110",), r18))
    return "\n".join(lines)


def _training_against_validation_line(results, key) -> list[str]:
    """An arm's last-epoch running training accuracy (training mode: dropout on, batch norm on the
    batch) beside its last validation accuracy (inference mode), and chance: a net that learns only
    with dropout on shows a gap here."""
    result = results.get(key)
    if result is None or not result.completed:
        return []
    training = [record.history["accuracy"][-1] for record in result.completed if record.history.get("accuracy")]
    validation = [record.history["val_accuracy"][-1] for record in result.completed
                  if record.history.get("val_accuracy")]
    if not training or not validation:
        return []
    return [f"- {bold(result)} at its last epoch: running training accuracy (training mode, dropout on) "
            f"{intervals.format_mean_spread(training)}, validation accuracy (inference mode) "
            f"{intervals.format_mean_spread(validation)}; chance is {percent(chance_level(result))}."]


def _validation_at(result, epoch: int) -> list[float]:
    """Each seed's validation accuracy after ``epoch`` (1-based), where it got that far."""
    values = []
    for record in result.completed:
        curve = record.history.get("val_accuracy") or []
        if len(curve) >= epoch and math.isfinite(curve[epoch - 1]):
            values.append(curve[epoch - 1])
    return values


def _deep_net_lines(results, deep_key, reference_key) -> list[str]:
    """What a deep net's records say about why it trains badly at a student's budget:
    its cost per epoch against the reference net's, and both nets' validation
    accuracy after the deep net's last epoch."""
    if deep_key not in results or reference_key not in results:
        return []
    deep, reference = results[deep_key], results[reference_key]
    if not deep.completed or not reference.completed:
        return []
    epochs = min(record.epochs_completed for record in deep.completed)
    if epochs < 1:
        return []
    deep_seconds, reference_seconds = deep.seconds_per_epoch(), reference.seconds_per_epoch()
    lines = []
    if math.isfinite(deep_seconds) and math.isfinite(reference_seconds) and reference_seconds > 0:
        lines.append(f"- {bold(deep)} costs {deep_seconds:,.0f} s per epoch against {reference_seconds:,.0f} s for "
                     f"{bold(reference)} ({deep_seconds / reference_seconds:.1f} times), so a fixed time budget "
                     f"gives it {reference_seconds / deep_seconds:.2f} of the other's epochs.")
    deep_values, reference_values = _validation_at(deep, epochs), _validation_at(reference, epochs)
    if deep_values and reference_values:
        lines.append(f"- After {epochs} epoch{'s' if epochs != 1 else ''}, validation top-1: {bold(deep)} "
                     f"{intervals.format_mean_spread(deep_values)}, {bold(reference)} "
                     f"{intervals.format_mean_spread(reference_values)} (the same number of epochs; "
                     f"{bold(reference)} then trains on to {reference.config.num_epochs}).")
    return lines
