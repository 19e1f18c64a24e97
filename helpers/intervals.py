"""Intervals for accuracies and for differences between two arms.

Two sources of noise move a measured test accuracy:

* **the test images**: 10,000 (or, at reduced profiles, 500-1,000) images
  are a sample of the distribution. A bootstrap over the images estimates
  this share. Two arms scored on the *same* images are compared with a
  *paired* bootstrap (the same resampled images for both), which removes
  the images' common difficulty from the difference.
* **the training run**: seed, data order and the host's float rounding.
  Jordan (ICLR 2024) finds that on CIFAR-10 most of the run-to-run spread on
  a fixed test set is this per-image "chaos", close to binomial; but the
  same quick configurations moved by up to 5.5 points on another host, so
  the seeds' own spread is measured, never assumed.

The interval combines both: its standard error is the image bootstrap's
combined in quadrature with the seeds' standard error, and its width uses
Student's t with Welch-Satterthwaite degrees of freedom (n - 1 from the
seeds' term, infinite from the images'). With two seeds whose results
disagree that factor is large (12.7 at df = 1): the interval is honest
about how little two seeds pin down. Where the arms share their seeds (the
same initial weights and data order for the same architecture, as every
study here runs them), the seeds are paired and the spread used is that of
the per-seed differences.

A direction is stated only when the interval excludes zero *and* there are
at least two seeds (:attr:`Interval.resolved`); with one seed the interval
covers the images only and the comparison is reported as unresolved.

numpy only: no TensorFlow, no scipy.

Used in: every notebook's Findings (through ``helpers.findings``) and
08_summary.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000
# A fixed seed so that a re-rendered report prints the same interval for the
# same records.
BOOTSTRAP_SEED = 20180618
MINIMUM_SEEDS_FOR_A_CLAIM = 2


@dataclasses.dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval, as fractions (0.03 = 3 points).

    Attributes:
        estimate: Mean over seeds of the statistic on all test images.
        low, high: The interval's ends.
        seeds: Number of seeds (runs per arm) behind the estimate.
        images: Number of test images each run was scored on.
        level: Coverage the interval aims at (0.95).
        image_standard_error: The test images' share (bootstrap).
        seed_standard_error: The seeds' share (None with one seed).
    """

    estimate: float
    low: float
    high: float
    seeds: int
    images: int
    level: float = LEVEL
    image_standard_error: float = 0.0
    seed_standard_error: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    @property
    def resolved(self) -> bool:
        """True when a direction may be claimed: >= 2 seeds and zero excluded."""
        return self.seeds >= MINIMUM_SEEDS_FOR_A_CLAIM and self.excludes_zero

    def excludes(self, value: float) -> bool:
        """True when ``value`` lies outside the interval."""
        return value < self.low or value > self.high

    def points(self, signed: bool = True) -> str:
        """The estimate and interval in percentage points, e.g.
        "+3.2 points (95% interval +1.0 to +5.4; n = 2 seeds, 1,000 images)".
        """
        sign = "+" if signed else ""
        return (f"{100 * self.estimate:{sign}.1f} points ({self.level:.0%} interval "
                f"{100 * self.low:{sign}.1f} to {100 * self.high:{sign}.1f}; {self.sample_size()})")

    def percent(self) -> str:
        """The estimate and interval as accuracies, e.g. "84.1% (95% interval 83.2-85.0%; ...)"."""
        return (f"{100 * self.estimate:.1f}% ({self.level:.0%} interval {100 * self.low:.1f}-"
                f"{100 * self.high:.1f}%; {self.sample_size()})")

    def sample_size(self) -> str:
        seeds = f"n = {self.seeds} seed{'s' if self.seeds != 1 else ''}"
        return f"{seeds}, {self.images:,} test images"


def t_quantile(probability: float, degrees_of_freedom: float) -> float:
    """The ``probability`` quantile of Student's t (infinite df: the normal).

    Computed by bisection on the t distribution function, itself the
    regularised incomplete beta function evaluated by its continued
    fraction (Numerical Recipes' ``betacf``); accurate to about 1e-10.

    Raises:
        ValueError: for a probability outside (0, 1) or df <= 0.
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must lie in (0, 1). Received: {probability!r}")
    if not degrees_of_freedom > 0:
        raise ValueError(f"degrees_of_freedom must be positive. Received: {degrees_of_freedom!r}")
    # Past 1e7 degrees of freedom t equals the normal to 1e-7, and the
    # incomplete beta below loses precision (x = df / (df + t^2) rounds to 1).
    if degrees_of_freedom > 1e7:
        return _normal_quantile(probability)
    if probability < 0.5:
        return -t_quantile(1.0 - probability, degrees_of_freedom)
    low, high = 0.0, 1.0
    while _t_cdf(high, degrees_of_freedom) < probability:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if _t_cdf(middle, degrees_of_freedom) < probability:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def _normal_quantile(probability: float) -> float:
    low, high = -40.0, 40.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if 0.5 * math.erfc(-middle / math.sqrt(2.0)) < probability:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def _t_cdf(value: float, degrees_of_freedom: float) -> float:
    x = degrees_of_freedom / (degrees_of_freedom + value * value)
    tail = 0.5 * _regularised_incomplete_beta(x, degrees_of_freedom / 2.0, 0.5)
    return 1.0 - tail if value >= 0 else tail


def _regularised_incomplete_beta(x: float, a: float, b: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(x, a, b) / a
    return 1.0 - front * _beta_continued_fraction(1.0 - x, b, a) / b


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def _as_runs(correct, name: str) -> np.ndarray:
    """[seeds, images] float array of per-image scores (1 = right, 0 = wrong)."""
    array = np.asarray(correct, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must be per-image scores, shaped [seeds, images] with at least one of each. "
                         f"Received: shape {np.shape(correct)}")
    return array


def _combine(estimate: float, image_se: float, seed_se: float | None, seeds: int, images: int,
             level: float) -> Interval:
    if seed_se is None or seeds < 2:
        standard_error, degrees = image_se, math.inf
    else:
        standard_error = math.sqrt(image_se ** 2 + seed_se ** 2)
        # Welch-Satterthwaite: the image term has infinite degrees of freedom.
        # Seeds that agree exactly leave a spread of float noise (1e-17),
        # which would give absurd degrees of freedom: count it as zero.
        if seed_se < 1e-12:
            seed_se = 0.0
        degrees = math.inf if seed_se == 0 else standard_error ** 4 / (seed_se ** 4 / (seeds - 1))
    half_width = t_quantile(0.5 + level / 2.0, degrees) * standard_error
    return Interval(estimate=estimate, low=estimate - half_width, high=estimate + half_width,
                    seeds=seeds, images=images, level=level, image_standard_error=image_se,
                    seed_standard_error=seed_se if seeds >= 2 else None)


def _bootstrap_standard_error(statistic_of_indices, images: int, resamples: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    # Chunks keep memory at a few MB for 10,000 images and 2,000 resamples.
    chunk = max(1, 2_000_000 // max(images, 1))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        indices = rng.integers(0, images, size=(stop - start, images))
        values[start:stop] = statistic_of_indices(indices)
    return float(np.std(values, ddof=1))


def accuracy_interval(correct, level: float = LEVEL, resamples: int = RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> Interval:
    """The mean accuracy over seeds, with the images' and the seeds' noise.

    Args:
        correct: Per-image scores of each seed's run, shaped [seeds, images]
            (a single run may be passed as one row).
        level: Two-sided coverage.
        resamples: Bootstrap resamples of the images.
        seed: Seed of the bootstrap's generator (fixed: same input, same output).

    Raises:
        ValueError: for an empty or mis-shaped input.
    """
    runs = _as_runs(correct, "correct")
    seeds, images = runs.shape
    mean_over_seeds = runs.mean(axis=0)
    per_seed = runs.mean(axis=1)
    image_se = _bootstrap_standard_error(lambda idx: mean_over_seeds[idx].mean(axis=1), images, resamples, seed)
    seed_se = float(np.std(per_seed, ddof=1) / math.sqrt(seeds)) if seeds >= 2 else None
    interval = _combine(float(per_seed.mean()), image_se, seed_se, seeds, images, level)
    # An accuracy lies in [0, 1]; two disagreeing seeds can push t * se past it.
    return dataclasses.replace(interval, low=max(0.0, interval.low), high=min(1.0, interval.high))


def difference_interval(correct_a, correct_b, level: float = LEVEL, resamples: int = RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> Interval:
    """Accuracy of A minus accuracy of B: paired over images, and over seeds when both have as many.

    Args:
        correct_a, correct_b: Per-image scores [seeds, images] of the two
            arms, scored on the same images in the same order.

    Raises:
        ValueError: when the two arms were not scored on the same number of
            images (they cannot be paired).
    """
    a, b = _as_runs(correct_a, "correct_a"), _as_runs(correct_b, "correct_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError("A paired comparison needs both arms scored on the same test images. "
                         f"Received: {a.shape[1]} and {b.shape[1]} images")
    images = a.shape[1]
    difference_per_image = a.mean(axis=0) - b.mean(axis=0)
    image_se = _bootstrap_standard_error(lambda idx: difference_per_image[idx].mean(axis=1),
                                         images, resamples, seed)
    per_seed_a, per_seed_b = a.mean(axis=1), b.mean(axis=1)
    estimate = float(per_seed_a.mean() - per_seed_b.mean())
    seeds = min(a.shape[0], b.shape[0])
    if a.shape[0] == b.shape[0] and seeds >= 2:
        seed_se = float(np.std(per_seed_a - per_seed_b, ddof=1) / math.sqrt(seeds))
    elif seeds >= 2:
        seed_se = float(math.sqrt(np.var(per_seed_a, ddof=1) / a.shape[0]
                                  + np.var(per_seed_b, ddof=1) / b.shape[0]))
    else:
        seed_se = None
    interval = _combine(estimate, image_se, seed_se, seeds, images, level)
    # A difference of two accuracies lies in [-1, 1]; two disagreeing seeds can push t * se past it.
    return dataclasses.replace(interval, low=max(-1.0, interval.low), high=min(1.0, interval.high))


def mean_and_spread(values: Sequence[float]) -> tuple[float, float | None, int]:
    """(mean, sample standard deviation or None for one value, n), NaN-free input.

    Raises:
        ValueError: for no values.
    """
    array = np.asarray([value for value in values if value is not None and math.isfinite(value)], dtype=float)
    if array.size == 0:
        raise ValueError(f"mean_and_spread needs at least one finite value. Received: {list(values)!r}")
    spread = float(np.std(array, ddof=1)) if array.size >= 2 else None
    return float(array.mean()), spread, int(array.size)


def format_mean_spread(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """ "84.1 +- 0.6 (n = 3)" from per-seed values (fractions scaled to percent)."""
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if not finite:
        return "n/a"
    mean, spread, count = mean_and_spread(finite)
    if spread is None:
        return f"{scale * mean:.{digits}f} (n = 1)"
    return f"{scale * mean:.{digits}f} +- {scale * spread:.{digits}f} (n = {count})"
