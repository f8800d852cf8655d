"""Windowed aggregations per entity, exact at every row: the orchestration of a group's plan.

`group_features` lays out the events and query rows (known-at times, ranges, time buckets) and hands
them to the plan chosen for the group (`engine.features.plans`): sliding frames (`sliding.py`), the
vectorized pass (`vectorized.py`), or the running plan (`frames.py`, over rows placed by
`placement.py`), which works in linear time for every function that has a running implementation.

Rows enter the windows of their entity at their known-at time `a`; a query row at time `t` sees the
window `(t-w, t]` (closed right) or `[t-w, t)` (closed left).

Skew: rows are partitioned by entity and by time bucket (`skew_split` x the longest look-back), and
each bucket also receives copies of the events in the look-back before it, so a hot entity spreads
over many tasks. Groups with a lifetime window need all history and are partitioned by entity only.
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime
from functools import partial, reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

from engine.config.features import FeaturesConfig, Plan
from engine.errors import ConfigError
from engine.features.compile import MICROS, GroupPlan
from engine.features.frames import RunningCompiler
from engine.features.placement import AT, BUCKET, EV, OWN, Q, bucketed, with_distinct_markers, with_histories
from engine.features.plans import Choice
from engine.features.sliding import SlidingCompiler
from engine.features.vectorized import vectorized_features


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


def _date_micros(day: str | None) -> int | None:
    return None if day is None else int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * MICROS


def _feature_columns(compiler: RunningCompiler | SlidingCompiler, plan: GroupPlan) -> dict[str, Column]:
    """Each windowed feature and lag of the group as a column of `compiler`'s plan."""
    features = {f.name: compiler.windowed(f) for f in plan.windowed}
    return features | {lag.name: compiler.lag(lag, plan.ttl_micros) for lag in plan.lags}


def _direct(
    queries: DataFrame, plan: GroupPlan, cfg: FeaturesConfig, choice: Plan, time: Column, keyed: Column
) -> DataFrame:
    """The features of rows that are their own events, with nothing copied: inputs are read where they are.

    Rows without a time sort last, so no timed row's frame reaches them.
    """
    if choice == Plan.VECTORIZED:
        sources = {i.ref: i.column or cfg.timestamp for i in plan.inputs if not i.filter}
        computed = {ref: value for ref, value in _input_values(plan).items() if ref not in sources}
        return vectorized_features(
            queries.withColumns(computed), plan, list(plan.group.keys), queries.columns, cfg.timestamp, sources
        )
    at = F.col(AT)  # the time in micros, read after the frames too, so the timestamp is not needed there
    sliding = SlidingCompiler(list(plan.group.keys), at, _input_values(plan), F.lit(True), at.asc_nulls_last())
    placed = keyed & at.isNotNull()
    masked = [F.when(placed, c).alias(name) for name, c in _feature_columns(sliding, plan).items()]
    return queries.withColumn(AT, time).select(*queries.columns, *masked)


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
    partition = [*keys, BUCKET]

    if shared and bucket is None and not (start or end) and choice.plan != Plan.RUNNING:
        return _direct(queries, plan, cfg, choice.plan, query_time, keyed)
    running = choice.plan == Plan.RUNNING
    keep_history = partial(with_histories, plan=plan, partition=partition) if running else (lambda df: df)
    if shared:
        event = keyed & _in_range(query_time, reach, end)
        rows = queries.where(event | wanted).withColumns(
            {
                **{ref: F.when(event, value) for ref, value in inputs.items()},
                AT: query_time,
                EV: event,
                Q: wanted,
            }
        )
        rows = bucketed(rows, bucket, horizon).transform(keep_history)
    else:
        event_rows = events.where(keyed & _in_range(event_time, reach, end)).select(
            *keys,
            *[v.alias(ref) for ref, v in inputs.items()],
            event_time.alias(AT),
            F.lit(True).alias(EV),
            F.lit(False).alias(Q),
        )
        query_rows = queries.where(wanted).withColumns({AT: query_time, EV: F.lit(False), Q: F.lit(True)})
        events_kept = bucketed(event_rows, bucket, horizon).transform(keep_history)
        rows = events_kept.unionByName(bucketed(query_rows, bucket, horizon), allowMissingColumns=True)
    if choice.plan == Plan.VECTORIZED:
        return vectorized_features(rows, plan, partition, queries.columns)
    placed = keyed & F.col(AT).isNotNull()
    if choice.plan == Plan.SLIDING:
        sliding = SlidingCompiler(partition, F.col(AT), {i.ref: F.col(i.ref) for i in plan.inputs}, F.col(EV))
        features = _feature_columns(sliding, plan)
        masked = [F.when(placed, F.col(name)).alias(name) for name in features]
        return rows.withColumns(features).where(F.col(Q) & F.col(OWN)).select(*queries.columns, *masked)
    rows = with_distinct_markers(rows, plan, partition)

    compiler = RunningCompiler(partition)
    features = _feature_columns(compiler, plan)
    return (
        rows.withColumns(compiler.inputs)
        .withColumns(features)
        .where(F.col(Q) & F.col(OWN))
        .select(*queries.columns, *[F.when(placed, F.col(name)).alias(name) for name in plan.features])
    )
