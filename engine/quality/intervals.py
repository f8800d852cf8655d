"""Confidence intervals for metrics measured on a random sample of rows or of row groups (clusters).

Every sample is treated as a cluster sample: a row-group sample's clusters are the row groups it
drew (rows subsampled at one rate within them, so each row had the same chance), and a row sample
is the special case of one row per cluster. The variance of each metric is the linearized
("ultimate cluster") variance of a ratio estimator from the clusters' totals: it carries the
between-group spread, so a table sorted or clustered by the checked column does not make the
interval too narrow. It treats the clusters as drawn with replacement, which overstates the variance
slightly (never understates it), and the normal quantile becomes Student's with clusters - 1 degrees
of freedom.

A proportion gets a continuity-corrected Wilson interval at its effective sample size (sample size
over design effect); a mean gets the normal interval of its linearized variance; a variance the
scaled chi-square interval with Satterthwaite's degrees of freedom; a quantile Woodruff's interval:
the order statistics at the ranks whose share is within the Wilson interval of the share below the
estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A metric with its interval; on full data the interval is the point itself."""

    value: float
    low: float
    high: float
    n: int
    design_effect: float | None = None  # clustered variance over that of as many independent rows


def z_score(confidence: float) -> float:
    """Two-sided standard-normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def t_score(confidence: float, clusters: int) -> float:
    """Two-sided Student quantile with clusters - 1 degrees of freedom (the normal one past 1,000)."""
    if clusters > 1_000:
        return z_score(confidence)
    from scipy.special import stdtrit

    return float(stdtrit(max(clusters - 1, 1), 0.5 + confidence / 2))


def wilson(hits: float, n: float, z: float) -> Estimate:
    """Wilson score interval with continuity correction (Newcombe, 1998) of `hits` in `n`.

    `n` may be an effective sample size (not whole). The correction makes the interval slightly
    conservative: its coverage stays at or above the nominal level for every p, where the plain
    Wilson interval dips below it for some p and n. A conservative interval sends more checks to the
    full data, never fewer.
    """
    p = hits / n
    if z == 0:
        return Estimate(p, p, p, round(n))
    q, z2, twice = 1 - p, z * z, 2 * (n + z * z)
    low_root = z2 - 2 - 1 / n + 4 * p * (n * q + 1)
    high_root = z2 + 2 - 1 / n + 4 * p * (n * q - 1)
    low = 0.0 if hits == 0 else max(0.0, (2 * n * p + z2 - 1 - z * math.sqrt(max(0.0, low_root))) / twice)
    high = 1.0 if hits == n else min(1.0, (2 * n * p + z2 + 1 + z * math.sqrt(max(0.0, high_root))) / twice)
    return Estimate(p, low, high, round(n))


def ratio_variance(totals: np.ndarray, sizes: np.ndarray, ratio: float) -> float:
    """Linearized variance of sum(totals) / sum(sizes) over clusters drawn with replacement."""
    m = len(totals)
    if m < 2 or not sizes.sum():
        return math.inf
    residuals = totals - ratio * sizes
    return m / (m - 1) * float(residuals @ residuals) / float(sizes.sum()) ** 2


def per_cluster(cluster: np.ndarray, values: np.ndarray, clusters: int) -> np.ndarray:
    """Each cluster's total of `values` (clusters numbered 0..clusters-1)."""
    return np.bincount(cluster, weights=values, minlength=clusters)


def effective_size(share: float, hits: np.ndarray, sizes: np.ndarray) -> float:
    """The sample size a simple random sample would need for the clustered variance of `share`
    (Korn and Graubard, 1998), at most the sample's size. A share of exactly 0 or 1 has no spread to
    measure a design effect from: it gets the worst one, as if each cluster were one row."""
    n, m = float(sizes.sum()), len(sizes)
    if not 0 < share < 1:
        return float(min(m, n))
    variance = ratio_variance(hits, sizes, share)
    return min(n, share * (1 - share) / variance) if variance > 0 else n


def proportion_interval(p: float, hits: np.ndarray, sizes: np.ndarray, z: float) -> Estimate:
    """Wilson interval of a share at the sample's effective size."""
    n = float(sizes.sum())
    effective = effective_size(p, hits, sizes)
    estimate = wilson(p * effective, effective, z)
    return Estimate(p, estimate.low, estimate.high, round(n), n / effective)


def mean_interval(mean: float, totals: np.ndarray, sizes: np.ndarray, z: float, spread: float) -> Estimate:
    """Normal interval of a mean from the clusters' sums and counts of non-null values.

    `spread` is the values' standard deviation: the design effect compares the clustered variance
    with the variance of as many independent values."""
    n = float(sizes.sum())
    variance = ratio_variance(totals, sizes, mean)
    half = z * math.sqrt(variance)
    simple = spread * spread / n if n else 0.0
    return Estimate(mean, mean - half, mean + half, round(n), variance / simple if simple else None)


def stddev_interval(stddev: float, deviations: np.ndarray, sizes: np.ndarray, confidence: float) -> Estimate:
    """Interval of a (population) standard deviation: the variance as a scaled chi-square with
    Satterthwaite's degrees of freedom, 2 s^4 / Var(s^2), so the interval is as skewed as the
    variance's own distribution.

    `deviations` are the clusters' totals of (x - mean)^2 - variance; their spread carries the
    values' kurtosis and the clustering at once."""
    from scipy.special import chdtri

    variance, n = stddev * stddev, round(float(sizes.sum()))
    spread = ratio_variance(deviations, sizes, 0.0)
    if not variance or not math.isfinite(spread):
        return Estimate(stddev, 0.0 if spread else stddev, math.inf if spread else stddev, n)
    df = 2 * variance * variance / spread if spread else math.inf
    if math.isinf(df):
        return Estimate(stddev, stddev, stddev, n)
    tail = (1 - confidence) / 2
    low = math.sqrt(df * variance / chdtri(df, tail))
    high = math.sqrt(df * variance / chdtri(df, 1 - tail))
    return Estimate(stddev, low, high, n)


def quantile_interval(
    q: float, estimate: float, values: np.ndarray, cluster: np.ndarray, clusters: int, z: float, rank_error: float
) -> Estimate:
    """Woodruff's interval of the q-quantile: the share of values at or below the estimate gets its
    Wilson interval around q at its effective size (widened by `rank_error` on each side), and the order
    statistics at those ranks bound the quantile.

    An end within one effective value of rank 0 or 1 is unbounded: a sample's extreme values cannot
    bound a quantile its ranks reach past (a sorted table's tail may lie in groups not drawn).
    `values` are the non-null values with their clusters."""
    n = len(values)
    below = per_cluster(cluster, (values <= estimate).astype(float), clusters)
    sizes = per_cluster(cluster, np.ones(n), clusters)
    effective = effective_size(float(below.sum()) / n, below, sizes)
    ranks = wilson(q * effective, effective, z)
    low_rank, high_rank = ranks.low - rank_error, ranks.high + rank_error
    ordered = np.sort(values)
    low = float(ordered[math.floor(low_rank * n)]) if low_rank > 1 / effective else -math.inf
    high = float(ordered[math.ceil(high_rank * n) - 1]) if high_rank < 1 - 1 / effective else math.inf
    return Estimate(estimate, min(low, estimate), max(high, estimate), n, n / effective)
