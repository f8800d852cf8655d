"""The aggregation functions a feature group may name: one registry entry each.

An entry says everything the engine needs of a function:

- `moving`: the function over Spark's moving frame of the window (the sliding plan, and the running
  plan when the function has no running implementation);
- `running`: its linear-time implementation over growing frames (a `RunningCompiler` method), with the
  helper rows it reads (`running_rows`), or None;
- `vectorized`: its kernel in the numpy pass and the value kinds the kernel takes, or None (not
  vectorizable: a group using it runs in Spark);
- its output type, null semantics and description, which the feature schema and the docs show.

Adding a function is one `AGGREGATIONS.register(Aggregation(...))` plus its test: compiling a feature
declaration (before Spark starts) accepts its name, every plan computes it, and `reference_table()`
(the list in docs/features.md) shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.registry import Registry, markdown_table
from engine.features import vectorized as vx
from engine.features.frames import Moving, RunningCompiler, moving_events
from engine.features.placement import RunningRows

Kernel = Callable[["vx.Block", "vx.Feature", pa.DataType], pa.Array]
HLL_RELATIVE_SD = 0.05  # Spark's default for approx_count_distinct: a relative standard deviation of 5%


class Output(StrEnum):
    """A function's output type, as a value kind of its input decides it."""

    COUNT = "long"
    SUM = "long for integers, else double"
    DOUBLE = "double"
    INPUT = "the input's type"
    INPUT_LIST = "array of the input's type"

    def spark_type(self, kind: str, data_type: T.DataType) -> T.DataType:
        if self is Output.COUNT or (self is Output.SUM and kind == "int"):
            return T.LongType()
        if self in (Output.SUM, Output.DOUBLE):
            return T.DoubleType()
        return T.ArrayType(data_type, True) if self is Output.INPUT_LIST else data_type


@dataclass(frozen=True)
class Aggregation:
    """One aggregation function (see the module docstring). `describes` may use `{what}` and `{n}`;
    `label` names the function in feature names (`{n}`: the aggregation's n)."""

    name: str
    describes: str
    output: Output
    nulls: str
    moving: Callable[[Moving], Column]
    running: Callable[[RunningCompiler, object], Column] | None = None
    running_rows: RunningRows | None = None
    vectorized: Kernel | None = None
    vector_kinds: frozenset[str] = frozenset(vx.KINDS)
    collects: bool = False
    needs_column: bool = True
    takes_filter: bool = True
    takes_n: bool = False
    label: str = ""

    def label_for(self, n: int) -> str:
        return (self.label or self.name).format(n=n)

    def plans(self) -> str:
        """Which plans compute it, as the docs list them."""
        running = "running" if self.running is not None else "running (on moving frames)"
        if self.vectorized is None:
            vectorized = "not vectorizable"
        elif self.vector_kinds == frozenset(vx.KINDS):
            vectorized = "vectorized"
        else:
            vectorized = f"vectorized ({', '.join(k for k in vx.KINDS if k in self.vector_kinds)})"
        return f"sliding, {running}, {vectorized}"


AGGREGATIONS: Registry[Aggregation] = Registry("aggregation function")


def _over(function: Callable[[Column], Column]) -> Callable[[Moving], Column]:
    return lambda m: function(m.value).over(m.frame)


def _keyed(m: Moving, pick: Callable[[Column], Column]) -> Column:
    keyed = F.when(m.value.isNotNull(), F.struct(m.time.alias("a"), m.value.alias("v")))
    return pick(keyed).over(m.frame)["v"]


def _last_n(m: Moving) -> Column:
    events, n = moving_events(m), m.feature.n
    start = F.greatest(F.size(events) - n + 1, F.lit(1))
    return F.when(F.size(events) > 0, F.transform(F.slice(events, start, F.lit(n)), lambda e: e["v"]))


_SKIPS = "nulls skipped; null when the window has no value"
for _entry in (
    Aggregation(
        "count",
        "number of {what}",
        Output.COUNT,
        "counts non-null values (rows, without a column); 0 for an empty window",
        _over(F.count),
        RunningCompiler.count,
        vectorized=vx.numbers,
        needs_column=False,
    ),
    Aggregation(
        "sum",
        "sum of {what}",
        Output.SUM,
        _SKIPS,
        _over(F.sum),
        RunningCompiler.sum,
        None,
        vx.numbers,
        frozenset(vx.SUMMED),
    ),
    Aggregation(
        "mean",
        "mean of {what}",
        Output.DOUBLE,
        _SKIPS,
        _over(F.avg),
        RunningCompiler.mean,
        None,
        vx.numbers,
        frozenset(vx.SUMMED),
    ),
    Aggregation(
        "min",
        "minimum of {what}",
        Output.INPUT,
        f"{_SKIPS}; NaN is the largest number",
        _over(F.min),
        RunningCompiler.min,
        None,
        vx.numbers,
        frozenset(vx.ORDERED),
    ),
    Aggregation(
        "max",
        "maximum of {what}",
        Output.INPUT,
        f"{_SKIPS}; NaN is the largest number",
        _over(F.max),
        RunningCompiler.max,
        None,
        vx.numbers,
        frozenset(vx.ORDERED),
    ),
    Aggregation(
        "stddev",
        "sample standard deviation of {what}",
        Output.DOUBLE,
        "nulls skipped; null with fewer than two values",
        _over(F.stddev_samp),
        RunningCompiler.stddev,
        None,
        vx.numbers,
        frozenset(vx.SUMMED),
    ),
    Aggregation(
        "variance",
        "sample variance of {what}",
        Output.DOUBLE,
        "nulls skipped; null with fewer than two values",
        _over(F.var_samp),
        RunningCompiler.variance,
        None,
        vx.numbers,
        frozenset(vx.SUMMED),
    ),
    Aggregation(
        "count_distinct",
        "number of distinct values of {what}",
        Output.COUNT,
        "distinct non-null values; 0 for an empty window",
        lambda m: F.size(F.collect_set(m.value).over(m.frame)).cast("long"),
        RunningCompiler.count_distinct,
        RunningRows.DISTINCT_MARKERS,
        vx.distinct,
        frozenset(vx.ORDERED),
        collects=True,
    ),
    Aggregation(
        "approx_count_distinct",
        f"approximate number of distinct values of {{what}} (HyperLogLog++, relative standard deviation "
        f"{HLL_RELATIVE_SD:.0%})",
        Output.COUNT,
        "distinct non-null values, estimated; 0 for an empty window",
        lambda m: F.approx_count_distinct(m.value, HLL_RELATIVE_SD).over(m.frame),
    ),
    Aggregation(
        "first",
        "earliest non-null value of {what}",
        Output.INPUT,
        "the earliest non-null value; events at one time ordered by value; null when none",
        lambda m: _keyed(m, F.min),
        RunningCompiler.first,
        vectorized=vx.first_last,
    ),
    Aggregation(
        "last",
        "latest non-null value of {what}",
        Output.INPUT,
        "the latest non-null value; events at one time ordered by value; null when none",
        lambda m: _keyed(m, F.max),
        RunningCompiler.last,
        vectorized=vx.first_last,
    ),
    Aggregation(
        "last_n",
        "values of the last {n} events' {what}, oldest first",
        Output.INPUT_LIST,
        "the events' values as they are, nulls kept; null when the window has no event",
        _last_n,
        RunningCompiler.last_n,
        RunningRows.HISTORY,
        vx.last_n,
        collects=True,
        takes_filter=False,
        takes_n=True,
        label="last_{n}",
    ),
):
    AGGREGATIONS.register(_entry)


def reference_table() -> str:
    """The registered functions as the Markdown table docs/features.md lists."""
    header = ("function", "computes (of column `x`)", "output", "nulls", "plans")
    rows = [
        (f"`{a.name}`", a.describes.format(what="`x`", n="n"), a.output.value, a.nulls, a.plans()) for a in AGGREGATIONS
    ]
    return markdown_table(header, rows)
