"""The report's intervals and fits, on hand-worked examples and by their coverage."""

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esforget.core.statistics import (
    WILSON_Z,
    at_level,
    difference_interval,
    mean_interval,
    shift_at_equal_x,
    slope_interval,
    wilson_interval,
)

T_975 = {2: 4.303, 3: 3.182}
"""Student's t, 97.5th percentile, from the printed table (degrees of freedom → value)."""


def test_the_mean_of_three_seeds_has_the_t_interval_of_the_table():
    estimate = mean_interval([1.0, 2.0, 3.0])  # mean 2, sample sd 1
    assert estimate.value == 2.0 and estimate.n == 3
    assert (estimate.low, estimate.high) == pytest.approx((2 - T_975[2] / 3**0.5, 2 + T_975[2] / 3**0.5), abs=1e-3)


def test_one_seed_has_no_between_seed_interval():
    estimate = mean_interval([0.4])
    assert (estimate.value, estimate.n, estimate.has_interval) == (0.4, 1, False)


def test_the_interval_covers_the_true_mean_95_times_in_100():
    rng = random.Random(0)
    covered = 0
    for _ in range(4000):
        estimate = mean_interval([rng.gauss(5.0, 2.0) for _ in range(3)])
        covered += estimate.low <= 5.0 <= estimate.high
    assert covered / 4000 == pytest.approx(0.95, abs=0.01)


def test_a_difference_of_means_has_welchs_interval():
    # a: mean 2, var 1; b: mean 0, var 4; n = 3 each: se² = 1/3 + 4/3, Welch dof = 2.94...
    estimate = difference_interval([1.0, 2.0, 3.0], [-2.0, 0.0, 2.0])
    se = (5 / 3) ** 0.5
    dof = (5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)
    assert estimate.value == 2.0 and 2.9 < dof < 3.0
    assert T_975[2] * se > estimate.high - 2.0 > T_975[3] * se  # t at 2.94 dof lies between


def test_the_slope_of_a_textbook_example_and_its_interval():
    # x̄ 3, ȳ 4, Sxy 6, Sxx 10: slope 0.6; SSE 2.4, s² 0.8, se √0.08
    estimate = slope_interval([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
    half = T_975[3] * 0.08**0.5
    assert estimate.value == pytest.approx(0.6)
    assert (estimate.low, estimate.high) == pytest.approx((0.6 - half, 0.6 + half), abs=1e-3)
    assert not slope_interval([1, 1, 1], [1, 2, 3]).has_interval  # no spread in x: no slope


def test_a_groups_shift_at_equal_x_is_recovered():
    rng = random.Random(1)
    x = [rng.uniform(0, 10) for _ in range(40)]
    group = [i % 2 == 0 for i in range(40)]
    y = [1 + 2 * xi - 3 * g + rng.gauss(0, 0.1) for xi, g in zip(x, group, strict=True)]
    estimate = shift_at_equal_x(x, y, group)
    assert estimate.low < -3 < estimate.high and estimate.high - estimate.low < 0.2
    assert math.isnan(shift_at_equal_x(x, y, [True] * 40).value)


def test_matched_accuracy_interpolates_between_the_checkpoints_around_the_crossing():
    steps, new, prior = [20, 0, 10], [0.5, 0.2, 0.3], [0.6, 0.9, 0.8]  # in any order
    assert at_level(steps, new, prior, 0.4) == pytest.approx(0.7)  # halfway from step 10 to 20
    assert at_level(steps, new, prior, 0.2) == 0.9  # the base already reaches it
    assert at_level(steps, new, prior, 0.6) is None  # never reached: counted, not dropped


@pytest.mark.parametrize(
    "correct, n, low, high",
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (50, 100, 0.4038, 0.5962), (1, 4, 0.0456, 0.6994)],
)
def test_wilson_interval_has_its_textbook_values(correct, n, low, high):
    assert wilson_interval(correct, n) == pytest.approx((low, high), abs=1e-4)


# --- Wilson score interval --------------------------------------------------------------------

COUNTS = st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(COUNTS)
def test_wilson_bounds_are_the_roots_of_the_score_equation(counts):
    """The Wilson interval is {p : (p̂ − p)² ≤ z² p(1 − p)/n}: the roots of a quadratic in p,
    solved here directly (clipped to [0, 1] only against rounding)."""
    correct, n = counts
    p, z2 = correct / n, WILSON_Z**2
    a, b, c = 1 + z2 / n, -(2 * p + z2 / n), p * p
    root = math.sqrt(max(b * b - 4 * a * c, 0.0))
    expected = (max(0.0, (-b - root) / (2 * a)), min(1.0, (-b + root) / (2 * a)))
    assert wilson_interval(correct, n) == pytest.approx(expected, abs=1e-9)


@given(COUNTS)
def test_wilson_interval_holds_the_observed_share_and_mirrors_for_the_complement(counts):
    correct, n = counts
    low, high = wilson_interval(correct, n)
    assert 0.0 <= low <= correct / n <= high <= 1.0
    assert low < high  # never a point: even 0/n and n/n keep some uncertainty
    mirror_low, mirror_high = wilson_interval(n - correct, n)
    assert (low, high) == pytest.approx((1 - mirror_high, 1 - mirror_low), abs=1e-12)


@given(st.integers(1, 100).map(lambda k: 2 * k), st.integers(2, 20))
def test_wilson_interval_narrows_with_more_items_at_the_same_share(n, factor):
    low, high = wilson_interval(n // 2, n)
    more_low, more_high = wilson_interval(n * factor // 2, n * factor)
    assert more_high - more_low < high - low


def test_wilson_interval_of_nothing_is_undefined():
    assert all(math.isnan(bound) for bound in wilson_interval(0, 0))
