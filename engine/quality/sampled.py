"""The statistical layer's measurements: Deequ's metrics of the checks on a sample, and what the
intervals need besides (sample size, non-null counts, spread, order statistics), in one Deequ run,
so the sample costs one scan.

The one moment Deequ lacks is the kurtosis, which the interval of a standard deviation needs: Deequ
takes the means of x^2, x^3 and x^4 (columns added to the sample, so in the same scan), and the
fourth central moment follows from them. That loses precision when the mean is far from zero
relative to the spread; beyond `MAX_MEAN_OVER_SPREAD` the kurtosis is not trusted and the check
goes to the full data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from py4j.java_gateway import JavaObject
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.config.quality import CheckConfig
from engine.quality.deequ import ERROR, metric_values, run_checks

ORDER_STATISTIC_ERROR = 0.001  # relative rank error of the order statistics that bound a quantile
MAX_MEAN_OVER_SPREAD = 100.0  # past it, the fourth central moment from raw moments loses ~8 digits or more
_POWER = "__featurelake_pow{}_{}"


@dataclass(frozen=True)
class SampleMetrics:
    """What one sample pass measured: each check's Deequ metric and the inputs of its interval."""

    rows: int
    expected_rows: int
    values: dict[str, float | None]
    messages: dict[str, str]
    non_null: dict[str, int]
    stddev: dict[str, float | None]
    kurtosis: dict[str, float | None]
    quantile_bounds: dict[str, tuple[float, float]]
    span: dict[str, tuple[float, float]]


def measure_sample(
    sample: DataFrame,
    checks: list[CheckConfig],
    ranks: dict[str, tuple[float, float]],
    as_of: datetime,
    *,
    expected_rows: int,
) -> SampleMetrics:
    """Run the checks' Deequ constraints on `sample` with the analyzers their intervals need."""
    from pydeequ import analyzers as A

    jvm = sample.sparkSession._jvm
    numeric = sorted({c.columns[0] for c in checks if c.kind in ("mean", "stddev", "quantile")})
    stddev_columns = sorted({c.columns[0] for c in checks if c.kind == "stddev"})
    for column in stddev_columns:
        for power in (2, 3, 4):
            sample = sample.withColumn(_POWER.format(power, column), F.pow(F.col(column).cast("double"), power))

    def analyzer(name: str, *args: object) -> JavaObject:
        return getattr(A, name)(*args)._set_jvm(jvm)._analyzer_jvm

    size = analyzer("Size")
    complete = {c: analyzer("Completeness", c) for c in numeric}
    spread = {c: analyzer("StandardDeviation", c) for c in numeric}
    average = {c: analyzer("Mean", c) for c in stddev_columns}
    powers = {(c, k): analyzer("Mean", _POWER.format(k, c)) for c in stddev_columns for k in (2, 3, 4)}
    lowest = {c: analyzer("Minimum", c) for c in numeric}
    highest = {c: analyzer("Maximum", c) for c in numeric}
    order = {
        c.name: analyzer("ApproxQuantiles", c.columns[0], list(ranks[c.name]), ORDER_STATISTIC_ERROR)
        for c in checks
        if c.kind == "quantile"
    }
    extra = [size, *complete.values(), *spread.values(), *average.values(), *powers.values()]
    extra += [*lowest.values(), *highest.values(), *order.values()]
    outcomes, metrics = run_checks(sample.sparkSession, sample, [(c, ERROR) for c in checks], as_of, analyzers=extra)

    def one(found: JavaObject) -> float | None:
        values = metric_values(metrics[found])
        return values[0] if values else None

    rows = int(one(size) or 0)
    quantile_bounds = {}
    for name, found in order.items():
        values = metric_values(metrics[found])
        if values:
            quantile_bounds[name] = (min(values), max(values))
    kurtosis = {c: excess_kurtosis(one(average[c]), *(one(powers[c, k]) for k in (2, 3, 4))) for c in stddev_columns}
    return SampleMetrics(
        rows=rows,
        expected_rows=expected_rows,
        values={name: outcome.metric for name, outcome in outcomes.items()},
        messages={name: outcome.message for name, outcome in outcomes.items()},
        non_null={c: round((one(complete[c]) or 0.0) * rows) for c in numeric},
        stddev={c: one(spread[c]) for c in numeric},
        kurtosis=kurtosis,
        quantile_bounds=quantile_bounds,
        span={c: (low, one(highest[c])) for c in numeric if (low := one(lowest[c])) is not None},
    )


def excess_kurtosis(
    mean: float | None, second: float | None, third: float | None, fourth: float | None
) -> float | None:
    """Excess kurtosis m4 / m2^2 - 3 from the raw moments; None when they cannot give it precisely."""
    if None in (mean, second, third, fourth):
        return None
    variance = second - mean * mean
    if variance <= 0 or abs(mean) > MAX_MEAN_OVER_SPREAD * variance**0.5:
        return None
    central = fourth - 4 * mean * third + 6 * mean * mean * second - 3 * mean**4
    return max(central / (variance * variance), 1.0) - 3.0  # a kurtosis is at least 1
