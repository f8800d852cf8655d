"""Windowed aggregations per entity, exact at every row: the rows each plan reads, and the running plan.

`group_features` lays out the events and query rows (known-at times, ranges, time buckets) and hands
them to the plan chosen for the group (`engine.features.plans`): sliding frames, the vectorized pass,
or the running plan below, which works in linear time for every function and window.

Rows enter the windows of their entity at their known-at time `a`; a query row at time `t` sees the
window `(t-w, t]` (closed right) or `[t-w, t)` (closed left). Every feature is built from frames
that only grow (UNBOUNDED PRECEDING to a fixed offset), which Spark evaluates incrementally, so the
cost per row does not depend on how many events a window holds:

- count, sum, mean, variance: running totals up to `t` minus running totals up to `t - w`;
- min, max: time tiles of length `w`, so the window is the part of tile T(t) up to `t` (a running
  extreme within the tile, read from an ascending frame) plus the part of tile T(t)-1 after `t - w`
  (a running extreme read from a descending frame); a struct keyed by tile keeps each frame's
  extreme within one tile;
- first, last: the earliest event after `t - w` (descending frame) and the latest up to `t`;
- distinct counts: each event is "the latest of its value in the window" for `t` in
  `[a, min(next a of that value, a + w))`, so a +1 at `a` and a -1 marker row at the interval's end
  make the distinct count a running total;
- lags and last-N values: each event keeps its last K events (a bounded frame), read as of `t`.

Skew: rows are partitioned by entity and by time bucket (`skew_split` x the longest look-back), and
each bucket also receives copies of the events in the look-back before it, so a hot entity spreads
over many tasks. Groups with a lifetime window need all history and are partitioned by entity only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial, reduce

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

from engine.config.features import FeaturesConfig
from engine.errors import ConfigError
from engine.features.compile import MICROS, GroupPlan, Lag, Windowed
from engine.features.plans import Choice
from engine.features.sliding import SlidingCompiler
from engine.features.vectorized import vectorized_features

_AT, _BUCKET, _OWN, _EV, _Q = "_fl_at", "_fl_bucket", "_fl_own", "_fl_ev", "_fl_q"
_HIST, _POS = "_fl_hist", "_fl_pos"
_UNBOUNDED = Window.unboundedPreceding


def _micros(df: DataFrame, column: str, key: str) -> Column:
    fields = {f.name: f.dataType for f in df.schema.fields}
    if column not in fields:
        raise ConfigError(f"{key}: column '{column}' is not in the input ({', '.join(fields)})")
    if not isinstance(fields[column], TimestampType):
        raise ConfigError(f"{key}: column '{column}' is {fields[column].simpleString()}, not a timestamp")
    return F.unix_micros(F.col(column))


def _check_columns(df: DataFrame, plan: GroupPlan) -> None:
    present = set(df.columns)
    wanted = list(plan.group.keys) + [i.column for i in plan.inputs if i.column]
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ConfigError(f"features.groups.{plan.group.name}: columns {missing} are not in the input")


def check_inputs(events: DataFrame, plan: GroupPlan, cfg: FeaturesConfig) -> None:
    """Fail in one line when the group's keys, inputs or times are missing or not timestamps."""
    key = f"features.groups.{plan.group.name}"
    _check_columns(events, plan)
    _micros(events, cfg.timestamp, f"{key} timestamp")
    _micros(events, cfg.known_at or cfg.timestamp, f"{key} known_at")


def _input_values(plan: GroupPlan) -> dict[str, Column]:
    """The value of each input on an event row; null when the row fails the input's filter."""
    values = {}
    for source in plan.inputs:
        value = F.col(source.column) if source.column else F.lit(1)
        values[source.ref] = F.when(F.expr(source.filter), value) if source.filter else value
    return values


def _in_range(time: Column, start_micros: int | None, end_micros: int | None) -> Column:
    conditions = [time.isNotNull()]
    if start_micros is not None:
        conditions.append(time >= start_micros)
    if end_micros is not None:
        conditions.append(time < end_micros)
    return reduce(operator.and_, conditions)


class _Frames:
    """The window frames of one partitioning, named by what they cover relative to the row's time t."""

    def __init__(self, partition: list[str]) -> None:
        self.asc: WindowSpec = Window.partitionBy(*partition).orderBy(_AT)
        self.desc: WindowSpec = Window.partitionBy(*partition).orderBy(F.col(_AT).desc())

    def upto(self, closed: str) -> WindowSpec:
        """Events at or before t (closed right) or strictly before t (closed left)."""
        return self.asc.rangeBetween(_UNBOUNDED, 0 if closed == "right" else -1)

    def expired(self, micros: int, closed: str) -> WindowSpec:
        """Events that left the window: at or before t-w (right), strictly before t-w (left)."""
        return self.asc.rangeBetween(_UNBOUNDED, -micros if closed == "right" else -(micros + 1))

    def after(self, micros: int, closed: str) -> WindowSpec:
        """Events after t-w (right) or at or after t-w (left), read from the descending order."""
        return self.desc.rangeBetween(_UNBOUNDED, micros - 1 if closed == "right" else micros)


def _struct(*pairs: tuple[str, Column]) -> Column:
    return F.struct(*[column.alias(name) for name, column in pairs])


class _Compiler:
    """Turns each windowed feature into a column over the unioned rows, sharing repeated frames."""

    def __init__(self, frames: _Frames) -> None:
        self.frames = frames
        self.t = F.col(_AT)
        self.inputs: dict[str, Column] = {}

    def _input(self, key: str, build: Callable[[], Column]) -> Column:
        """A window function's argument, projected once before the windows (codegen, not per frame)."""
        name = f"_fl_arg_{key}"
        if name not in self.inputs:
            self.inputs[name] = build()
        return F.col(name)

    def windowed(self, f: Windowed) -> Column:
        builder = getattr(self, f"_{f.function}")
        return builder(f)

    # invertible: running totals up to t minus running totals up to t - w
    def _total(self, agg: Callable[[Column], Column], value: Column, f: Windowed) -> Column:
        upto = agg(value).over(self.frames.upto(f.closed))
        if f.micros is None:
            return upto
        return upto - F.coalesce(agg(value).over(self.frames.expired(f.micros, f.closed)), F.lit(0))

    def _count(self, f: Windowed) -> Column:
        return self._total(F.count, F.col(f.input.ref), f)

    def _sum(self, f: Windowed) -> Column:
        return F.when(self._count(f) > 0, self._total(F.sum, F.col(f.input.ref), f))

    def _double(self, f: Windowed) -> Column:
        return self._input(f"{f.input.ref}_double", lambda: F.col(f.input.ref).cast("double"))

    def _mean(self, f: Windowed) -> Column:
        count = self._count(f)
        return F.when(count > 0, self._total(F.sum, self._double(f), f) / count)

    def _variance(self, f: Windowed) -> Column:
        n = self._count(f)
        s1 = self._total(F.sum, self._double(f), f)
        square = self._input(f"{f.input.ref}_square", lambda: F.col(f.input.ref).cast("double") ** 2)
        s2 = self._total(F.sum, square, f)
        return F.when(n > 1, F.greatest((s2 - s1 * s1 / n) / (n - 1), F.lit(0.0)))

    def _stddev(self, f: Windowed) -> Column:
        return F.sqrt(self._variance(f))

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
        head = self._input(f"head_{tiled}", lambda: F.when(present, _struct(("k", own_tile), ("v", value))))
        tail = self._input(f"tail_{tiled}", lambda: F.when(present, _struct(("k", -own_tile), ("v", value))))
        head = extreme(head).over(self.frames.upto(f.closed))
        tail = extreme(tail).over(self.frames.after(f.micros, f.closed))
        in_head = F.when(head["k"] == own_tile, head["v"])
        previous = -(tile - 1) if largest else tile - 1
        in_tail = F.when(tail["k"] == previous, tail["v"])
        return (F.greatest if largest else F.least)(in_head, in_tail)

    def _max(self, f: Windowed) -> Column:
        return self._extreme(f, largest=True)

    def _min(self, f: Windowed) -> Column:
        return self._extreme(f, largest=False)

    # first and last non-null values; ties at one time resolve to the smaller (first) / larger (last) value
    def _keyed(self, f: Windowed) -> Column:
        value = F.col(f.input.ref)
        return self._input(
            f"keyed_{f.input.ref}", lambda: F.when(value.isNotNull(), _struct(("a", self.t), ("v", value)))
        )

    def _first(self, f: Windowed) -> Column:
        if f.micros is None:
            return F.min(self._keyed(f)).over(self.frames.upto(f.closed))["v"]
        earliest = F.min(self._keyed(f)).over(self.frames.after(f.micros, f.closed))
        inside = earliest["a"] <= self.t if f.closed == "right" else earliest["a"] < self.t
        return F.when(inside, earliest["v"])

    def _last(self, f: Windowed) -> Column:
        latest = F.max(self._keyed(f)).over(self.frames.upto(f.closed))
        if f.micros is None:
            return latest["v"]
        inside = latest["a"] > self.t - f.micros if f.closed == "right" else latest["a"] >= self.t - f.micros
        return F.when(inside, latest["v"])

    # distinct values: +1 on each event, -1 on its marker row; see the module docstring
    def _count_distinct(self, f: Windowed) -> Column:
        return F.coalesce(F.sum(F.col(_delta_ref(f))).over(self.frames.upto(f.closed)), F.lit(0))

    def _approx_count_distinct(self, f: Windowed) -> Column:
        return self._count_distinct(f)

    # last-N: the newest event at or before t keeps its last K events
    def _last_n(self, f: Windowed) -> Column:
        hist = self._newest_history(f.input.ref, self.frames.upto(f.closed))
        if f.micros is not None:
            low = self.t - f.micros
            hist = F.filter(hist, lambda e: e["a"] > low if f.closed == "right" else e["a"] >= low)
        start = F.greatest(F.size(hist) - f.n + 1, F.lit(1))
        return F.when(F.size(hist) > 0, F.transform(F.slice(hist, start, F.lit(f.n)), lambda e: e["v"]))

    def lag(self, lag: Lag, ttl_micros: int) -> Column:
        """The k-th previous event strictly before t, if it is within the TTL."""
        hist = self._newest_history(lag.input.ref, self.frames.upto("left"))
        event = F.when(F.size(hist) >= lag.k, F.element_at(hist, -lag.k))
        return F.when(event["a"] > self.t - ttl_micros, event["v"])

    def _newest_history(self, ref: str, frame: WindowSpec) -> Column:
        """The kept history (oldest first) of the newest event in `frame`."""
        keyed = self._input(
            f"history_{ref}",
            lambda: F.when(
                F.col(_EV), _struct(("a", self.t), ("p", F.col(f"{_POS}_{ref}")), ("h", F.col(_history_ref(ref))))
            ),
        )
        return F.max(keyed).over(frame)["h"]


def _delta_ref(f: Windowed) -> str:
    return f"_fl_d_{f.input.ref}_{f.window}"


def _history_ref(ref: str) -> str:
    return f"{_HIST}_{ref}"


def _date_micros(day: str | None) -> int | None:
    return None if day is None else int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * MICROS


def _bucketed(rows: DataFrame, bucket: int | None, horizon: int) -> DataFrame:
    """Assign each row its time bucket; an event in the last `horizon` of a bucket also goes to the next.

    One explode, not a union, so the rows' lineage is evaluated once. Rows without a time get a null
    bucket: a group of their own that no frame of a timed row reaches.
    """
    if bucket is None:
        return rows.withColumns({_BUCKET: F.when(F.col(_AT).isNotNull(), F.lit(0)).cast("long"), _OWN: F.lit(True)})
    own = F.floor(F.col(_AT) / bucket)
    home = _struct(("b", own), ("own", F.lit(True)))
    next_bucket = _struct(("b", own + 1), ("own", F.lit(False)))
    copied = F.col(_EV) & (F.col(_AT) >= (own + 1) * bucket - horizon)
    placed = rows.withColumn(
        "_fl_place", F.explode(F.when(copied, F.array(home, next_bucket)).otherwise(F.array(home)))
    )
    return placed.withColumns(
        {_BUCKET: F.col("_fl_place.b"), _OWN: F.col("_fl_place.own"), _Q: F.col(_Q) & F.col("_fl_place.own")}
    ).drop("_fl_place")


def _with_histories(events: DataFrame, *, plan: GroupPlan, partition: list[str]) -> DataFrame:
    """Each event keeps (time, value) of its last K events, itself last, for lags and last-N values.

    Events at one time are ordered by the column's own value; `_fl_pos_<ref>` records that order.
    """
    refs = sorted({lag.input.ref for lag in plan.lags} | {f.input.ref for f in plan.windowed if f.function == "last_n"})
    columns = {}
    for ref in refs:
        ordered = Window.partitionBy(*partition).orderBy(_AT, ref)
        kept = ordered.rowsBetween(-(plan.history_depth - 1), 0)
        columns[_history_ref(ref)] = F.collect_list(_struct(("a", F.col(_AT)), ("v", F.col(ref)))).over(kept)
        columns[f"{_POS}_{ref}"] = F.row_number().over(ordered)
    return events.withColumns(columns) if columns else events


def _with_distinct_markers(events: DataFrame, plan: GroupPlan, partition: list[str]) -> DataFrame:
    """+1 on each event and a -1 marker row where it stops being the latest of its value in the window.

    Each event row explodes into itself and its markers (one lineage, no union of filtered copies).
    """
    by_ref = {_delta_ref(f): f for f in plan.windowed if f.function in ("count_distinct", "approx_count_distinct")}
    distinct = list(by_ref.values())
    if not distinct:
        return events
    refs = sorted({f.input.ref for f in distinct})
    events = events.withColumns(
        {f"_fl_next_{ref}": F.lead(_AT).over(Window.partitionBy(*partition, ref).orderBy(_AT)) for ref in refs}
    )
    placements = [_struct(("kind", F.lit(0)), ("at", F.col(_AT)))]
    for i, f in enumerate(distinct, start=1):
        following = F.col(f"_fl_next_{f.input.ref}")
        end = following if f.micros is None else F.least(following, F.col(_AT) + f.micros)
        marked = F.col(_EV) & F.col(f.input.ref).isNotNull() & end.isNotNull()
        placements.append(F.when(marked, _struct(("kind", F.lit(i)), ("at", end))))
    placed = events.withColumn("_fl_place", F.explode(F.filter(F.array(*placements), lambda p: p.isNotNull())))
    kind, is_event = F.col("_fl_place.kind"), F.col("_fl_place.kind") == 0
    deltas = {
        _delta_ref(f): F.when(is_event & F.col(_EV) & F.col(f.input.ref).isNotNull(), F.lit(1)).when(
            kind == i, F.lit(-1)
        )
        for i, f in enumerate(distinct, start=1)
    }
    values = {ref.ref: F.when(is_event, F.col(ref.ref)) for ref in plan.inputs}
    flags = {_AT: F.col("_fl_place.at"), _EV: F.col(_EV) & is_event, _Q: F.col(_Q) & is_event}
    return placed.withColumns({**deltas, **values, **flags}).drop("_fl_place")


def _feature_columns(compiler: _Compiler | SlidingCompiler, plan: GroupPlan) -> dict[str, Column]:
    """Each windowed feature and lag of the group as a column of `compiler`'s plan."""
    features = {f.name: compiler.windowed(f) for f in plan.windowed}
    return features | {lag.name: compiler.lag(lag, plan.ttl_micros) for lag in plan.lags}


def _direct(
    queries: DataFrame, plan: GroupPlan, cfg: FeaturesConfig, choice: str, time: Column, keyed: Column
) -> DataFrame:
    """The features of rows that are their own events, with nothing copied: inputs are read where they are.

    Rows without a time sort last, so no timed row's frame reaches them.
    """
    if choice == "vectorized":
        sources = {i.ref: i.column or cfg.timestamp for i in plan.inputs if not i.filter}
        computed = {ref: value for ref, value in _input_values(plan).items() if ref not in sources}
        return vectorized_features(
            queries.withColumns(computed), plan, list(plan.group.keys), queries.columns, cfg.timestamp, sources
        )
    at = F.col(_AT)  # the time in micros, read after the frames too, so the timestamp is not needed there
    sliding = SlidingCompiler(list(plan.group.keys), at, _input_values(plan), F.lit(True), at.asc_nulls_last())
    placed = keyed & at.isNotNull()
    masked = [F.when(placed, c).alias(name) for name, c in _feature_columns(sliding, plan).items()]
    return queries.withColumn(_AT, time).select(*queries.columns, *masked)


def group_features(
    queries: DataFrame, plan: GroupPlan, cfg: FeaturesConfig, choice: Choice, events: DataFrame | None = None
) -> DataFrame:
    """Add the group's features to every query row, as of the row's `cfg.timestamp`.

    `events` defaults to the query rows themselves (event granularity). Query rows with a null key
    or time are kept with null features; with `cfg.start`/`cfg.end` only queries in that range are
    returned, and only the events their windows need are read.
    """
    key = f"features.groups.{plan.group.name}"
    keys = list(plan.group.keys)
    shared = events is None and cfg.known_at is None
    events = queries if events is None else events
    _check_columns(events, plan)
    query_time = _micros(queries, cfg.timestamp, f"{key} timestamp")
    event_time = _micros(events, cfg.known_at or cfg.timestamp, f"{key} known_at")
    start, end = _date_micros(cfg.start), _date_micros(cfg.end)
    horizon = plan.horizon_micros
    reach = None if start is None or plan.lifetime else start - horizon
    keyed = reduce(operator.and_, [F.col(k).isNotNull() for k in keys])
    # every query row in range is returned; one without a key or time is in no window and gets nulls
    wanted = _in_range(query_time, start, end) if (start or end) else F.lit(True)
    inputs = _input_values(plan)
    bucket = None if plan.lifetime or cfg.skew_split == 0 or not choice.split else cfg.skew_split * horizon
    partition = [*keys, _BUCKET]

    if shared and bucket is None and not (start or end) and choice.plan != "running":
        return _direct(queries, plan, cfg, choice.plan, query_time, keyed)
    running = choice.plan == "running"
    keep_history = partial(_with_histories, plan=plan, partition=partition) if running else (lambda df: df)
    if shared:
        event = keyed & _in_range(query_time, reach, end)
        rows = queries.where(event | wanted).withColumns(
            {
                **{ref: F.when(event, value) for ref, value in inputs.items()},
                _AT: query_time,
                _EV: event,
                _Q: wanted,
            }
        )
        rows = _bucketed(rows, bucket, horizon).transform(keep_history)
    else:
        event_rows = events.where(keyed & _in_range(event_time, reach, end)).select(
            *keys,
            *[v.alias(ref) for ref, v in inputs.items()],
            event_time.alias(_AT),
            F.lit(True).alias(_EV),
            F.lit(False).alias(_Q),
        )
        query_rows = queries.where(wanted).withColumns({_AT: query_time, _EV: F.lit(False), _Q: F.lit(True)})
        events_kept = _bucketed(event_rows, bucket, horizon).transform(keep_history)
        rows = events_kept.unionByName(_bucketed(query_rows, bucket, horizon), allowMissingColumns=True)
    if choice.plan == "vectorized":
        return vectorized_features(rows, plan, partition, queries.columns)
    placed = keyed & F.col(_AT).isNotNull()
    if choice.plan == "sliding":
        sliding = SlidingCompiler(partition, F.col(_AT), {i.ref: F.col(i.ref) for i in plan.inputs}, F.col(_EV))
        features = _feature_columns(sliding, plan)
        masked = [F.when(placed, F.col(name)).alias(name) for name in features]
        return rows.withColumns(features).where(F.col(_Q) & F.col(_OWN)).select(*queries.columns, *masked)
    rows = _with_distinct_markers(rows, plan, partition)

    compiler = _Compiler(_Frames(partition))
    features = _feature_columns(compiler, plan)
    return (
        rows.withColumns(compiler.inputs)
        .withColumns(features)
        .where(F.col(_Q) & F.col(_OWN))
        .select(*queries.columns, *[F.when(placed, F.col(name)).alias(name) for name in plan.features])
    )
