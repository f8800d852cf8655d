"""Checks compiled to Spark aggregates, so that any set of checks is measured in one pass.

Each check becomes a few named aggregate columns and a reader that turns the aggregated row into
an Estimate. The same aggregates serve the sample (with an interval) and the full data (z = 0,
so the interval is the point). Row-level checks also compile to a per-row predicate, which is
what quarantine uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import reduce

from pyspark.sql import Column, Row
from pyspark.sql import functions as F

from engine.config.quality import CheckConfig
from engine.quality.intervals import Estimate, mean_interval, quantile_ranks, stddev_interval, wilson

QUANTILE_ACCURACY = 100_000


@dataclass(frozen=True)
class Measure:
    """The aggregates of one check and how to read its estimate from the aggregated row."""

    aggregates: list[Column]
    read: Callable[[Row, float], Estimate | None]


def row_predicate(check: CheckConfig, as_of: datetime) -> Column:
    """True where a row complies with a row-level check; nulls comply except with completeness.

    `not_in_future`: a time later than the run's as-of time cannot have been observed yet."""
    if check.kind == "completeness":
        return reduce(lambda acc, c: acc & F.col(c).isNotNull(), check.columns, F.lit(True))
    if check.kind == "satisfies":
        return F.coalesce(F.expr(check.predicate), F.lit(False))
    column = F.col(check.columns[0])
    if check.kind == "allowed_values":
        complies = column.isin(list(check.values))
    elif check.kind == "range":
        low = column >= check.min if check.min is not None else F.lit(True)
        high = column <= check.max if check.max is not None else F.lit(True)
        complies = low & high
    elif check.kind == "non_negative":
        complies = column >= 0
    elif check.kind == "pattern":
        complies = column.rlike(check.pattern)
    elif check.kind == "not_in_future":
        complies = column <= F.lit(as_of)
    else:
        raise ValueError(f"{check.kind} is not a row-level check")
    return column.isNull() | complies


def _among(check: CheckConfig) -> Column:
    """The rows a ratio is taken over: all rows, or the non-null values of a one-column check."""
    if check.kind in ("completeness", "satisfies"):
        return F.lit(True)
    return F.col(check.columns[0]).isNotNull()


def _ratio(check: CheckConfig, prefix: str, as_of: datetime) -> Measure:
    among = _among(check)
    aggregates = [
        F.count_if(among & row_predicate(check, as_of)).alias(f"{prefix}_hits"),
        F.count_if(among).alias(f"{prefix}_n"),
    ]

    def read(row: Row, z: float) -> Estimate | None:
        n = row[f"{prefix}_n"]
        return wilson(row[f"{prefix}_hits"], n, z) if n else None

    return Measure(aggregates, read)


def _mean(check: CheckConfig, prefix: str) -> Measure:
    column = F.col(check.columns[0]).cast("double")
    aggregates = [
        F.count(column).alias(f"{prefix}_n"),
        F.avg(column).alias(f"{prefix}_mean"),
        F.stddev_samp(column).alias(f"{prefix}_sd"),
    ]

    def read(row: Row, z: float) -> Estimate | None:
        n = row[f"{prefix}_n"]
        return mean_interval(row[f"{prefix}_mean"], row[f"{prefix}_sd"], n, z) if n else None

    return Measure(aggregates, read)


def _stddev(check: CheckConfig, prefix: str) -> Measure:
    column = F.col(check.columns[0]).cast("double")
    aggregates = [
        F.count(column).alias(f"{prefix}_n"),
        F.stddev_samp(column).alias(f"{prefix}_sd"),
        F.kurtosis(column).alias(f"{prefix}_kurt"),
    ]

    def read(row: Row, z: float) -> Estimate | None:
        n = row[f"{prefix}_n"]
        if n is None or n < 2:
            return None
        return stddev_interval(row[f"{prefix}_sd"], row[f"{prefix}_kurt"], n, z)

    return Measure(aggregates, read)


def _quantile(check: CheckConfig, prefix: str, expected_n: int, z: float) -> Measure:
    """Quantile with the order statistics that bound it at the expected sample size.

    The ranks depend on n, which is known only after the pass; they are set for `expected_n`
    (the sample size if every value were non-null). When fewer values arrive, the interval would
    be too narrow, so it is widened to the whole observed span and the check goes to full data.
    """
    column = F.col(check.columns[0]).cast("double")
    low_q, high_q = quantile_ranks(check.quantile, max(expected_n, 1), z) if z else (check.quantile,) * 2
    aggregates = [
        F.count(column).alias(f"{prefix}_n"),
        F.percentile_approx(column, [low_q, check.quantile, high_q], QUANTILE_ACCURACY).alias(f"{prefix}_q"),
        F.min(column).alias(f"{prefix}_min"),
        F.max(column).alias(f"{prefix}_max"),
    ]

    def read(row: Row, z_read: float) -> Estimate | None:
        n = row[f"{prefix}_n"]
        if not n:
            return None
        low, value, high = row[f"{prefix}_q"]
        if z_read and n < 0.9 * expected_n:
            low, high = row[f"{prefix}_min"], row[f"{prefix}_max"]
        return Estimate(value, low, high, n) if z_read else Estimate(value, value, value, n)

    return Measure(aggregates, read)


def _size(prefix: str) -> Measure:
    def read(row: Row, z: float) -> Estimate:
        n = row[f"{prefix}_rows"]
        return Estimate(float(n), float(n), float(n), n)

    return Measure([F.count(F.lit(1)).alias(f"{prefix}_rows")], read)


def _freshness(check: CheckConfig, prefix: str, as_of: datetime) -> Measure:
    """Lag in seconds of the newest event time behind the run's as-of time."""
    newest = F.max(F.col(check.columns[0]).cast("timestamp"))
    lag = F.unix_micros(F.lit(as_of)) - F.unix_micros(newest)
    aggregates = [(lag / 1e6).alias(f"{prefix}_lag"), F.count(F.col(check.columns[0])).alias(f"{prefix}_n")]

    def read(row: Row, z: float) -> Estimate | None:
        lag_seconds = row[f"{prefix}_lag"]
        n = row[f"{prefix}_n"]
        return None if lag_seconds is None else Estimate(lag_seconds, lag_seconds, lag_seconds, n)

    return Measure(aggregates, read)


def compile_measure(
    check: CheckConfig, prefix: str, *, as_of: datetime, expected_n: int = 0, z: float = 0.0
) -> Measure:
    """The aggregates of one check (all kinds but schema, unique and references)."""
    if check.kind == "mean":
        return _mean(check, prefix)
    if check.kind == "stddev":
        return _stddev(check, prefix)
    if check.kind == "quantile":
        return _quantile(check, prefix, expected_n, z)
    if check.kind == "size":
        return _size(prefix)
    if check.kind == "freshness":
        return _freshness(check, prefix, as_of)
    return _ratio(check, prefix, as_of)


def bounds(check: CheckConfig) -> tuple[float | None, float | None]:
    """The interval a check's metric must lie in: [threshold, 1] for ratios, [min, max] otherwise."""
    if check.kind == "freshness":
        return None, float(check.max_lag_seconds)
    if check.kind in ("size", "mean", "stddev", "quantile"):
        return check.min, check.max
    return check.threshold, None


def expected(check: CheckConfig) -> str:
    """The bound as a person reads it: `>= 0.95`, `in [0, 10]`, `<= 86400 s lag`."""
    low, high = bounds(check)
    if check.kind == "freshness":
        return f"lag <= {check.max_lag}"
    if low is not None and high is not None:
        return f"in [{low:g}, {high:g}]"
    return f">= {low:g}" if low is not None else f"<= {high:g}"
