"""The snapshot spine: one row per entity per cadence boundary while the entity is within its TTL."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from engine.config.features import CADENCES, FeaturesConfig
from engine.features.compile import MICROS, GroupPlan


def snapshot_spine(events: DataFrame, plans: list[GroupPlan], cfg: FeaturesConfig) -> DataFrame:
    """Boundaries b (multiples of the cadence, UTC) with an event of the entity known in [b - ttl, b].

    Each distinct first boundary after an event extends to the next one or to the TTL's end, so
    every boundary is generated once and the work is linear in the output.
    """
    keys = list(plans[0].group.keys)
    ttl = max(plan.ttl_micros for plan in plans)  # the union of the groups' spines is the longest TTL's
    step = CADENCES[cfg.cadence] * MICROS
    known = F.unix_micros(F.col(cfg.known_at or cfg.timestamp))
    first = (F.ceil(known / step) * step).cast("long")
    starts = (
        events.where(known.isNotNull())
        .dropna(subset=keys)
        .groupBy(*keys, first.alias("first"))
        .agg(F.max(known).alias("latest"))
    )
    following = F.lead("first").over(Window.partitionBy(*keys).orderBy("first"))
    ttl_end = F.floor((F.col("latest") + ttl) / step) * step
    return (
        starts.withColumn("stop", F.least(following - step, ttl_end).cast("long"))
        .where(F.col("stop") >= F.col("first"))
        .select(*keys, F.explode(F.sequence("first", "stop", F.lit(step))).alias("b"))
        .select(*keys, F.timestamp_micros("b").alias(cfg.timestamp))
    )
