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

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from helpers import intervals

# A run "stayed at chance" when its best validation accuracy stayed below
# chance plus this margin (15% on CIFAR-10), or when it diverged.
CHANCE_MARGIN = 0.05
# Validation loss above this multiple of the training loss marks a blow-up.
BLOW_UP_FACTOR = 10.0
# The gradient "shrinks layer by layer on the way back" only when, on every
# seed, it falls at this share of the steps from one weight layer to the one
# before it and the first layer ends below the last.
STEADY_SHRINK_SHARE = 0.8

PER_ARM_HEADER = "Per arm (accuracies in percent: mean +- standard deviation over seeds, n = seeds):"


# -- small formatting helpers ----------------------------------------------------


def _pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _number(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else "n/a"


def _values_text(values: Sequence[float], digits: int = 2) -> str:
    """ "0.056 +- 0.004 (n = 2)" for values that are not percentages."""
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if not finite:
        return "n/a"
    mean, spread, count = intervals.mean_and_spread(finite)
    if spread is None:
        return f"{_number(mean, digits)} (n = 1)"
    return f"{_number(mean, digits)} +- {_number(spread, digits)} (n = {count})"


def _loss_text(values: Sequence[float], signed: bool = False) -> str:
    """ "+0.488 +- 0.012 (n = 2)": losses to three decimals."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return "n/a"
    mean, spread, count = intervals.mean_and_spread(finite)
    sign = "+" if signed else ""
    if spread is None:
        return f"{mean:{sign}.3f} (n = 1)"
    return f"{mean:{sign}.3f} +- {spread:.3f} (n = {count})"


def _chance(result) -> float:
    return 1.0 / (100 if result.config.dataset == "cifar100" else 10)


def _seed(record) -> int:
    return record.config.seed


def _seeds_text(records) -> str:
    """ "seed 1" or "seeds 0 and 2"."""
    return ("seed " if len(records) == 1 else "seeds ") + _join([str(_seed(record)) for record in records])


def _by_seed(pairs: Sequence[tuple[int, str]]) -> str:
    """ "3 of 9 on every seed", "3 of 9 (seed 0)" or "3 of 9 (seed 0) and 4 of 9 (seed 1)"."""
    texts = [text for _, text in pairs]
    if len(pairs) > 1 and len(set(texts)) == 1:
        return f"{texts[0]} on every seed"
    return _join([f"{text} (seed {seed})" for seed, text in pairs])


def _bold(result) -> str:
    return f"**{result.label}**"


# -- one arm over its seeds ------------------------------------------------------


def _status_text(result) -> str:
    total = len(result.records)
    parts = []
    completed = sum(1 for record in result.completed if record.status == "completed")
    if completed:
        parts.append(f"{completed} of {total} completed")
    diverged = sorted(record.diverged_epoch or record.epochs_completed
                      for record in result.completed if record.status == "diverged")
    if diverged:
        epochs = _join([str(epoch) for epoch in diverged])
        parts.append(f"{len(diverged)} of {total} diverged at epoch{'s' if len(diverged) > 1 else ''} {epochs}")
    for status in sorted({record.status for record in result.completed} - {"completed", "diverged"}):
        count = sum(1 for record in result.completed if record.status == status)
        parts.append(f"{count} of {total} {status}")
    missing = total - result.n
    if missing:
        parts.append(f"{missing} of {total} not run")
    return ", ".join(parts)


def arm_line(result) -> str:
    """One bullet for an arm over its seeds.

    Status counts ("2 of 2 completed", "1 of 2 diverged at epoch 3"), epochs,
    test accuracy, best validation accuracy and, where recorded, test top-5
    accuracy, each as mean +- standard deviation over seeds in percent
    (:func:`helpers.intervals.format_mean_spread`).

    Used in: 01_vgg_gradients through 07_cifar100
    """
    if not result.completed:
        return f"- {_bold(result)}: no record of this arm (0 of {len(result.records)} seeds run)."
    epochs = sorted({record.epochs_completed for record in result.completed})
    epoch_text = (f"{epochs[0]} epochs" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]} epochs")
    parts = [f"test accuracy {intervals.format_mean_spread(result.test_values('accuracy'))}"]
    if any("val_accuracy" in record.history for record in result.completed):
        parts.append(f"best validation accuracy {intervals.format_mean_spread(result.best_values('val_accuracy'))}")
    if any("top5_accuracy" in record.test for record in result.completed):
        parts.append(f"test top-5 accuracy {intervals.format_mean_spread(result.test_values('top5_accuracy'))}")
    return f"- {_bold(result)} ({_status_text(result)}, {epoch_text}): {'; '.join(parts)}."


def _arm_block(results: Mapping[tuple, object]) -> list[str]:
    return [PER_ARM_HEADER, "", *(arm_line(result) for result in results.values()), ""]


# -- comparisons -----------------------------------------------------------------


def _digests(result) -> set:
    return {record.test_predictions.get("labels_digest") for record in result.completed}


def compare(result_a, result_b, metric: str = "accuracy") -> intervals.Interval:
    """Test ``metric`` of arm A minus arm B, paired over test images and seeds.

    Args:
        result_a, result_b: :class:`helpers.studies.ArmResult` of the two arms.
        metric: "accuracy" or "top5_accuracy".

    Returns:
        :func:`helpers.intervals.difference_interval` of the per-image scores
        (fractions: 0.03 is 3 points).

    Raises:
        ValueError: naming the arm, when one of its records holds no
            per-image test scores (missing from the cache, or written before
            they were kept), or when the two arms were scored on different
            test images.

    Used in: 01_vgg_gradients through 07_cifar100
    """
    scores = []
    for result in (result_a, result_b):
        correct = result.test_correct(metric)
        if correct is None:
            raise ValueError(
                f"Arm {result.label!r} has no per-image test scores for {metric!r}, so it cannot be compared "
                "image by image: a seed's record is missing or was written before per-image scores were kept. "
                f"Run the study again to complete its records. Received: {result.n} of {len(result.records)} "
                "records")
        scores.append(correct)
    digests_a, digests_b = _digests(result_a), _digests(result_b)
    if len(digests_a) == 1 and len(digests_b) == 1 and digests_a != digests_b:
        raise ValueError(f"Arms {result_a.label!r} and {result_b.label!r} were scored on different test images, "
                         "so they cannot be paired. Received: two different label digests")
    return intervals.difference_interval(scores[0], scores[1])


def _flipped(interval: intervals.Interval) -> intervals.Interval:
    # 0.0 - x, not -x: an estimate of exactly zero stays "+0.0", not "-0.0".
    return dataclasses.replace(interval, estimate=0.0 - interval.estimate, low=0.0 - interval.high,
                               high=0.0 - interval.low)


def comparison_sentence(result_a, result_b, metric: str = "accuracy", what: str = "test accuracy",
                        interval: intervals.Interval | None = None) -> str:
    """One sentence comparing two arms, with its interval.

    A direction is stated only when the interval is resolved (at least two
    seeds and zero excluded): "**A** beats **B** on test accuracy by 3.2
    points (95% interval 1.0 to 5.4; n = 2 seeds, 1,000 test images)." (the
    winner named first, whichever it is). Otherwise: "The budget does not
    resolve **A** against **B** on test accuracy: A minus B = +1.0 points
    (95% interval ...)", with ", and one seed cannot support a claim" when
    there is one seed.

    Args:
        metric: The per-image score compared ("accuracy", "top5_accuracy").
        what: How the sentence names it.
        interval: A :func:`compare` result already computed for these arms.

    Raises:
        ValueError: as :func:`compare`.

    Used in: 01_vgg_gradients through 07_cifar100
    """
    if interval is None:
        interval = compare(result_a, result_b, metric)
    if interval.resolved:
        if interval.estimate > 0:
            winner, loser, shown = result_a, result_b, interval
        else:
            winner, loser, shown = result_b, result_a, _flipped(interval)
        return f"{_bold(winner)} beats {_bold(loser)} on {what} by {shown.points(signed=False)}."
    text = (f"The budget does not resolve {_bold(result_a)} against {_bold(result_b)} on {what}: "
            f"{result_a.label} minus {result_b.label} = {interval.points()}")
    if interval.seeds < intervals.MINIMUM_SEEDS_FOR_A_CLAIM:
        text += ", and one seed cannot support a claim"
    return text + "."


def _compare_line(results, key_a, key_b, intro: str, metric: str = "accuracy", what: str = "test accuracy",
                  interval: intervals.Interval | None = None, note: str = "") -> str:
    """ "- intro: <comparison sentence>", or why the two arms cannot be compared."""
    missing = [repr(key) for key in (key_a, key_b) if key not in results]
    if missing:
        return f"- {intro}: not compared, {_join(missing)} not in these results."
    try:
        sentence = comparison_sentence(results[key_a], results[key_b], metric, what, interval=interval)
    except ValueError as error:
        return f"- {intro}: not compared. {error}"
    return f"- {intro}: {sentence}{note}"


def _pairwise(results, keys, metric: str = "accuracy") -> dict[tuple, intervals.Interval]:
    """compare() for every ordered pair (a before b in ``keys``) that can be compared."""
    found = {}
    for index, key_a in enumerate(keys):
        for key_b in keys[index + 1:]:
            try:
                found[key_a, key_b] = compare(results[key_a], results[key_b], metric)
            except ValueError:
                continue
    return found


def _ranking_line(results, keys, pairs: Mapping[tuple, intervals.Interval], noun: str) -> str:
    """Which pairs are ordered with a resolved interval; a full ranking only if all are."""
    above = {key: set() for key in keys}
    resolved = []
    for (key_a, key_b), interval in pairs.items():
        if not interval.resolved:
            continue
        upper, lower, shown = ((key_a, key_b, interval) if interval.estimate > 0
                               else (key_b, key_a, _flipped(interval)))
        above[upper].add(lower)
        resolved.append(f"{_bold(results[upper])} above {_bold(results[lower])} "
                        f"({shown.points(signed=False)})")
    every_pair = len(keys) * (len(keys) - 1) // 2
    if not resolved:
        return (f"- Ranking: no pair of {noun} is resolved at this budget ({len(pairs)} pairs compared), "
                "so they are not ranked.")
    if len(resolved) == every_pair and len({len(lower) for lower in above.values()}) == len(keys):
        order = sorted(keys, key=lambda key: -len(above[key]))
        return "- Ranking (every pair resolved): " + " > ".join(_bold(results[key]) for key in order) + "."
    return (f"- Ranking: {len(resolved)} of {every_pair} pairs of {noun} are resolved, so there is no full "
            f"ranking. Resolved: {'; '.join(resolved)}.")


# -- 01: VGG-19 ------------------------------------------------------------------


def _stuck(record, result) -> bool:
    """Diverged, or best validation (else test) accuracy below chance + margin."""
    if record.status == "diverged":
        return True
    value = record.best("val_accuracy") if "val_accuracy" in record.history else record.test_metric("accuracy")
    return not math.isfinite(value) or value < _chance(result) + CHANCE_MARGIN


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
        shrinking = _join([f"{profile['shrinking']} of {profile['steps']}" for profile in found])
        if all(profile["steady"] for profile in found):
            verdict = "so the gradient shrinks layer by layer on the way back"
        elif float(np.mean(ratios)) < 1.0:
            verdict = "so it is smaller at the first layer than at the last, but does not shrink layer by layer"
        else:
            verdict = "so it does not shrink on the way back"
        lines.append(f"- {_bold(results[key])}: before the first step the first weight layer's gradient norm is "
                     f"{_values_text(ratios)} times the last layer's (median layer norm "
                     f"{_values_text([profile['median'] for profile in found])}); going back from the last layer "
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
                     f"{_number(max(stuck.values()))}) than every arm that learned (at least "
                     f"{_number(min(learned.values()))}): consistent with gradients too small at the first layers.")
    else:
        stuck_key = max(stuck, key=stuck.get)
        learned_key = min(learned, key=learned.get)
        lines.append(f"- The first/last ratio does not separate the arms that learned from those that stayed at "
                     f"chance: {_bold(results[learned_key])} learned with a ratio of {_number(learned[learned_key])}, "
                     f"while {_bold(results[stuck_key])} stayed at chance with {_number(stuck[stuck_key])}. How "
                     "much the gradient shrinks on the way back at initialisation does not by itself explain which "
                     "arms stay at chance.")
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
    steps back between adjacent layers it shrinks, and whether that ratio
    separates the arms that learned from the arms that did not.

    Used in: 01_vgg_gradients
    """
    lines = _arm_block(results)
    outcome, groups = {}, {"stuck": [], "learned": [], "mixed": []}
    for key, result in results.items():
        if not result.completed:
            continue
        flags = [_stuck(record, result) for record in result.completed]
        outcome[key] = "stuck" if all(flags) else "learned" if not any(flags) else "mixed"
        label = _bold(result)
        if outcome[key] == "mixed":
            label += f" (stuck on {sum(flags)} of {len(flags)} seeds)"
        groups[outcome[key]].append(label)
    if results:
        chance = _chance(next(iter(results.values())))
        threshold = _pct(chance + CHANCE_MARGIN)
        if groups["stuck"]:
            lines.append(f"- Stayed at or near chance ({_pct(chance)}) on every seed (diverged, or best validation "
                         f"accuracy below {threshold}): {_join(groups['stuck'])}.")
        if groups["learned"]:
            lines.append(f"- Learned on every seed (best validation accuracy at least {threshold}): "
                         f"{_join(groups['learned'])}.")
        if groups["mixed"]:
            lines.append(f"- Mixed, stuck on some seeds and not others: {_join(groups['mixed'])}.")
    lines.append(_compare_line(results, ("bn", "glorot", "sgd_high"), ("no_bn", "glorot", "sgd_high"),
                               "Batch norm at the high rate (the student's set-up)"))
    lines.append(_compare_line(results, ("no_bn", "he", "sgd_low"), ("no_bn", "glorot", "sgd_low"),
                               "He against Glorot initialisation at the low rate"))
    lines.append(_compare_line(results, ("bn", "glorot", "sgd_low"), ("no_bn", "glorot", "sgd_low"),
                               "Batch norm against none at the low rate"))
    lines.extend(_gradient_lines(results, outcome))
    return "\n".join(lines)


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
    constant_by_seed = {_seed(record): record for record in (constant.completed if constant else [])}
    per_seed, never = [], []
    for record in plateau.completed:
        cuts = _rate_cuts(record)
        if cuts is None:
            per_seed.append(f"seed {_seed(record)}: no learning-rate history recorded")
        elif cuts:
            per_seed.append(f"seed {_seed(record)}: fired after epoch{'s' if len(cuts) > 1 else ''} "
                            + _join([f"{epoch} ({before:.3g} to {after:.3g})" for epoch, before, after in cuts]))
        else:
            rate = record.curve("learning_rate")[0] if record.curve("learning_rate") else math.nan
            per_seed.append(f"seed {_seed(record)}: never fired (the rate stayed at {rate:.3g} for all "
                            f"{record.epochs_completed} epochs)")
            never.append(record)
    lines = [f"{intro}: {'; '.join(per_seed)}."]
    twins, differing, lone = [], [], []
    for record in never:
        twin = constant_by_seed.get(_seed(record))
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
        lines.append(f"- Where it never fired ({_seeds_text([record for record, _ in twins])}) the plateau arm ran "
                     "the constant arm's schedule, the same rate every epoch.")
    if differing:
        lines.append(f"- On {_seeds_text(differing)} the plateau arm never cut its rate, yet its rates differ from the "
                     "constant arm's, so the two are not the same schedule.")
    if lone:
        lines.append(f"- On {_seeds_text(lone)} the plateau arm kept its starting rate throughout: a constant "
                     "schedule (no constant-arm record of that seed to set it against).")
    return lines


def schedule_findings(results: Mapping[tuple, object]) -> str:
    """Each schedule against the constant rate, a ranking where resolved, and the plateau rule.

    Step, plateau and cosine are each compared with the constant rate on
    test accuracy; every pair of schedules is compared, and an ordering is
    stated only for resolved pairs (a full ranking only when all are). For
    the plateau arm, each seed's recorded "learning_rate" history says
    whether and after which epoch the rule cut the rate; where it never
    did, the arm ran the constant arm's schedule.

    Used in: 02_lr_schedules
    """
    lines = _arm_block(results)
    keys = [key for key in (("schedule", name) for name in ("constant", "step", "plateau", "cosine"))
            if key in results]
    pairs = _pairwise(results, keys)
    constant = ("schedule", "constant")
    for name in ("step", "plateau", "cosine"):
        key = ("schedule", name)
        if key not in results:
            continue
        known = pairs.get((constant, key))
        lines.append(_compare_line(results, key, constant, f"{name.capitalize()} against constant",
                                   interval=None if known is None else _flipped(known)))
    if len(keys) >= 2:
        lines.append(_ranking_line(results, keys, pairs, "schedules"))
    lines.extend(_plateau_lines(results))
    return "\n".join(lines)


# -- 03: depth and stems ---------------------------------------------------------


def _final_loss_by_seed(result) -> dict[int, float]:
    return {_seed(record): record.final("loss") for record in result.completed
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
    lines = _arm_block(results)
    missing = [repr(key) for key in keys if key not in results]
    if missing:
        lines.append(f"- The depth gaps need all four arms; {_join(missing)} not in these results.")
        return "\n".join(lines)
    losses = {key: _final_loss_by_seed(results[key]) for key in keys}
    seeds = sorted(set.intersection(*(set(values) for values in losses.values())))
    seeds = [seed for seed in seeds if all(math.isfinite(losses[key][seed]) for key in keys)]
    names = {key: results[key].label for key in keys}
    lines.append("- Final training loss (mean +- standard deviation over seeds): " + "; ".join(
        f"{names[key]} {_loss_text(list(losses[key].values()))}" for key in keys) + ".")
    if not seeds:
        lines.append("- No seed has a finite final training loss in all four arms, so the gaps are not computed.")
        return "\n".join(lines)
    left_out = sorted(set().union(*(set(values) for values in losses.values())) - set(seeds))
    plain_gap = [losses["plain", deep][seed] - losses["plain", shallow][seed] for seed in seeds]
    residual_gap = [losses["residual", deep][seed] - losses["residual", shallow][seed] for seed in seeds]
    difference = [p - r for p, r in zip(plain_gap, residual_gap)]
    lines.append(f"- Depth gap in final training loss, {deep} layers minus {shallow}: plain "
                 f"{_loss_text(plain_gap, signed=True)}, residual {_loss_text(residual_gap, signed=True)}"
                 + (f" (seed{'s' if len(left_out) > 1 else ''} {_join([str(s) for s in left_out])} left out: a "
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
    lines.append(_compare_line(results, ("residual", deep), ("plain", deep), f"At depth {deep}, shortcuts"))
    return "\n".join(lines)


def stem_findings(results: Mapping[tuple, object]) -> str:
    """The CIFAR stem against the ImageNet stem, per model, on test accuracy.

    Used in: 03_resnet_depth
    """
    lines = _arm_block(results)
    models = list(dict.fromkeys(key[0] for key in results))
    for model in models:
        lines.append(_compare_line(results, (model, "cifar"), (model, "imagenet"),
                                   f"{model}, CIFAR stem against ImageNet stem"))
    return "\n".join(lines)


# -- 04: dropout -----------------------------------------------------------------


def _has_dropout(config) -> bool:
    options = config.model_options
    return any(float(options.get(name) or 0) > 0 for name in ("block_dropout", "classifier_dropout",
                                                               "post_add_dropout"))


def dropout_findings(results: Mapping[tuple, object]) -> str:
    """Each regulariser against none, dropout on top of augmentation + weight
    decay, and the student's puzzle (validation accuracy above training).

    The puzzle is read from the last epoch: the training accuracy is a
    running mean over the epoch with dropout active (and on augmented images
    where augmentation is on); the validation accuracy is measured after the
    epoch with neither. Means over seeds, and the seeds where validation is
    above training.

    Used in: 04_dropout
    """
    lines = _arm_block(results)
    none = ("none",)
    for key, result in results.items():
        if key != none:
            lines.append(_compare_line(results, key, none, f"{result.label} against no regularisation"))
    lines.append(_compare_line(results, ("augmentation_weight_decay", "student_dropout"),
                               ("augmentation_weight_decay",), "Student dropout on top of augmentation + weight decay"))
    above, shown = [], 0
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
        lines.append(f"- {_bold(result)} ({_join(regularised) or 'neither dropout nor augmentation'}), last epoch: "
                     f"training accuracy {intervals.format_mean_spread(train)}, validation "
                     f"{intervals.format_mean_spread(val)}; validation minus training {100 * gap:+.1f} points, "
                     f"validation above training on {higher} of {len(records)} seeds.")
        if gap > 0:
            above.append((result, regularised))
    if shown:
        if above:
            with_either = [result for result, regularised in above if regularised]
            lines.append("- Validation accuracy is above training accuracy (mean over seeds) for "
                         + _join([_bold(result) for result, _ in above]) + ". The training figure is a running mean "
                         "over the epoch with dropout active and on augmented images; the validation figure is "
                         "measured at the epoch's end with neither.")
            if len(with_either) == len(above):
                lines.append("- Only arms with dropout or augmentation show validation above training here.")
            else:
                lines.append("- Arms without dropout or augmentation show it too ("
                             + _join([_bold(result) for result, regularised in above if not regularised])
                             + "), so those two are not the whole explanation.")
        else:
            lines.append("- In no arm is the mean validation accuracy above the training accuracy at the last epoch.")
    return "\n".join(lines)


# -- 05: cyclical rates ----------------------------------------------------------


def cyclical_findings(results: Mapping[tuple, object]) -> str:
    """One-cycle, triangular CLR and the short one-cycle, each against step decay.

    Used in: 05_cyclical_lr
    """
    lines = _arm_block(results)
    step = ("schedule", "step")
    for name in ("onecycle", "clr", "onecycle_short"):
        key = ("schedule", name)
        if key not in results:
            continue
        note = ""
        if step in results and results[key].config.num_epochs != results[step].config.num_epochs:
            epochs = results[key].config.num_epochs
            note = (f" ({epochs} epoch{'s' if epochs != 1 else ''} against step decay's "
                    f"{results[step].config.num_epochs}.)")
        lines.append(_compare_line(results, key, step, f"{results[key].label} against step decay", note=note))
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
    reasons = []
    if record.epochs_completed and "val_loss" in record.history and "loss" in record.history:
        train, val = record.final("loss"), record.final("val_loss")
        if not math.isfinite(val):
            reasons.append("validation loss not finite")
        elif math.isfinite(train) and train > 0 and val > BLOW_UP_FACTOR * train:
            reasons.append(f"validation loss {val:.3g}, {val / train:.3g} times its training loss {train:.3g}")
    test = record.test_metric("accuracy")
    if not math.isfinite(test) or test < _chance(result) + CHANCE_MARGIN:
        reasons.append(f"test accuracy {_pct(test)}, chance is {_pct(_chance(result))}")
    return "; ".join(reasons) or None


def _gate_count_text(result) -> str:
    per_seed = []
    for record in result.completed:
        total = len(record.diagnostics.get("gates") or {}) or int(record.diagnostics.get("num_gated_blocks") or 0)
        counts = record.diagnostics.get("discarded_blocks") or []
        if total:
            per_seed.append((_seed(record), f"{counts[-1] if counts else 0} of {total}"))
    if not per_seed:
        return "no gates (epsilon 0)"
    return f"blocks discarded at the end: {_by_seed(per_seed)}"


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
        below.append((_seed(record), f"{sum(1 for value in final if value <= epsilon)} of {len(final)}"))
        counts = record.diagnostics.get("discarded_blocks_training") or []
        inference = (record.diagnostics.get("discarded_blocks") or [None])[-1]
        if counts:
            training.append((_seed(record), f"{counts[-1]} gated off in training mode against {inference} at "
                                            "inference"))
    text = (f"- {_bold(result)}: each block's largest residual response |F| spanned {min(first):.3g}-{max(first):.3g} "
            f"before training and {min(last):.3g}-{max(last):.3g} after it, against epsilon {epsilon:g}; blocks at "
            f"or below it at the end: {_by_seed(below)}.")
    if training:
        text += (" On the same batch with batch norm on the batch's statistics, as `fit` sees the gates: "
                 + _by_seed(training) + ".")
    return text


def gate_findings(results: Mapping[tuple, object], full_recipe=None, full_steps_per_epoch: int | None = None) -> str:
    """Blocks discarded and why, blow-ups flagged, and each gated arm against the ungated one.

    Per arm over seeds: blocks discarded at the end; each block's recorded
    response against epsilon before and after training, and the count gated
    off in training mode against inference; how much weight decay alone
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
        reasons = [(_seed(record), _blow_up(record, result)) for record in result.completed]
        reasons = [(seed, reason) for seed, reason in reasons if reason]
        if reasons:
            blown[key] = True
            lines.append(f"- **Blown up**: {_bold(result)} on {len(reasons)} of {result.n} seeds: "
                         f"{_by_seed(reasons)}. Its test accuracy reflects the blow-up, not an effect of the gates.")
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
        note = (f" ({_join(flagged)} blew up: this difference is not a gate effect.)" if flagged else "")
        lines.append(_compare_line(results, key, ungated, intro, note=note))
    return "\n".join(lines)


# -- 07: CIFAR-100 ---------------------------------------------------------------


def cifar100_findings(results: Mapping[tuple, object]) -> str:
    """Top-1 and top-5 per arm, and the student's dropout on ResNet-18, with intervals.

    Used in: 07_cifar100
    """
    lines = _arm_block(results)
    for metric, what in (("accuracy", "test top-1 accuracy"), ("top5_accuracy", "test top-5 accuracy")):
        lines.append(_compare_line(results, ("resnet18", "post_add_dropout"), ("resnet18",),
                                   f"Dropout after the add in ResNet-18, {what.split()[1]}", metric=metric, what=what))
    return "\n".join(lines)
