"""Enrichment joins: columns of another source, as of each driving row's time, through the as-of join."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.config.durations import duration_seconds
from engine.config.pipeline import JoinConfig
from engine.training.asof import AVAILABLE, CREATED, EVENT, AsOfSpec, as_of_join


def join_as_of(
    rows: DataFrame, other: DataFrame, join: JoinConfig, timestamp: str, points: DataFrame | None = None
) -> DataFrame:
    """Add `prefix<column>` for each of the join's columns from the latest row of `other` with equal keys
    and time <= the row's `timestamp` (within the TTL), else nulls.

    A row of `other` is available from its own time and is taken whole, so values of different rows
    never mix. `points`, the same rows before wide columns were added, spares computing `rows` twice.
    """
    time = F.col(join.timestamp).cast("timestamp")
    observations = other.select(
        *join.keys, time.alias(EVENT), time.alias(AVAILABLE), time.alias(CREATED), *join.columns
    )
    ttl = duration_seconds(join.ttl, "ttl") if join.ttl else None
    spec = AsOfSpec(
        keys=tuple(join.keys),
        features=tuple(join.columns),
        output_names=tuple(join.output_names()),
        ttl_seconds=ttl,
    )
    return as_of_join(rows, [(observations, spec)], timestamp, points)
