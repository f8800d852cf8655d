"""The sliding plan: each window is Spark's own moving range frame over the entity's rows in time order.

A moving frame (RANGE BETWEEN w PRECEDING AND CURRENT ROW) reads its events again for every row, so
its cost grows with the events per window; where windows hold a handful of events it is the cheapest
exact plan (one shuffle, one sort, no helper rows). Each function's moving implementation comes from
the registry (`engine.features.functions`). Events at one time are ordered by value, nulls first, for
first, last, last-N and lags, as in the other plans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column, Window, WindowSpec
from pyspark.sql import functions as F

from engine.config.features import Closed
from engine.features.frames import Moving, moving_events, moving_frame

if TYPE_CHECKING:
    from engine.features.compile import Lag, Windowed


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

    def windowed(self, f: Windowed) -> Column:
        frame = moving_frame(self.ordered, f.micros, f.closed)
        return f.aggregation.moving(Moving(self.values[f.input.ref], frame, self.time, self.event, f))

    def lag(self, lag: Lag, ttl_micros: int) -> Column:
        """The k-th previous event strictly before t, within the TTL."""
        frame = moving_frame(self.ordered, ttl_micros, Closed.LEFT)
        events = moving_events(Moving(self.values[lag.input.ref], frame, self.time, self.event))
        return F.when(F.size(events) >= lag.k, F.element_at(events, -lag.k)["v"])
