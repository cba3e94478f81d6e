"""The intervals and fits the report's findings rest on.

* Between seeds: a quantity's mean over a method's seeds with a 95 % Student-t interval
  (n − 1 degrees of freedom). Seeds are few and a seed is what a rerun of the study resamples,
  so the t interval over seeds is the honest one; with one seed there is none, and the report
  says so and shows the item-level Wilson interval of the test split instead.
* Slopes: ordinary least squares of y on x with the slope's 95 % t interval (n − 2 degrees of
  freedom); and y on x plus a 0/1 group indicator, whose coefficient is the group's shift at
  equal x ("ES forgets more at equal norm").
* Items: a test split's accuracy with its 95 % Wilson score interval (the retention table's
  `ci_low`/`ci_high`), sound at 0 %, 100 % and small n.
* Matched accuracy: a run's prior-task accuracy at the first point its new-task accuracy
  reaches a level, linearly interpolated between the two checkpoints around the crossing.

Why scipy and numpy: the t quantiles and the least-squares fit are theirs; only the bookkeeping
(which rows form a sample) is this project's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A value with its interval (NaN bounds: no interval, e.g. one seed) and sample size."""

    value: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


def _t(dof: int) -> float:
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof))


def mean_interval(values: list[float]) -> Estimate:
    """Mean and 95 % t interval over independent values (seeds)."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if len(x) == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    half = _t(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return Estimate(mean, mean - half, mean + half, len(x))


def difference_interval(a: list[float], b: list[float]) -> Estimate:
    """mean(a) − mean(b) with Welch's 95 % interval (unequal variances, Welch–Satterthwaite
    degrees of freedom); no interval unless both samples have two or more values."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return Estimate(math.nan, math.nan, math.nan, len(x) + len(y))
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Estimate(diff, math.nan, math.nan, len(x) + len(y))
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0:
        return Estimate(diff, diff, diff, len(x) + len(y))
    dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = _t(dof) * se
    return Estimate(diff, diff - half, diff + half, len(x) + len(y))


def slope_interval(x: list[float], y: list[float]) -> Estimate:
    """OLS slope of y on x and its 95 % t interval; none with fewer than 3 points or no
    spread in x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) < 3 or np.ptp(xs) == 0:
        return Estimate(math.nan, math.nan, math.nan, len(xs))
    fit = stats.linregress(xs, ys)
    half = _t(len(xs) - 2) * float(fit.stderr)
    return Estimate(float(fit.slope), float(fit.slope) - half, float(fit.slope) + half, len(xs))


def shift_at_equal_x(x: list[float], y: list[float], group: list[bool]) -> Estimate:
    """Coefficient of the group indicator in y = a + b·x + c·group (OLS) with its 95 % t
    interval: how far the group's y lies from the others' at equal x. None when either group is
    empty or there are fewer than 4 points."""
    xs, ys, g = (np.asarray(v, dtype=float) for v in (x, y, group))
    n = len(xs)
    if n < 4 or g.min() == g.max():
        return Estimate(math.nan, math.nan, math.nan, n)
    design = np.column_stack([np.ones(n), xs, g])
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    residual = ys - design @ coef
    sigma2 = float(residual @ residual) / (n - 3)
    covariance = sigma2 * np.linalg.pinv(design.T @ design)
    half = _t(n - 3) * math.sqrt(max(float(covariance[2, 2]), 0.0))
    return Estimate(float(coef[2]), float(coef[2]) - half, float(coef[2]) + half, n)


def at_level(steps: list[int], new: list[float], prior: list[float], level: float) -> float | None:
    """Prior-task accuracy where the new-task accuracy first reaches `level`, checkpoints taken
    in step order and linearly interpolated between the last below and the first at or above;
    None if the run never reaches it."""
    order = sorted(range(len(steps)), key=steps.__getitem__)
    points = [(new[i], prior[i]) for i in order]
    for k, (reached, prior_there) in enumerate(points):
        if reached >= level:
            if k == 0:
                return prior_there
            before, prior_before = points[k - 1]
            share = (level - before) / (reached - before)
            return prior_before + share * (prior_there - prior_before)
    return None


WILSON_Z = 1.959963984540054
"""Standard-normal quantile of a two-sided 95 % interval."""


def wilson_interval(correct: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: sound at 0 %, 100 % and small n."""
    if n == 0:
        return float("nan"), float("nan")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0 % and 100 % the bound is exactly the observed share; the formula leaves ~1e-19.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high
