"""The point-in-time (as-of) join, sort-based: one shuffle and one sort per set of entity keys.

The spine's distinct (keys, time) points and the feature rows are unioned per entity and ordered by
time; each point takes the running maximum of (event time, created time, values) over the feature
rows before it. That is the latest available row, found in a single pass, never a join on the key
followed by a rank over every candidate pair. Only those narrow points go through the sort, which
runs one task per entity; the wide spine rows meet their results in an equi-join on (keys, time),
spread over every task however few the entities are. Tables with the same keys share the pass. A
feature row enters the sweep at its availability time, so a value never reaches a spine row that
precedes its availability, however early its event time is.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

EVENT = "_event_ts"
AVAILABLE = "_available_at"
CREATED = "_created_at"
_SWEEP = "_sweep_ts"
_SIDE = "_side"  # 0: feature row, 1: spine row; feature rows first at equal times (at or before)
_KEY = "_key"  # + key index
_VALUE = "_value"  # + table index
_BEST = "_best"  # + table index


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
    unioned with the spine's points, each table's values in a column of its own, and one window pass keeps
    a running maximum per table. Each table's frame holds the keys, `_event_ts`, `_available_at`,
    `_created_at` and its features. Ties on the event time go to the later created time. Spine rows
    with a null key or time get nulls; feature rows with a null key, event or availability time
    never join.

    The spine is read twice, for its points and for the join back; `points`, any DataFrame with the
    spine's keys and time and the same (keys, time) values, replaces the first read, so an expensive
    spine lineage (features computed just before) is not computed twice.
    """
    keys = tables[0][1].keys
    if any(spec.keys != keys for _, spec in tables):
        raise ValueError("as_of_join: every table of one sweep must have the same keys")
    types = [_value_type(features, spec) for features, spec in tables]
    values = [f"{_VALUE}{i}" for i in range(len(tables))]
    placed = reduce(operator.and_, [F.col(c).isNotNull() for c in (*keys, spine_timestamp)])
    at = [f"{_KEY}{i}" for i in range(len(keys))]  # fresh names: the join back is not a self-join
    points = (
        (spine if points is None else points)
        .where(placed)
        .select(*_renamed(keys, at), F.col(spine_timestamp).alias(_SWEEP))
        .distinct()
    )
    union = points.select(
        *at,
        _SWEEP,
        F.lit(1).alias(_SIDE),
        *(F.lit(None).cast(t).alias(v) for t, v in zip(types, values, strict=True)),
    )
    for i, (features, spec) in enumerate(tables):
        usable = reduce(operator.and_, [F.col(c).isNotNull() for c in (*keys, EVENT, AVAILABLE)])
        own = F.struct(EVENT, CREATED, *spec.features)
        union = union.unionByName(
            features.where(usable).select(
                *_renamed(keys, at),
                _sweep_time(spec).alias(_SWEEP),
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
        *at, _SWEEP, _SIDE, *(F.max(v).over(so_far).alias(b) for v, b in zip(values, best, strict=True))
    ).where(F.col(_SIDE) == 1)
    # The output columns as SQL, parsed by Spark in one call: a training set may have thousands.
    outputs = []
    for b, (_, spec) in zip(best, tables, strict=True):
        fresh = f"{b}.{EVENT} IS NOT NULL"
        if spec.ttl_seconds is not None:
            fresh += f" AND {b}.{EVENT} >= {_SWEEP} - INTERVAL {spec.ttl_seconds} SECONDS"
        outputs += [
            f"CASE WHEN {fresh} THEN {b}.{_quoted(name)} END AS {_quoted(out)}"
            for name, out in zip(spec.features, spec.output_names, strict=True)
        ]
    found = found.selectExpr(*at, _SWEEP, *outputs)
    on = [spine[k] == found[a] for k, a in zip(keys, at, strict=True)] + [spine[spine_timestamp] == found[_SWEEP]]
    return spine.join(found, on, "left").drop(*at, _SWEEP)  # by name: one call, however wide the rows


def _renamed(columns: tuple[str, ...], names: list[str]) -> list[Column]:
    return [F.col(c).alias(n) for c, n in zip(columns, names, strict=True)]


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
