"""The point-in-time (as-of) join, sort-based: one shuffle and one sort per feature table.

Spine rows and feature rows are unioned per entity and ordered by time; each spine row takes the
running maximum of (event time, created time, values) over the feature rows before it. That is the
latest available row, found in a single pass, never a join on the key followed by a rank over every
candidate pair. A feature row enters the sweep at its availability time, so a value never reaches
a spine row that precedes its availability, however early its event time is.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

EVENT = "_event_ts"
AVAILABLE = "_available_at"
CREATED = "_created_at"
_SWEEP = "_sweep_ts"
_SIDE = "_side"  # 0: feature row, 1: spine row; feature rows first at equal times (at or before)
_SPINE = "_spine"
_VALUE = "_value"
_BEST = "_best"


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


def as_of_join(spine: DataFrame, features: DataFrame, spec: AsOfSpec, spine_timestamp: str) -> DataFrame:
    """Each spine row with the latest feature row available at its time, within the TTL (else nulls).

    `features` holds the keys, `_event_ts`, `_available_at`, `_created_at` and the feature columns.
    Ties on the event time go to the later created time. Spine rows with a null key or time get
    nulls; feature rows with a null key, event or availability time never join.
    """
    value_type = features.select(F.struct(EVENT, CREATED, *spec.features).alias(_VALUE)).schema[_VALUE].dataType
    spine_type = spine.select(F.struct(*spine.columns).alias(_SPINE)).schema[_SPINE].dataType
    spine_rows = spine.select(
        *spec.keys,
        F.col(spine_timestamp).alias(_SWEEP),
        F.lit(1).alias(_SIDE),
        F.struct(*spine.columns).alias(_SPINE),
        F.lit(None).cast(value_type).alias(_VALUE),
    )
    usable = F.lit(True)
    for column in (*spec.keys, EVENT, AVAILABLE):
        usable = usable & F.col(column).isNotNull()
    feature_rows = features.where(usable).select(
        *spec.keys,
        _sweep_time(spec).alias(_SWEEP),
        F.lit(0).alias(_SIDE),
        F.lit(None).cast(spine_type).alias(_SPINE),
        F.struct(EVENT, CREATED, *spec.features).alias(_VALUE),
    )
    so_far = Window.partitionBy(*spec.keys).orderBy(_SWEEP, _SIDE).rowsBetween(Window.unboundedPreceding, 0)
    joined = spine_rows.unionByName(feature_rows).withColumn(_BEST, F.max(_VALUE).over(so_far)).where(F.col(_SIDE) == 1)
    fresh = F.col(f"{_BEST}.{EVENT}").isNotNull() & F.col(_SWEEP).isNotNull()
    if spec.ttl_seconds is not None:
        fresh = fresh & (F.col(f"{_BEST}.{EVENT}") >= F.col(_SWEEP) - F.expr(f"INTERVAL {spec.ttl_seconds} SECONDS"))
    return joined.select(
        f"{_SPINE}.*",
        *(
            F.when(fresh, F.col(f"{_BEST}.`{name}`")).alias(out)
            for name, out in zip(spec.features, spec.output_names, strict=True)
        ),
    )
