"""The point-in-time (as-of) join, sort-based: one shuffle and one sort per set of entity keys.

Spine rows and feature rows are unioned per entity and ordered by time; each spine row takes the
running maximum of (event time, created time, values) over the feature rows before it. That is the
latest available row, found in a single pass, never a join on the key followed by a rank over every
candidate pair. Tables with the same keys share the pass. A feature row enters the sweep at its
availability time, so a value never reaches a spine row that precedes its availability, however
early its event time is. For a wide spine only its distinct (keys, time) points go through the
sort, and the rows get their values back in an equi-join, spread over every task.

For wide feature tables, `as_of_join_winners` sorts only times: the sweep finds each point's winning
(event, created) per table, and the values of just those rows join back afterwards, so hundreds of
feature columns never go through the shuffle and the sort.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.sql import quote_identifier, string_literal

EVENT = "_event_ts"
AVAILABLE = "_available_at"
CREATED = "_created_at"
_SWEEP = "_sweep_ts"
_SIDE = "_side"  # 0: feature row, 1: spine row; feature rows first at equal times (at or before)
_SPINE = "_spine"
_KEY = "_key"  # + key index
_VALUE = "_value"  # + table index (in the sweep) or chunk index (joined to the winners)
_BEST = "_best"  # + table index
_POINT = "_point_ts"
_WON = "_won"  # + table index: the winning row's (event, created, _row)
_TABLE = "_table"
_ROW = "_row"  # a number unique to each feature row within the job that finds the winners
_LOW = "_low"  # + table index: the winner found with the rows in the opposite order of _row
_TIED = "_tied"  # a point that two or more rows with the winning (event, created) are available to: a tie
_TIE = "_tie"  # + table index: a tied point's whole winning row
BROADCAST_WINNERS = 1_000_000  # up to this many (point, table) pairs, the winners are broadcast
BROADCAST_VALUES = 4_000_000  # up to this many values per chunk (points times features), its values too


@dataclass(frozen=True)
class AsOfSpec:
    """How one feature table joins: its keys, its features (renamed in the output), TTL and strictness."""

    keys: tuple[str, ...]
    features: tuple[str, ...]
    output_names: tuple[str, ...]
    ttl_seconds: int | None = None
    strict: bool = False


def _sweep_time(spec: AsOfSpec) -> Column:
    """When a feature row may first join: at its availability, and never before its event time
    (strictly after it when `strict`, as timestamps are in microseconds)."""
    event = F.col(EVENT) + F.expr("INTERVAL 1 MICROSECOND") if spec.strict else F.col(EVENT)
    return F.greatest(F.col(AVAILABLE), event)


def _value_type(features: DataFrame, spec: AsOfSpec) -> T.StructType:
    fields = {f.name: f for f in features.schema.fields}
    return T.StructType([fields[c] for c in (EVENT, CREATED, *spec.features)])


def as_of_join(
    spine: DataFrame,
    tables: list[tuple[DataFrame, AsOfSpec]],
    spine_timestamp: str,
    points: DataFrame | None = None,
) -> DataFrame:
    """Each spine row with, per table, the latest feature row available at its time within the TTL (else nulls).

    All `tables` share the same keys, so one shuffle and one sort serve them all: their rows are
    unioned with the spine's, each table's values in a column of its own, and one window pass keeps
    a running maximum per table. Each table's frame holds the keys, `_event_ts`, `_available_at`,
    `_created_at` and its features. Ties on the event time go to the later created time. Spine rows
    with a null key or time get nulls; feature rows with a null key, event or availability time
    never join.

    By default each spine row goes through the sort whole, in one struct: the cheapest plan for a
    narrow spine. With `points` (any DataFrame with the spine's keys and time and the same (keys,
    time) values, such as the spine before wide columns were added), only the distinct (keys, time)
    points go through the sort, and the spine rows get their point's values in an equi-join on
    (keys, time): for a wide spine, or few entities, where one task would sort whole rows.
    """
    keys = tables[0][1].keys
    if any(spec.keys != keys for _, spec in tables):
        raise ValueError("as_of_join: every table of one sweep must have the same keys")
    types = [_value_type(features, spec) for features, spec in tables]
    values = [f"{_VALUE}{i}" for i in range(len(tables))]
    at = [f"{_KEY}{i}" for i in range(len(keys))]  # fresh names: the join back is not a self-join
    carried = points is None  # the spine rows go through the sort whole
    if carried:
        whole = F.struct(*(quote_identifier(c) for c in spine.columns)).alias(_SPINE)
        sweeping = spine.select(*_renamed(keys, at), F.col(spine_timestamp).alias(_SWEEP), whole)
    else:
        placed = reduce(operator.and_, [F.col(c).isNotNull() for c in (*keys, spine_timestamp)])
        sweeping = points.where(placed).select(*_renamed(keys, at), F.col(spine_timestamp).alias(_SWEEP)).distinct()
    union = sweeping.withColumns(
        {_SIDE: F.lit(1), **{v: F.lit(None).cast(t) for t, v in zip(types, values, strict=True)}}
    )
    nothing = [F.lit(None).cast(T.StructType(spine.schema.fields)).alias(_SPINE)] if carried else []
    for i, (features, spec) in enumerate(tables):
        usable = reduce(operator.and_, [F.col(c).isNotNull() for c in (*keys, EVENT, AVAILABLE)])
        own = F.struct(EVENT, CREATED, *spec.features)
        union = union.unionByName(
            features.where(usable).select(
                *_renamed(keys, at),
                _sweep_time(spec).alias(_SWEEP),
                *nothing,
                F.lit(0).alias(_SIDE),
                *(
                    own.alias(v) if j == i else F.lit(None).cast(t).alias(v)
                    for j, (t, v) in enumerate(zip(types, values, strict=True))
                ),
            )
        )
    so_far = Window.partitionBy(*at).orderBy(_SWEEP, _SIDE).rowsBetween(Window.unboundedPreceding, 0)
    best = [f"{_BEST}{i}" for i in range(len(tables))]
    found = union.select(
        *at,
        _SWEEP,
        _SIDE,
        *([_SPINE] if carried else []),
        *(F.max(v).over(so_far).alias(b) for v, b in zip(values, best, strict=True)),
    ).where(F.col(_SIDE) == 1)
    # The output columns as SQL, parsed by Spark in one call: a training set may have thousands.
    outputs = []
    for b, (_, spec) in zip(best, tables, strict=True):
        fresh = f"{b}.{EVENT} IS NOT NULL AND {_SWEEP} IS NOT NULL"
        if spec.ttl_seconds is not None:
            fresh += f" AND {b}.{EVENT} >= {_SWEEP} - INTERVAL {spec.ttl_seconds} SECONDS"
        outputs += [
            f"CASE WHEN {fresh} THEN {b}.{quote_identifier(name)} END AS {quote_identifier(out)}"
            for name, out in zip(spec.features, spec.output_names, strict=True)
        ]
    if carried:
        return found.selectExpr(f"{_SPINE}.*", *outputs)
    found = found.selectExpr(*at, _SWEEP, *outputs)
    on = [spine[k] == found[a] for k, a in zip(keys, at, strict=True)] + [spine[spine_timestamp] == found[_SWEEP]]
    return spine.join(found, on, "left").drop(*at, _SWEEP)  # by name: one call, however wide the rows


def as_of_join_winners(
    spine: DataFrame,
    tables: list[tuple[DataFrame, AsOfSpec]],
    spine_timestamp: str,
    points: DataFrame,
    *,
    point_rows: int | None = None,
) -> DataFrame:
    """`as_of_join`'s result, with the values joined to the winners after a sweep of times alone.

    The sweep keeps each table's running maximum of (event time, created time) over the rows available
    before each (keys, time) point of `points`: the winner's identity, as `as_of_join` ranks rows. Each
    table's rows with a winner's (keys, event, created) are then read with their values and matched to
    the points they won, if still available by then (a later correction with the same times never
    leaks). Among exact ties (same keys, event and created times) the row with the greatest values wins
    whole, as in the sweep: the sweep also finds the points that two or more rows with the winning
    times are available to, and those points take the greatest whole row, read in one more scan that
    only a table with such a point pays. Every other point has one candidate row, so the chunks of
    its values join without an aggregation.
    The winners are computed when this is called (one job of narrow rows). Given `point_rows` (the
    points' count), few winners are broadcast, and the feature rows stream past them, never shuffled
    whole; few values are broadcast to the spine too, so the last stage runs in the spine's partitions.
    """
    keys = tables[0][1].keys
    if any(spec.keys != keys for _, spec in tables):
        raise ValueError("as_of_join_winners: every table of one sweep must have the same keys")
    at = [f"{_KEY}{i}" for i in range(len(keys))]
    # Computed here, in one narrow job: the plan that reads the wide rows then holds no sweep, and the
    # broadcast holds rows already known.
    winners = _winners(tables, points, spine_timestamp, at).localCheckpoint(eager=True)
    tied = {r[0] for r in winners.where(_TIED).select(_TABLE).distinct().collect()}
    # Each table's features are read in chunks narrow enough for whole-stage code generation
    # (spark.sql.codegen.maxFields), so a scan hands the join column batches and copies only the rows
    # that match; a wider scan would turn every row into an object first.
    room = max(1, int(spine.sparkSession.conf.get("spark.sql.codegen.maxFields", "100")) - len(keys) - 8)
    few_winners = point_rows is not None and point_rows * len(tables) <= BROADCAST_WINNERS
    result, outputs, c = spine, [], 0
    for i, (features, spec) in enumerate(tables):
        mine = winners.where(F.col(_TABLE) == i).drop(_TABLE)
        alone = mine.where(~F.col(_TIED)) if i in tied else mine  # points with one candidate
        read = {}  # each feature's value, as SQL
        for part in _chunks(spec.features, room):
            point, value = [*(f"{a}_{c}" for a in at), f"{_POINT}_{c}"], f"{_VALUE}{c}"
            best = _packed(_candidates(features, spec, part, _hinted(alone, few_winners), at), at, point, part, value)
            if point_rows is not None and point_rows * len(part) <= BROADCAST_VALUES:
                best = F.broadcast(best)
            result = _joined_to_points(result, best, (*keys, spine_timestamp), point)
            read |= {n: f"{value}.{quote_identifier(n)}" for n in part}
            c += 1
        if i in tied:  # a point with several candidates takes the whole row with the greatest values
            tie, point = f"{_TIE}{i}", [f"{a}_{_TIE}{i}" for a in (*at, _POINT)]
            candidates = _candidates(features, spec, spec.features, _hinted(mine.where(_TIED), few_winners), at)
            settled = _packed(candidates, at, point, spec.features, tie).groupBy(*point).agg(F.max(tie).alias(tie))
            few = point_rows is not None and point_rows * len(spec.features) <= BROADCAST_VALUES
            result = _joined_to_points(result, _hinted(settled, few), (*keys, spine_timestamp), point)
            read = {
                n: f"CASE WHEN {tie} IS NOT NULL THEN {tie}.{quote_identifier(n)} ELSE {v} END" for n, v in read.items()
            }
        outputs += [
            f"{read[n]} AS {quote_identifier(out)}" for n, out in zip(spec.features, spec.output_names, strict=True)
        ]
    return result.selectExpr(*(quote_identifier(c) for c in spine.columns), *outputs)


def _winners(
    tables: list[tuple[DataFrame, AsOfSpec]], points: DataFrame, spine_timestamp: str, at: list[str]
) -> DataFrame:
    """Per point and table with a fresh winner: (keys, point, table, event, created, tied), in one sweep of times.

    `tied` says whether two or more rows with the winning (event, created) are available at the point:
    a second running maximum puts the rows in the opposite order of a number unique to each row within
    this job, and finds another row than the first one does only on such a tie.
    """
    keys = tables[0][1].keys
    won = [f"{_WON}{i}" for i in range(len(tables))]
    low = [f"{_LOW}{i}" for i in range(len(tables))]
    stamp = f"STRUCT<{EVENT}: TIMESTAMP, {CREATED}: TIMESTAMP, {_ROW}: BIGINT>"
    nothing = [f"CAST(NULL AS {stamp}) AS {w}" for w in (*won, *low)]
    placed = reduce(operator.and_, [F.col(c).isNotNull() for c in (*keys, spine_timestamp)])
    sweeping = points.where(placed).select(*_renamed(keys, at), F.col(spine_timestamp).alias(_SWEEP)).distinct()
    union = sweeping.selectExpr(*at, _SWEEP, f"1 AS {_SIDE}", *nothing)
    usable = reduce(operator.and_, [F.col(c).isNotNull() for c in (*keys, EVENT, AVAILABLE)])
    times = f"'{EVENT}', CAST({EVENT} AS TIMESTAMP), '{CREATED}', CAST({CREATED} AS TIMESTAMP)"
    for i, (features, spec) in enumerate(tables):
        # The SQL of every column in one call: a sweep of many tables carries two columns per table.
        own = {won[i]: f"named_struct({times}, '{_ROW}', {_ROW})", low[i]: f"named_struct({times}, '{_ROW}', -{_ROW})"}
        stamps = [f"{own[w]} AS {w}" if w in own else null for w, null in zip((*won, *low), nothing, strict=True)]
        union = union.unionByName(
            features.where(usable)
            .withColumns({_ROW: F.monotonically_increasing_id(), _SWEEP: _sweep_time(spec)})
            .selectExpr(
                *(f"{quote_identifier(k)} AS {a}" for k, a in zip(keys, at, strict=True)),
                _SWEEP,
                f"0 AS {_SIDE}",
                *stamps,
            )
        )
    so_far = Window.partitionBy(*at).orderBy(_SWEEP, _SIDE).rowsBetween(Window.unboundedPreceding, 0)
    found = union.select(*at, _SWEEP, _SIDE, *(F.max(w).over(so_far).alias(w) for w in (*won, *low)))
    entries = []
    for i, (_, spec) in enumerate(tables):
        fresh = f"{won[i]}.{EVENT} IS NOT NULL"
        if spec.ttl_seconds is not None:
            fresh += f" AND {won[i]}.{EVENT} >= {_SWEEP} - INTERVAL {spec.ttl_seconds} SECONDS"
        entry = f"named_struct('{_TABLE}', {i}, '{_WON}', {won[i]}, '{_TIED}', {won[i]}.{_ROW} != -{low[i]}.{_ROW})"
        entries.append(f"CASE WHEN {fresh} THEN {entry} END")
    exploded = found.where(F.col(_SIDE) == 1).selectExpr(
        *at, f"{_SWEEP} AS {_POINT}", f"explode(array({', '.join(entries)})) AS {_WON}"
    )
    return exploded.where(F.col(_WON).isNotNull()).selectExpr(
        *at,
        _POINT,
        f"{_WON}.{_TABLE} AS {_TABLE}",
        f"{_WON}.{_WON}.{EVENT} AS {EVENT}",
        f"{_WON}.{_WON}.{CREATED} AS {CREATED}",
        f"{_WON}.{_TIED} AS {_TIED}",
    )


def _candidates(
    features: DataFrame, spec: AsOfSpec, names: tuple[str, ...], winners: DataFrame, at: list[str]
) -> DataFrame:
    """The rows of one table with a winner's (keys, event, created) and the columns `names`, each with
    the point it won, if still available by then (a later correction with the same times never leaks).

    Several rows are candidates for one point only on an exact tie."""
    usable = reduce(operator.and_, [F.col(c).isNotNull() for c in (*spec.keys, EVENT, AVAILABLE)])
    own = (
        features.where(usable)
        .withColumn(_SWEEP, _sweep_time(spec))
        .selectExpr(
            *(f"{quote_identifier(k)} AS {a}" for k, a in zip(spec.keys, at, strict=True)),
            f"CAST({EVENT} AS TIMESTAMP) AS {EVENT}",
            f"CAST({CREATED} AS TIMESTAMP) AS {CREATED}",
            _SWEEP,
            *(quote_identifier(n) for n in names),
        )
    )
    return winners.join(own, [*at, EVENT, CREATED]).where(F.col(_SWEEP) <= F.col(_POINT))


def _packed(candidates: DataFrame, at: list[str], point: list[str], names: tuple[str, ...], column: str) -> DataFrame:
    """The candidates with their point's keys and time renamed to `point`, and `names` packed in one
    struct `column`: the joins move one column, and the values spread out last."""
    packed = ", ".join(f"{string_literal(n)}, {quote_identifier(n)}" for n in names)
    renamed = (f"{a} AS {p}" for a, p in zip((*at, _POINT), point, strict=True))
    return candidates.selectExpr(*renamed, f"named_struct({packed}) AS {column}")


def _joined_to_points(result: DataFrame, values: DataFrame, on: tuple[str, ...], point: list[str]) -> DataFrame:
    """`result` left-joined to per-point `values` on its columns `on` (keys, time) against `point`."""
    return result.join(values, [result[k] == values[p] for k, p in zip(on, point, strict=True)], "left")


def _hinted(frame: DataFrame, broadcast: bool) -> DataFrame:
    return F.broadcast(frame) if broadcast else frame


def _chunks(names: tuple[str, ...], size: int) -> list[tuple[str, ...]]:
    """`names` in the fewest runs of at most `size`, of near-equal length (none for no names)."""
    if not names:
        return []
    count = -(-len(names) // size)
    step = -(-len(names) // count)
    return [names[k : k + step] for k in range(0, len(names), step)]


def _renamed(columns: tuple[str, ...], names: list[str]) -> list[Column]:
    return [F.col(c).alias(n) for c, n in zip(columns, names, strict=True)]
