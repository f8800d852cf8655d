"""Frame algebra of the running plan: every windowed feature from frames that only grow.

Rows enter the windows of their entity at their known-at time `a`; a query row at time `t` sees the
window `(t-w, t]` (closed right) or `[t-w, t)` (closed left). Each feature is built from frames that
only grow (UNBOUNDED PRECEDING to a fixed offset), which Spark evaluates incrementally, so the cost
per row does not depend on how many events a window holds:

- count, sum, mean, variance: running totals up to `t` minus running totals up to `t - w`;
- min, max: time tiles of length `w`, so the window is the part of tile T(t) up to `t` (a running
  extreme within the tile, read from an ascending frame) plus the part of tile T(t)-1 after `t - w`
  (a running extreme read from a descending frame); a struct keyed by tile keeps each frame's
  extreme within one tile;
- first, last: the earliest event after `t - w` (descending frame) and the latest up to `t`;
- distinct counts: running totals of the +1/-1 deltas placed by `placement.with_distinct_markers`;
- lags and last-N values: each event keeps its last K events (`placement.with_histories`), read as of `t`.

A function with no running implementation in the registry runs on Spark's moving frame over the same
rows (`RunningCompiler.moving`): exact, at the sliding plan's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import Column, Window, WindowSpec
from pyspark.sql import functions as F

from engine.config.features import Closed
from engine.features.placement import AT, EV, delta_ref, history_ref, position_ref, struct

if TYPE_CHECKING:  # compile reads the function registry, which builds on these frames
    from engine.features.compile import Lag, Windowed

_UNBOUNDED = Window.unboundedPreceding


@dataclass(frozen=True)
class Moving:
    """What a moving-frame implementation reads: the input's value on a row (null where the row is no
    event of the input), the window's frame, the row's time in microseconds, and whether it is an event."""

    value: Column
    frame: WindowSpec
    time: Column
    event: Column
    feature: Windowed | None = None


def moving_events(m: Moving) -> Column:
    """The frame's events (value kept even when null), in time order with ties by value, nulls first."""
    entry = F.struct(m.time.alias("a"), m.value.isNotNull().alias("present"), m.value.alias("v"))
    return F.array_sort(F.collect_list(F.when(m.event, entry)).over(m.frame))


def moving_frame(ordered: WindowSpec, micros: int | None, closed: Closed) -> WindowSpec:
    """(t-w, t] for closed right, [t-w, t) for closed left; all history before t for a lifetime window."""
    end = 0 if closed == Closed.RIGHT else -1
    if micros is None:
        return ordered.rangeBetween(_UNBOUNDED, end)
    return ordered.rangeBetween(-(micros - 1) if closed == Closed.RIGHT else -micros, end)


class _Frames:
    """The growing frames of one partitioning, named by what they cover relative to the row's time t."""

    def __init__(self, partition: list[str]) -> None:
        self.asc: WindowSpec = Window.partitionBy(*partition).orderBy(AT)
        self.desc: WindowSpec = Window.partitionBy(*partition).orderBy(F.col(AT).desc())

    def upto(self, closed: Closed) -> WindowSpec:
        """Events at or before t (closed right) or strictly before t (closed left)."""
        return self.asc.rangeBetween(_UNBOUNDED, 0 if closed == Closed.RIGHT else -1)

    def expired(self, micros: int, closed: Closed) -> WindowSpec:
        """Events that left the window: at or before t-w (right), strictly before t-w (left)."""
        return self.asc.rangeBetween(_UNBOUNDED, -micros if closed == Closed.RIGHT else -(micros + 1))

    def after(self, micros: int, closed: Closed) -> WindowSpec:
        """Events after t-w (right) or at or after t-w (left), read from the descending order."""
        return self.desc.rangeBetween(_UNBOUNDED, micros - 1 if closed == Closed.RIGHT else micros)


class RunningCompiler:
    """Turns each windowed feature into a column over the placed rows, sharing repeated frames.

    Its public methods are the running implementations the function registry names."""

    def __init__(self, partition: list[str]) -> None:
        self.frames = _Frames(partition)
        self.t = F.col(AT)
        self.inputs: dict[str, Column] = {}

    def _input(self, key: str, build: Callable[[], Column]) -> Column:
        """A window function's argument, projected once before the windows (codegen, not per frame)."""
        name = f"_fl_arg_{key}"
        if name not in self.inputs:
            self.inputs[name] = build()
        return F.col(name)

    def windowed(self, f: Windowed) -> Column:
        running = f.aggregation.running
        return running(self, f) if running is not None else self.moving(f)

    def moving(self, f: Windowed) -> Column:
        """A function without a running implementation, on Spark's moving frame over these rows."""
        frame = moving_frame(self.frames.asc, f.micros, f.closed)
        return f.aggregation.moving(Moving(F.col(f.input.ref), frame, self.t, F.col(EV), f))

    # invertible: running totals up to t minus running totals up to t - w
    def _total(self, agg: Callable[[Column], Column], value: Column, f: Windowed) -> Column:
        upto = agg(value).over(self.frames.upto(f.closed))
        if f.micros is None:
            return upto
        return upto - F.coalesce(agg(value).over(self.frames.expired(f.micros, f.closed)), F.lit(0))

    def count(self, f: Windowed) -> Column:
        return self._total(F.count, F.col(f.input.ref), f)

    def sum(self, f: Windowed) -> Column:
        return F.when(self.count(f) > 0, self._total(F.sum, F.col(f.input.ref), f))

    def _double(self, f: Windowed) -> Column:
        return self._input(f"{f.input.ref}_double", lambda: F.col(f.input.ref).cast("double"))

    def mean(self, f: Windowed) -> Column:
        count = self.count(f)
        return F.when(count > 0, self._total(F.sum, self._double(f), f) / count)

    def variance(self, f: Windowed) -> Column:
        n = self.count(f)
        s1 = self._total(F.sum, self._double(f), f)
        square = self._input(f"{f.input.ref}_square", lambda: F.col(f.input.ref).cast("double") ** 2)
        s2 = self._total(F.sum, square, f)
        return F.when(n > 1, F.greatest((s2 - s1 * s1 / n) / (n - 1), F.lit(0.0)))

    def stddev(self, f: Windowed) -> Column:
        return F.sqrt(self.variance(f))

    # extremes: running extreme of tile T(t) up to t, and of tile T(t)-1 after t - w
    def _extreme(self, f: Windowed, largest: bool) -> Column:
        value = F.col(f.input.ref)
        present = value.isNotNull()
        if f.micros is None:
            return (F.max if largest else F.min)(value).over(self.frames.upto(f.closed))
        tile = F.floor(self.t / f.micros)
        own_tile = tile if largest else -tile
        extreme = F.max if largest else F.min
        tiled = f"{f.input.ref}_{f.micros}_{'max' if largest else 'min'}"
        head = self._input(f"head_{tiled}", lambda: F.when(present, struct(("k", own_tile), ("v", value))))
        tail = self._input(f"tail_{tiled}", lambda: F.when(present, struct(("k", -own_tile), ("v", value))))
        head = extreme(head).over(self.frames.upto(f.closed))
        tail = extreme(tail).over(self.frames.after(f.micros, f.closed))
        in_head = F.when(head["k"] == own_tile, head["v"])
        previous = -(tile - 1) if largest else tile - 1
        in_tail = F.when(tail["k"] == previous, tail["v"])
        return (F.greatest if largest else F.least)(in_head, in_tail)

    def max(self, f: Windowed) -> Column:
        return self._extreme(f, largest=True)

    def min(self, f: Windowed) -> Column:
        return self._extreme(f, largest=False)

    # first and last non-null values; ties at one time resolve to the smaller (first) / larger (last) value
    def _keyed(self, f: Windowed) -> Column:
        value = F.col(f.input.ref)
        return self._input(
            f"keyed_{f.input.ref}", lambda: F.when(value.isNotNull(), struct(("a", self.t), ("v", value)))
        )

    def first(self, f: Windowed) -> Column:
        if f.micros is None:
            return F.min(self._keyed(f)).over(self.frames.upto(f.closed))["v"]
        earliest = F.min(self._keyed(f)).over(self.frames.after(f.micros, f.closed))
        inside = earliest["a"] <= self.t if f.closed == Closed.RIGHT else earliest["a"] < self.t
        return F.when(inside, earliest["v"])

    def last(self, f: Windowed) -> Column:
        latest = F.max(self._keyed(f)).over(self.frames.upto(f.closed))
        if f.micros is None:
            return latest["v"]
        low = self.t - f.micros
        inside = latest["a"] > low if f.closed == Closed.RIGHT else latest["a"] >= low
        return F.when(inside, latest["v"])

    def count_distinct(self, f: Windowed) -> Column:
        """+1 on each event, -1 on its marker row, summed up to t."""
        return F.coalesce(F.sum(F.col(delta_ref(f))).over(self.frames.upto(f.closed)), F.lit(0))

    def last_n(self, f: Windowed) -> Column:
        """The newest event at or before t keeps its last K events; those inside the window, the last n."""
        hist = self._newest_history(f.input.ref, self.frames.upto(f.closed))
        if f.micros is not None:
            low = self.t - f.micros
            hist = F.filter(hist, lambda e: e["a"] > low if f.closed == Closed.RIGHT else e["a"] >= low)
        start = F.greatest(F.size(hist) - f.n + 1, F.lit(1))
        return F.when(F.size(hist) > 0, F.transform(F.slice(hist, start, F.lit(f.n)), lambda e: e["v"]))

    def lag(self, lag: Lag, ttl_micros: int) -> Column:
        """The k-th previous event strictly before t, if it is within the TTL."""
        hist = self._newest_history(lag.input.ref, self.frames.upto(Closed.LEFT))
        event = F.when(F.size(hist) >= lag.k, F.element_at(hist, -lag.k))
        return F.when(event["a"] > self.t - ttl_micros, event["v"])

    def _newest_history(self, ref: str, frame: WindowSpec) -> Column:
        """The kept history (oldest first) of the newest event in `frame`."""
        keyed = self._input(
            f"history_{ref}",
            lambda: F.when(
                F.col(EV), struct(("a", self.t), ("p", F.col(position_ref(ref))), ("h", F.col(history_ref(ref))))
            ),
        )
        return F.max(keyed).over(frame)["h"]
