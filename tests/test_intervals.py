"""helpers.intervals: accuracy and difference intervals over test images and seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import intervals
from helpers.records import pack_bits, unpack_bits


@pytest.mark.parametrize("probability, df, expected", [
    (0.975, 1, 12.7062047), (0.975, 2, 4.3026527), (0.975, 5, 2.5705818),
    (0.975, 30, 2.0422725), (0.95, 10, 1.8124611), (0.975, math.inf, 1.9599640),
    (0.025, 4, -2.7764451), (0.975, 1e15, 1.9599640), (0.975, 3e60, 1.9599640),
])
def test_t_quantile_matches_published_tables(probability, df, expected):
    assert intervals.t_quantile(probability, df) == pytest.approx(expected, abs=2e-6)


def test_t_quantile_refuses_bad_arguments():
    with pytest.raises(ValueError, match="probability"):
        intervals.t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="degrees_of_freedom"):
        intervals.t_quantile(0.9, 0)


def _runs(rng, accuracies, images):
    return np.stack([rng.random(images) < accuracy for accuracy in accuracies]).astype(np.uint8)


def test_one_run_interval_is_the_binomial_one():
    rng = np.random.default_rng(1)
    correct = _runs(rng, [0.9], 10_000)
    interval = intervals.accuracy_interval(correct)
    p = correct.mean()
    binomial = 1.96 * math.sqrt(p * (1 - p) / 10_000)
    assert interval.estimate == pytest.approx(p)
    assert interval.high - interval.estimate == pytest.approx(binomial, rel=0.1)
    assert interval.seeds == 1 and interval.seed_standard_error is None
    # The rule of thumb in REFERENCES.md: 0.3 points of standard error at 90% on 10,000 images.
    assert interval.image_standard_error == pytest.approx(0.003, abs=0.0003)


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(2)
    agreeing = _runs(rng, [0.80, 0.80], 1000)
    disagreeing = _runs(rng, [0.70, 0.90], 1000)
    narrow = intervals.accuracy_interval(agreeing)
    wide = intervals.accuracy_interval(disagreeing)
    assert wide.seed_standard_error > 5 * narrow.seed_standard_error
    # With df near 1 the t factor is about 12.7: two disagreeing seeds pin down
    # little, and the interval is cut to the possible accuracies.
    assert wide.low == 0.0 and wide.high == 1.0


def test_paired_difference_resolves_a_clear_effect_with_two_seeds():
    rng = np.random.default_rng(3)
    base = rng.random((2, 1000))
    better = (base < 0.85).astype(np.uint8)
    worse = (base < 0.70).astype(np.uint8)  # same hard images: strongly paired
    interval = intervals.difference_interval(better, worse)
    assert interval.estimate == pytest.approx(better.mean() - worse.mean())
    assert interval.low > 0 and interval.resolved
    assert interval.points().startswith("+")
    reverse = intervals.difference_interval(worse, better)
    assert reverse.high < 0 and reverse.resolved


def test_pairing_over_images_narrows_the_interval():
    rng = np.random.default_rng(4)
    base = rng.random((2, 1000))
    a, b = (base < 0.80).astype(np.uint8), (base < 0.78).astype(np.uint8)
    paired = intervals.difference_interval(a, b)
    shuffled = intervals.difference_interval(a, b[:, rng.permutation(1000)])
    assert paired.image_standard_error < shuffled.image_standard_error / 2


def test_one_seed_is_never_resolved_even_when_zero_is_excluded():
    rng = np.random.default_rng(5)
    base = rng.random((1, 1000))
    interval = intervals.difference_interval((base < 0.9).astype(np.uint8), (base < 0.5).astype(np.uint8))
    assert interval.excludes_zero and not interval.resolved
    assert "n = 1 seed," in interval.points()


def test_no_effect_is_not_resolved():
    rng = np.random.default_rng(6)
    a, b = _runs(rng, [0.6, 0.6], 500), _runs(rng, [0.6, 0.6], 500)
    interval = intervals.difference_interval(a, b)
    assert interval.low < 0 < interval.high and not interval.resolved


def test_unequal_seed_counts_fall_back_to_unpaired_seeds():
    rng = np.random.default_rng(7)
    interval = intervals.difference_interval(_runs(rng, [0.8, 0.82, 0.81], 800), _runs(rng, [0.6, 0.62], 800))
    assert interval.seeds == 2 and interval.seed_standard_error is not None and interval.resolved


def test_difference_refuses_different_test_sets():
    with pytest.raises(ValueError, match="same test images. Received: 10 and 12 images"):
        intervals.difference_interval(np.ones((2, 10)), np.ones((2, 12)))
    with pytest.raises(ValueError, match="shaped \\[seeds, images\\]"):
        intervals.accuracy_interval(np.ones((2, 3, 4)))


def test_intervals_repeat_exactly():
    rng = np.random.default_rng(8)
    a, b = _runs(rng, [0.7, 0.72], 600), _runs(rng, [0.65, 0.66], 600)
    assert intervals.difference_interval(a, b) == intervals.difference_interval(a, b)


def test_interval_coverage_is_near_nominal():
    # 200 experiments with a true difference of 0: about 5% should exclude zero.
    rng = np.random.default_rng(9)
    excluded = 0
    for _ in range(200):
        a, b = _runs(rng, [0.7, 0.7], 400), _runs(rng, [0.7, 0.7], 400)
        excluded += intervals.difference_interval(a, b, resamples=300).excludes_zero
    assert excluded <= 25


def test_mean_and_spread_and_its_format():
    assert intervals.mean_and_spread([0.8, 0.82]) == pytest.approx((0.81, math.sqrt(0.0002), 2))
    assert intervals.mean_and_spread([0.5]) == (0.5, None, 1)
    assert intervals.format_mean_spread([0.8, 0.82]) == "81.0 +- 1.4 (n = 2)"
    assert intervals.format_mean_spread([0.5, float("nan")]) == "50.0 (n = 1)"
    assert intervals.format_mean_spread([]) == "n/a"
    with pytest.raises(ValueError, match="at least one finite value"):
        intervals.mean_and_spread([float("nan")])


def test_packed_bits_round_trip_and_refuse_damage():
    scores = np.random.default_rng(10).integers(0, 2, 1003)
    text = pack_bits(scores)
    assert np.array_equal(unpack_bits(text, 1003), scores)
    with pytest.raises(ValueError, match="bits stored for 2000 images"):
        unpack_bits(text, 2000)
    with pytest.raises(ValueError, match="not base64"):
        unpack_bits("###", 10)


def test_seeds_that_agree_exactly_give_the_image_interval():
    rng = np.random.default_rng(11)
    base = rng.random(1000)
    a = np.stack([base < 0.8, base < 0.8]).astype(np.uint8)
    b = np.stack([base < 0.7, base < 0.7]).astype(np.uint8)
    interval = intervals.difference_interval(a, b)
    assert interval.seed_standard_error == 0.0
    assert interval.high - interval.low < 0.05


def test_a_difference_interval_never_leaves_minus_one_to_one():
    """Two seeds that disagree wildly give t(1) * se far past 100 points; a
    difference of accuracies cannot, so the interval stops at -1 and 1 (and
    the estimate is untouched)."""
    rng = np.random.default_rng(8)
    a, b = _runs(rng, [0.55, 0.57], 2000), _runs(rng, [0.10, 0.36], 2000)
    interval = intervals.difference_interval(a, b)
    assert interval.low == -1.0 and interval.high == 1.0
    assert interval.estimate == pytest.approx(a.mean() - b.mean()) and not interval.resolved
    unclipped = interval.estimate + 12.7062047 * math.sqrt(interval.image_standard_error ** 2
                                                           + interval.seed_standard_error ** 2)
    assert unclipped > 1.0
