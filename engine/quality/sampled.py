"""The statistical layer's measurements on a sample: each check's metric and its interval, from the
sample's clusters.

The sample is small and already in memory, so Deequ's fixed cost per run (its planning, two Spark
jobs and a callback per constraint) would outweigh the sample itself. One Spark job reads instead, for
each sampled row, its cluster, whether it complies with each ratio check (Deequ's own constraint
condition, `row_predicate`, which quarantine uses too), and the checked numeric values; metrics,
clusters' totals and intervals follow in numpy. The checks must have passed Deequ's preconditions
(`require_evaluable`) before the sample is drawn, so a check Deequ cannot evaluate fails as it would
in a Deequ run. The full data, and every check the sample cannot decide, go through a Deequ
VerificationSuite.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pyarrow as pa
from pyspark.sql import functions as F

from engine.config.check_kinds import Interval
from engine.config.quality import CheckConfig
from engine.quality.deequ import row_predicate
from engine.quality.intervals import (
    Estimate,
    mean_interval,
    per_cluster,
    proportion_interval,
    quantile_interval,
    stddev_interval,
    t_score,
)
from engine.quality.sampling import CLUSTER, Sample
from engine.runtime.arrow import to_arrow
from engine.runtime.py4j_bridge import ansi_off

# Deequ's approximate quantile is within 1% of rank of the exact one: a sample's interval is widened
# by as much, so that what it decides agrees with what Deequ measures on the full data.
DEEQU_QUANTILE_RANK_ERROR = 0.01
_COMPLIES = "__featurelake_complies_{}"


def _values(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column's non-null values, and where they are."""
    data = table[column]
    valid = data.is_valid().to_numpy(zero_copy_only=False)
    return data.fill_null(0.0).to_numpy()[valid], valid


def _estimate(check: CheckConfig, table: pa.Table, index: int, clusters: int, confidence: float) -> Estimate | None:
    """The check's metric on the sample with its interval; None when the sample holds no value to measure."""
    cluster = table[CLUSTER].to_numpy()
    z = t_score(confidence, clusters)
    estimate = check.check_kind.sample
    if estimate == Interval.PROPORTION:
        complies = table[_COMPLIES.format(index)].to_numpy()
        sizes = per_cluster(cluster, np.ones(len(cluster)), clusters)
        return proportion_interval(float(complies.mean()), per_cluster(cluster, complies, clusters), sizes, z)
    x, valid = _values(table, check.columns[0])
    if not len(x) or not np.isfinite(x).all():  # Deequ's metric of a NaN is no metric: the full data decides
        return None
    where = cluster[valid]
    sizes = per_cluster(where, np.ones(len(x)), clusters)
    mean, spread = float(x.mean()), float(x.std())  # the population standard deviation, as Deequ's
    if estimate == Interval.MEAN:
        return mean_interval(mean, per_cluster(where, x, clusters), sizes, z, spread)
    if estimate == Interval.STDDEV:
        deviations = per_cluster(where, (x - mean) ** 2 - spread * spread, clusters)
        return stddev_interval(spread, deviations, sizes, confidence)
    ordered = np.sort(x)
    point = float(ordered[max(0, math.ceil(check.quantile * len(x)) - 1)])
    return quantile_interval(check.quantile, point, x, where, clusters, z, DEEQU_QUANTILE_RANK_ERROR)


def measure_sample(
    sample: Sample, checks: list[CheckConfig], as_of: datetime, confidence: float
) -> dict[str, Estimate | None]:
    """Each check's estimate on the sample, by check name (None when the sample cannot bound it)."""
    proportions = [c.check_kind.sample == Interval.PROPORTION for c in checks]
    numeric = sorted({c.columns[0] for c, ratio in zip(checks, proportions, strict=True) if not ratio})
    with ansi_off(sample.df.sparkSession):  # Deequ's SQL semantics, as in a Deequ run
        table = to_arrow(
            sample.df.select(
                CLUSTER,
                *[
                    row_predicate(c, as_of).cast("double").alias(_COMPLIES.format(i))
                    for i, c in enumerate(checks)
                    if proportions[i]
                ],
                *[F.col(c).cast("double").alias(c) for c in numeric],
            )
        )
    if not table.num_rows:
        return dict.fromkeys((c.name for c in checks), None)
    return {c.name: _estimate(c, table, i, sample.clusters, confidence) for i, c in enumerate(checks)}
