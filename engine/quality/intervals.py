"""Confidence intervals for metrics measured on a uniform random sample.

A proportion gets a Wilson score interval, continuity-corrected (it stays inside [0, 1] and keeps its coverage near 0
and 1, where the normal interval fails); a mean gets the normal interval of the central limit
theorem; a standard deviation gets the normal interval of the sample variance; a quantile gets
the distribution-free interval between two order statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Estimate:
    """A metric with its interval; on full data the interval is the point itself."""

    value: float
    low: float
    high: float
    n: int


def z_score(confidence: float) -> float:
    """Two-sided standard-normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(hits: int, n: int, z: float) -> Estimate:
    """Wilson score interval with continuity correction (Newcombe, 1998) of `hits` in `n`.

    The correction makes the interval slightly conservative: its coverage stays at or above the
    nominal level for every p, where the plain Wilson interval dips below it for some p and n.
    A conservative interval sends more checks to the full data, never fewer.
    """
    p = hits / n
    if z == 0:
        return Estimate(p, p, p, n)
    q, z2, twice = 1 - p, z * z, 2 * (n + z * z)
    low_root = z2 - 2 - 1 / n + 4 * p * (n * q + 1)
    high_root = z2 + 2 - 1 / n + 4 * p * (n * q - 1)
    low = 0.0 if hits == 0 else max(0.0, (2 * n * p + z2 - 1 - z * math.sqrt(max(0.0, low_root))) / twice)
    high = 1.0 if hits == n else min(1.0, (2 * n * p + z2 + 1 + z * math.sqrt(max(0.0, high_root))) / twice)
    return Estimate(p, low, high, n)


def mean_interval(mean: float, stddev: float | None, n: int, z: float) -> Estimate:
    """Normal (CLT) interval of a mean from the sample mean and standard deviation."""
    half = z * (stddev or 0.0) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def stddev_interval(stddev: float, excess_kurtosis: float | None, n: int, z: float) -> Estimate:
    """Interval of a standard deviation through the normal approximation of the sample variance.

    Var(s^2) is about (mu4 - sigma^4 (n - 3) / (n - 1)) / n, with mu4 = (kurtosis + 3) sigma^4.
    """
    variance = stddev * stddev
    kurtosis = (excess_kurtosis or 0.0) + 3.0
    spread = max(0.0, (kurtosis - (n - 3) / (n - 1)) * variance * variance / n) if n > 1 else 0.0
    half = z * math.sqrt(spread)
    return Estimate(stddev, math.sqrt(max(0.0, variance - half)), math.sqrt(variance + half), n)


def quantile_ranks(q: float, n: int, z: float) -> tuple[float, float]:
    """The ranks (as fractions) whose order statistics bound the q-quantile with confidence z."""
    half = z * math.sqrt(q * (1 - q) / n)
    return max(0.0, q - half), min(1.0, q + half)
