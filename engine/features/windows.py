"""Leak-free windowed aggregations per entity.

For a flight scheduled at t, the window of length w holds the other flights of the same entity
whose actual departure d satisfies t - w <= d < t. Events (departures) and queries (scheduled
departures) are unioned per entity and ordered by time:

- count and sum are differences of running totals (growing frames, linear cost), summed as
  decimals so that the difference is exact;
- max uses the moving range frame [-w, -1] over integer seconds, which is exactly that window.

A flight that left early lies in its own window. Its count and sum are subtracted. When it also
holds the window maximum, the maximum of the others comes from a join of those rows with the
events of the one or two window-length buckets their window overlaps.
"""

from __future__ import annotations

import operator
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from engine.config.schema import EntityConfig, FeaturesConfig, duration_seconds

_EXACT = "decimal(38,6)"


def feature_name(entity: str, aggregation: str, window: str) -> str:
    return f"{entity}_{aggregation}_{window}"


def window_feature_names(cfg: FeaturesConfig) -> list[str]:
    """Every windowed feature column, in table order: entity, then window, then aggregation."""
    return [feature_name(e.name, agg, w) for e in cfg.entities for w in cfg.windows for agg in cfg.aggregations]


def _seconds(window: str) -> int:
    return duration_seconds(window, "features.windows")


def _events_and_queries(flights: DataFrame, keys: list[str], value: str) -> tuple[DataFrame, DataFrame]:
    """Departed flights as events at their actual departure, and every flight as a query at its schedule."""
    keyed = flights.where(reduce(operator.and_, [F.col(k).isNotNull() for k in keys]))
    events = keyed.where(F.col("departed_epoch").isNotNull()).select(
        *keys, "flight_id", F.col("departed_epoch").alias("t"), F.col(value).cast("double").alias("value")
    )
    queries = keyed.select(
        *keys,
        "flight_id",
        F.col("sched_epoch").alias("t"),
        F.col("departed_epoch").alias("self_departed"),
        F.col(value).cast("double").alias("self_value"),
    )
    return events, queries


def _windowed_totals(events: DataFrame, queries: DataFrame, keys: list[str], windows: list[str]) -> DataFrame:
    """Per query: running count and exact sum before t and before t - w, and the max over [t - w, t)."""
    unioned = events.withColumns(
        {"self_departed": F.lit(None).cast("long"), "self_value": F.lit(None).cast("double"), "is_query": F.lit(False)}
    ).unionByName(queries.withColumns({"value": F.lit(None).cast("double"), "is_query": F.lit(True)}))
    ordered = Window.partitionBy(*keys).orderBy("t")
    before = ordered.rangeBetween(Window.unboundedPreceding, -1)
    exact = F.col("value").cast(_EXACT)
    totals = {"n_before": F.count("value").over(before), "s_before": F.sum(exact).over(before)}
    for window in windows:
        expired = ordered.rangeBetween(Window.unboundedPreceding, -(_seconds(window) + 1))
        totals |= {
            f"n_expired_{window}": F.count("value").over(expired),
            f"s_expired_{window}": F.sum(exact).over(expired),
            f"max_all_{window}": F.max("value").over(ordered.rangeBetween(-_seconds(window), -1)),
        }
    return unioned.withColumns(totals).where("is_query").drop("value", "is_query")


def _window_stats(totals: DataFrame, windows: list[str]) -> DataFrame:
    """Count, mean and max of the others per window; `fix_<w>` marks where the max still counts the flight."""
    stats: dict[str, Column] = {}
    for window in windows:
        departed, t = F.col("self_departed"), F.col("t")
        own = departed.isNotNull() & (departed >= t - _seconds(window)) & (departed < t)
        count = F.col("n_before") - F.col(f"n_expired_{window}") - own.cast("long")
        total = (
            F.coalesce(F.col("s_before"), F.lit(0))
            - F.coalesce(F.col(f"s_expired_{window}"), F.lit(0))
            - F.when(own, F.col("self_value").cast(_EXACT)).otherwise(F.lit(0))
        )
        stats |= {
            f"count_{window}": count,
            f"mean_{window}": F.when(count > 0, total.cast("double") / count),
            f"max_{window}": F.when(count > 0, F.col(f"max_all_{window}")),
            f"fix_{window}": (count > 0) & own & (F.col("self_value") >= F.col(f"max_all_{window}")),
        }
    return totals.withColumns(stats)


def _max_of_others(events: DataFrame, stats: DataFrame, keys: list[str], windows: list[str]) -> DataFrame:
    """Exact max over the window of each flagged query, excluding the query's own flight; one column per window.

    Events are bucketed by window length, so a query meets only the one or two buckets its window
    overlaps, never all events of its entity.
    """
    flagged = F.filter(
        F.array(
            *[
                F.struct(F.lit(w).alias("window"), F.lit(_seconds(w)).alias("window_s"), F.col(f"fix_{w}").alias("fix"))
                for w in windows
            ]
        ),
        lambda item: item["fix"],
    )
    needs = (
        stats.select(*keys, "flight_id", "t", F.explode(flagged).alias("need"))
        .select(*keys, "flight_id", "t", "need.window", "need.window_s")
        .withColumn(
            "bucket",
            F.explode(
                F.sequence(
                    F.floor((F.col("t") - F.col("window_s")) / F.col("window_s")),
                    F.floor((F.col("t") - 1) / F.col("window_s")),
                )
            ),
        )
        .alias("q")
    )
    spans = events.sparkSession.createDataFrame([(w, _seconds(w)) for w in windows], "window string, window_s long")
    bucketed = (
        events.join(F.broadcast(spans), how="cross")
        .withColumn("bucket", F.floor(F.col("t") / F.col("window_s")))
        .alias("e")
    )
    in_window = [
        *[F.col(f"q.{k}") == F.col(f"e.{k}") for k in [*keys, "window", "bucket"]],
        F.col("e.t") >= F.col("q.t") - F.col("q.window_s"),
        F.col("e.t") < F.col("q.t"),
        F.col("e.flight_id") != F.col("q.flight_id"),
    ]
    return (
        needs.join(bucketed, on=in_window, how="inner")
        .groupBy(F.col("q.flight_id").alias("flight_id"))
        .pivot("q.window", windows)
        .agg(F.max("e.value"))
        .withColumnsRenamed({w: f"fixed_{w}" for w in windows})
    )


def entity_features(flights: DataFrame, entity: EntityConfig, cfg: FeaturesConfig) -> DataFrame:
    """One row per flight with a non-null key: count, mean and max of `cfg.value` per window.

    The windowed rows are cached because the max corrections read them a second time; the job
    clears the cache when it ends.
    """
    keys, windows = list(entity.keys), list(cfg.windows)
    events, queries = _events_and_queries(flights, keys, cfg.value)
    stats = _window_stats(_windowed_totals(events, queries, keys, windows), windows).cache()
    corrected = stats.join(_max_of_others(events, stats, keys, windows), on="flight_id", how="left").withColumns(
        {f"max_{w}": F.when(F.col(f"fix_{w}"), F.col(f"fixed_{w}")).otherwise(F.col(f"max_{w}")) for w in windows}
    )
    return corrected.select(
        "flight_id",
        *[F.col(f"{agg}_{w}").alias(feature_name(entity.name, agg, w)) for w in windows for agg in cfg.aggregations],
    )


def window_features(flights: DataFrame, cfg: FeaturesConfig) -> DataFrame:
    """Flights with every entity's windowed features joined on; null where the entity key is null."""
    return reduce(
        lambda table, entity: table.join(entity_features(flights, entity, cfg), on="flight_id", how="left"),
        cfg.entities,
        flights,
    )
