"""Arms side by side: one line per arm, and paired comparisons worded by their interval.

The building blocks of every notebook's Findings (``helpers.findings``): an
arm's line gives its status over seeds and its accuracies as mean +-
spread (n); a comparison is the paired interval of
:func:`helpers.intervals.difference_interval`, and its sentence states a
direction only when that interval is resolved (at least two seeds, zero
excluded), else says the budget does not resolve it and gives the interval.

Imports numpy and the light helper modules only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

from helpers import intervals

# A validation loss above this multiple of the larger of the training loss
# and the chance-level loss ln(classes) marks a blow-up: the floor keeps a net
# that merely fits its training set (loss 0.01, validation 1.5) from counting.
BLOW_UP_FACTOR = 10.0

PER_ARM_HEADER = "Per arm (accuracies in percent: mean +- standard deviation over seeds, n = seeds):"


# -- small formatting helpers ----------------------------------------------------


def percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


def join_words(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def number(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else "n/a"


def values_text(values: Sequence[float], digits: int = 2) -> str:
    """ "0.056 +- 0.004 (n = 2)" for values that are not percentages."""
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if not finite:
        return "n/a"
    mean, spread, count = intervals.mean_and_spread(finite)
    if spread is None:
        return f"{number(mean, digits)} (n = 1)"
    return f"{number(mean, digits)} +- {number(spread, digits)} (n = {count})"


def loss_text(values: Sequence[float], signed: bool = False) -> str:
    """ "+0.488 +- 0.012 (n = 2)": losses to three decimals."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return "n/a"
    mean, spread, count = intervals.mean_and_spread(finite)
    sign = "+" if signed else ""
    if spread is None:
        return f"{mean:{sign}.3f} (n = 1)"
    return f"{mean:{sign}.3f} +- {spread:.3f} (n = {count})"


def chance_level(result) -> float:
    return 1.0 / (100 if result.config.dataset == "cifar100" else 10)


def seed_of(record) -> int:
    return record.config.seed


def seeds_text(records) -> str:
    """ "seed 1" or "seeds 0 and 2"."""
    return ("seed " if len(records) == 1 else "seeds ") + join_words([str(seed_of(record)) for record in records])


def by_seed(pairs: Sequence[tuple[int, str]]) -> str:
    """ "3 of 9 on every seed", "3 of 9 (seed 0)" or "3 of 9 (seed 0) and 4 of 9 (seed 1)"."""
    texts = [text for _, text in pairs]
    if len(pairs) > 1 and len(set(texts)) == 1:
        return f"{texts[0]} on every seed"
    return join_words([f"{text} (seed {seed})" for seed, text in pairs])


def bold(result) -> str:
    return f"**{result.label}**"


# -- one arm over its seeds ------------------------------------------------------


def status_text(result) -> str:
    total = len(result.records)
    parts = []
    completed = sum(1 for record in result.completed if record.status == "completed")
    if completed:
        parts.append(f"{completed} of {total} completed")
    diverged = sorted(record.diverged_epoch or record.epochs_completed
                      for record in result.completed if record.status == "diverged")
    if diverged:
        epochs = join_words([str(epoch) for epoch in diverged])
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
        return f"- {bold(result)}: no record of this arm (0 of {len(result.records)} seeds run)."
    epochs = sorted({record.epochs_completed for record in result.completed})
    epoch_text = (f"{epochs[0]} epoch{'' if epochs[0] == 1 else 's'}" if len(epochs) == 1
                  else f"{epochs[0]}-{epochs[-1]} epochs")
    parts = [f"test accuracy {intervals.format_mean_spread(result.test_values('accuracy'))}"]
    if any("val_accuracy" in record.history for record in result.completed):
        parts.append(f"best validation accuracy {intervals.format_mean_spread(result.best_values('val_accuracy'))}")
    if any("top5_accuracy" in record.test for record in result.completed):
        parts.append(f"test top-5 accuracy {intervals.format_mean_spread(result.test_values('top5_accuracy'))}")
    return f"- {bold(result)} ({status_text(result)}, {epoch_text}): {'; '.join(parts)}."


def arm_block(results: Mapping[tuple, object]) -> list[str]:
    cost = cost_line(results)
    return [PER_ARM_HEADER, "", *(arm_line(result) for result in results.values()),
            *([f"- {cost}"] if cost else []), ""]


def cost_line(results: Mapping[tuple, object]) -> str | None:
    """What these runs cost, from their records: the sum of their wall times and
    the machines that ran them. None when no record has a wall time.

    A run shared with another notebook counts here too (it is one of this
    notebook's runs); ``python -m helpers records`` counts it once for the series.

    Used in: every notebook's Findings (through arm_block)
    """
    records, seen = [], set()
    for result in results.values():
        for record in result.completed:
            if record.run_id not in seen:
                seen.add(record.run_id)
                records.append(record)
    seconds = sum(record.wall_seconds or 0.0 for record in records)
    if not records or seconds <= 0:
        return None
    machines = {}
    for record in records:
        hardware = (record.environment or {}).get("hardware") or {}
        widest = (hardware.get("instruction_set") or {}).get("widest")
        name = str(hardware.get("cpu") or "an unnamed CPU") + (f" ({widest})" if widest else "")
        machines[name] = machines.get(name, 0) + 1
    where = "; ".join(f"{count} on {name}" for name, count in sorted(machines.items()))
    return (f"Training time: {seconds / 60:,.1f} min for these {len(records)} runs (the sum of their records' "
            f"wall times: {where}).")


# -- comparisons -----------------------------------------------------------------


def label_digests(result) -> set:
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
    digests_a, digests_b = label_digests(result_a), label_digests(result_b)
    if len(digests_a) == 1 and len(digests_b) == 1 and digests_a != digests_b:
        raise ValueError(f"Arms {result_a.label!r} and {result_b.label!r} were scored on different test images, "
                         "so they cannot be paired. Received: two different label digests")
    return intervals.difference_interval(scores[0], scores[1])


def flipped(interval: intervals.Interval) -> intervals.Interval:
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
            winner, loser, shown = result_b, result_a, flipped(interval)
        return f"{bold(winner)} beats {bold(loser)} on {what} by {shown.points(signed=False)}."
    text = (f"The budget does not resolve {bold(result_a)} against {bold(result_b)} on {what}: "
            f"{result_a.label} minus {result_b.label} = {interval.points()}")
    if interval.seeds < intervals.MINIMUM_SEEDS_FOR_A_CLAIM:
        text += ", and one seed cannot support a claim"
    return text + "."


def compare_line(results, key_a, key_b, intro: str, metric: str = "accuracy", what: str = "test accuracy",
                  interval: intervals.Interval | None = None, note: str = "") -> str:
    """ "- intro: <comparison sentence>", or why the two arms cannot be compared."""
    missing = [repr(key) for key in (key_a, key_b) if key not in results]
    if missing:
        return f"- {intro}: not compared, {join_words(missing)} not in these results."
    try:
        sentence = comparison_sentence(results[key_a], results[key_b], metric, what, interval=interval)
    except ValueError as error:
        return f"- {intro}: not compared. {error}"
    return f"- {intro}: {sentence}{note}"


def pairwise(results, keys, metric: str = "accuracy") -> dict[tuple, intervals.Interval]:
    """compare() for every ordered pair (a before b in ``keys``) that can be compared."""
    found = {}
    for index, key_a in enumerate(keys):
        for key_b in keys[index + 1:]:
            try:
                found[key_a, key_b] = compare(results[key_a], results[key_b], metric)
            except ValueError:
                continue
    return found


def ranking_line(results, keys, pairs: Mapping[tuple, intervals.Interval], noun: str) -> str:
    """Which pairs are ordered with a resolved interval; a full ranking only if all are."""
    above = {key: set() for key in keys}
    resolved = []
    for (key_a, key_b), interval in pairs.items():
        if not interval.resolved:
            continue
        upper, lower, shown = ((key_a, key_b, interval) if interval.estimate > 0
                               else (key_b, key_a, flipped(interval)))
        above[upper].add(lower)
        resolved.append(f"{bold(results[upper])} above {bold(results[lower])} "
                        f"({shown.points(signed=False)})")
    every_pair = len(keys) * (len(keys) - 1) // 2
    if not resolved:
        return (f"- Ranking: no pair of {noun} is resolved at this budget ({len(pairs)} pairs compared), "
                "so they are not ranked.")
    if len(resolved) == every_pair and len({len(lower) for lower in above.values()}) == len(keys):
        order = sorted(keys, key=lambda key: -len(above[key]))
        return "- Ranking (every pair resolved): " + " > ".join(bold(results[key]) for key in order) + "."
    return (f"- Ranking: {len(resolved)} of {every_pair} pairs of {noun} are resolved, so there is no full "
            f"ranking. Resolved: {'; '.join(resolved)}.")


# -- 01: VGG-19 ------------------------------------------------------------------


def blow_up(record) -> str | None:
    """Why one run's final numbers are a blow-up rather than a result, or None.

    A run has blown up when it diverged, or ended with a validation loss that
    is not finite or above ``BLOW_UP_FACTOR`` times the larger of its training
    loss and ln(classes). Figures and Findings both judge with this one rule.

    Returns:
        e.g. "diverged (epoch 3)" or "validation loss 3.1e+07, training loss 0.52".

    Used in: 03_resnet_depth, 06_sparse_gates
    """
    if record.status == "diverged":
        return "diverged" + (f" (epoch {record.diverged_epoch})" if record.diverged_epoch else "")
    if not record.epochs_completed or "val_loss" not in record.history:
        return None
    validation = record.final("val_loss")
    training = record.final("loss") if "loss" in record.history else math.nan
    classes = 100 if record.config.dataset == "cifar100" else 10
    if not math.isfinite(validation):
        return "validation loss not finite"
    if not math.isfinite(training):
        return "training loss not finite"
    if validation > BLOW_UP_FACTOR * max(training, math.log(classes)):
        return f"validation loss {validation:.3g}, training loss {training:.3g}"
    return None
