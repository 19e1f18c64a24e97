"""Smith's reading of an LR range test: the rates a cyclical schedule uses.

numpy only, so reading a cached range test imports neither TensorFlow nor
Keras.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# How far above its minimum the smoothed loss may climb before a rate counts
# as past the edge (read_range_test's high rate).
HIGH_LOSS_MARGIN = 0.10
# Where the loss "stops falling" (read_range_test's maximum rate): the first
# minimum after which the smoothed loss climbs back more than this share
# above its lowest value so far, once it has made half its drop from its
# start. A curve can dip again at rates past that climb (a batch-normalised
# ResNet's often does, near the end of the ramp); a deeper second dip is not
# where the loss stopped falling. Relative to the loss, not to the drop: the
# drop depends on how high the initial loss starts (3.3 and 5.3 on two seeds
# of ResNet-20 here), the noise of the smoothed curve does not.
CLIMB_MARGIN = 0.02
# The start of the curve: the median of its first tenth (the bias-corrected
# smoothing is noisy over the first steps).
START_SHARE = 0.10
# The highest rate read_range_test calls "high": the peak of Smith & Topin's
# super-convergence runs (2019, CLR between 0.1 and 3.0 for ResNet-56). A
# batch-normalised ResNet's range test can stay low to the end of the ramp
# (10 here), past any rate anyone has trained with.
HIGH_RATE_CAP = 3.0

@dataclasses.dataclass(frozen=True)
class RangeTestReading:
    """The rates Smith reads off an LR range test (see :func:`read_range_test`).

    Attributes:
        base_learning_rate: A quarter of ``max_learning_rate``.
        max_learning_rate: The rate where the smoothed loss stops falling:
            its minimum before it first climbs back (see
            :func:`read_range_test`).
        high_learning_rate: The largest rate past the minimum before the
            smoothed loss first climbs more than ``HIGH_LOSS_MARGIN`` (10%)
            above its minimum, at most ``HIGH_RATE_CAP`` (3).
    """

    base_learning_rate: float
    max_learning_rate: float
    high_learning_rate: float


def read_range_test(learning_rates, smoothed_losses) -> RangeTestReading:
    """Smith's reading of an LR range test's smoothed loss curve.

    * The maximum rate is where the loss stops falling: the rate at the
      smoothed loss's minimum before it first climbs back. Smith (2017,
      section 3.3) sets ``max_lr`` where "the accuracy slows, becomes
      ragged, or starts to fall", and Smith (2018, section 4.1) calls the
      rate at the loss's minimum "the largest value that can be used as the
      learning rate for the maximum bound with cyclical learning rates".
      "Climbs back" means: once the loss has made half of its drop (from the
      median of the curve's first tenth to its lowest value), it rises more
      than ``CLIMB_MARGIN`` (2%) above its lowest value so far. A later, deeper dip at rates past such a climb (batch-normalised
      ResNets often show one near the end of the ramp) is past the edge,
      not the maximum rate; the global minimum would read it as one.
    * The base rate is a quarter of it ("set base_lr to 1/3 or 1/4 of
      max_lr", Smith 2017).
    * The high rate, for super-convergence (Smith & Topin 2019, whose range
      test for ResNet-56 kept a low loss up to a rate of 3, which they then
      used as the peak): the largest rate past the minimum before the
      smoothed loss first climbs more than 10% above its minimum, i.e. the
      edge of the range where the loss stays low, capped at 3
      (``HIGH_RATE_CAP``, their peak): a batch-normalised ResNet's loss can
      stay that low to the end of the ramp. It is the last tested rate (or
      the cap) when the loss never climbs that far, and never below the
      maximum rate.

    The reading uses the stored curve only, so a cached range test is read
    the same way however old it is.

    Raises:
        ValueError: for curves of different lengths, an empty curve or a
            curve with no finite loss.

    Used in: lr_find, 05_cyclical_lr (studies.range_test_reading)
    """
    rates = np.asarray(learning_rates, dtype=np.float64)
    losses = np.asarray(smoothed_losses, dtype=np.float64)
    if rates.shape != losses.shape or rates.ndim != 1 or rates.size == 0:
        raise ValueError("learning_rates and smoothed_losses must be 1-D curves of the same, non-zero length. "
                         f"Received: shapes {rates.shape} and {losses.shape}")
    finite = np.isfinite(losses)
    if not finite.any():
        raise ValueError("The range test recorded no finite loss. Received: "
                         f"{losses.size} losses, none finite")
    best = _first_minimum(losses, finite)
    ceiling = losses[best] + HIGH_LOSS_MARGIN * abs(losses[best])
    above = np.nonzero(~(losses[best:] <= ceiling))[0]  # NaN counts as above
    edge = best + int(above[0]) - 1 if above.size else rates.size - 1
    peak = float(rates[best])
    high = max(min(float(rates[max(edge, best)]), HIGH_RATE_CAP), peak)
    return RangeTestReading(base_learning_rate=peak / 4.0, max_learning_rate=peak, high_learning_rate=high)


def _first_minimum(losses: np.ndarray, finite: np.ndarray) -> int:
    """The index of the smoothed loss's minimum before it first climbs back (see read_range_test)."""
    filled = np.where(finite, losses, np.inf)
    lowest = float(np.min(filled))
    head = losses[: max(1, int(round(START_SHARE * losses.size)))]
    head = head[np.isfinite(head)]
    start = float(np.median(head)) if head.size else lowest
    drop = start - lowest
    if not drop > 0:
        return int(np.argmin(filled))
    running = np.inf
    for index, value in enumerate(losses):
        if not np.isfinite(value):
            break  # NaN or a blow-up ends the usable curve
        if running <= start - 0.5 * drop and value > running + CLIMB_MARGIN * abs(running):
            break
        running = min(running, value)
    else:
        index = losses.size
    return int(np.argmin(filled[:max(index, 1)]))
