"""The sliding plan: each window is Spark's own moving range frame over the entity's rows in time order.

A moving frame (RANGE BETWEEN w PRECEDING AND CURRENT ROW) reads its events again for every row, so
its cost grows with the events per window; where windows hold a handful of events it is the cheapest
exact plan (one shuffle, one sort, no helper rows). Events at one time are ordered by value, nulls
first, for first, last, last-N and lags, as in the other plans.
"""

from __future__ import annotations

from pyspark.sql import Column, Window, WindowSpec
from pyspark.sql import functions as F

from engine.features.compile import Lag, Windowed

_UNBOUNDED = Window.unboundedPreceding


class SlidingCompiler:
    """Columns of a group's features over rows partitioned by `partition` and ordered by `time` (micros).

    `values` gives each input's value on a row (null where the row is not an event of it) and `event`
    marks the rows that are events (for last-N and lags, which keep null values); `order` may put
    rows without a time last.
    """

    def __init__(
        self, partition: list[str], time: Column, values: dict[str, Column], event: Column, order: Column | None = None
    ) -> None:
        self.ordered: WindowSpec = Window.partitionBy(*partition).orderBy(time if order is None else order)
        self.time, self.values, self.event = time, values, event

    def _frame(self, micros: int | None, closed: str) -> WindowSpec:
        """(t-w, t] for closed right, [t-w, t) for closed left; all history before t for a lifetime window."""
        end = 0 if closed == "right" else -1
        if micros is None:
            return self.ordered.rangeBetween(_UNBOUNDED, end)
        return self.ordered.rangeBetween(-(micros - 1) if closed == "right" else -micros, end)

    def windowed(self, f: Windowed) -> Column:
        value, frame = self.values[f.input.ref], self._frame(f.micros, f.closed)
        simple = {
            "count": F.count,
            "sum": F.sum,
            "mean": F.avg,
            "min": F.min,
            "max": F.max,
            "variance": F.var_samp,
            "stddev": F.stddev_samp,
        }
        if f.function in simple:
            return simple[f.function](value).over(frame)
        if f.function in ("count_distinct", "approx_count_distinct"):
            return F.size(F.collect_set(value).over(frame)).cast("long")
        if f.function in ("first", "last"):
            keyed = F.when(value.isNotNull(), F.struct(self.time.alias("a"), value.alias("v")))
            return (F.min if f.function == "first" else F.max)(keyed).over(frame)["v"]
        events = self._events(value, frame)
        start = F.greatest(F.size(events) - f.n + 1, F.lit(1))
        return F.when(F.size(events) > 0, F.transform(F.slice(events, start, F.lit(f.n)), lambda e: e["v"]))

    def lag(self, lag: Lag, ttl_micros: int) -> Column:
        """The k-th previous event strictly before t, within the TTL."""
        events = self._events(self.values[lag.input.ref], self._frame(ttl_micros, "left"))
        return F.when(F.size(events) >= lag.k, F.element_at(events, -lag.k)["v"])

    def _events(self, value: Column, frame: WindowSpec) -> Column:
        """The frame's events (value kept even when null), in time order with ties by value, nulls first."""
        entry = F.struct(self.time.alias("a"), value.isNotNull().alias("present"), value.alias("v"))
        return F.array_sort(F.collect_list(F.when(self.event, entry)).over(frame))
