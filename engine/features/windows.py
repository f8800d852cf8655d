"""Leak-free windowed aggregations per entity.

For a flight scheduled at t, the window of length w holds the other flights of the same entity
whose actual departure d satisfies t - w <= d < t. Events and queries are unioned per entity and
ordered by time. Count and sum are differences of running totals (growing frames, linear cost,
summed as decimals so the difference is exact); max uses the moving range frame [-w, -1] over
integer seconds, which is exactly that window. A flight
that left early lies in its own window: its count and sum are subtracted, and when it also holds
the window maximum, the maximum of the others is computed by a join over those rare rows only.
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


def _self_in_window(window_s: int) -> Column:
    departed, t = F.col("self_departed"), F.col("t")
    return departed.isNotNull() & (departed >= t - window_s) & (departed < t)


def _max_of_others(events: DataFrame, needs: DataFrame, keys: list[str]) -> DataFrame:
    """Exact max over each needing query's window, excluding the query's own flight."""
    q, e = needs.alias("q"), events.alias("e")
    in_window = (
        [F.col(f"q.{k}") == F.col(f"e.{k}") for k in keys]
        + [F.col("e.t") >= F.col("q.t") - F.col("q.window_s"), F.col("e.t") < F.col("q.t")]
        + [F.col("e.flight_id") != F.col("q.flight_id")]
    )
    return (
        q.join(e, on=in_window, how="inner")
        .groupBy(F.col("q.flight_id").alias("flight_id"), F.col("q.window").alias("window"))
        .agg(F.max("e.value").alias("max_others"))
    )


def entity_features(flights: DataFrame, entity: EntityConfig, cfg: FeaturesConfig) -> DataFrame:
    """One row per flight with a non-null key: count, mean and max of `cfg.value` per window.

    The windowed rows are cached because the rare max corrections read them a second time; the
    job clears the cache when it ends.
    """
    keys = list(entity.keys)
    keyed = flights.where(reduce(operator.and_, [F.col(k).isNotNull() for k in keys]))
    events = keyed.where(F.col("departed_epoch").isNotNull()).select(
        *keys, "flight_id", F.col("departed_epoch").alias("t"), F.col(cfg.value).cast("double").alias("value")
    )
    queries = keyed.select(
        *keys,
        "flight_id",
        F.col("sched_epoch").alias("t"),
        F.lit(None).cast("double").alias("value"),
        F.col("departed_epoch").alias("self_departed"),
        F.col(cfg.value).cast("double").alias("self_value"),
    )
    ordered = Window.partitionBy(*keys).orderBy("t")
    unioned = events.withColumns(
        {"self_departed": F.lit(None).cast("long"), "self_value": F.lit(None).cast("double"), "is_query": F.lit(False)}
    ).unionByName(queries.withColumn("is_query", F.lit(True)))

    before = ordered.rangeBetween(Window.unboundedPreceding, -1)
    exact = F.col("value").cast(_EXACT)
    totals = {"n_before": F.count("value").over(before), "s_before": F.sum(exact).over(before)}
    for window in cfg.windows:
        w = duration_seconds(window, "features.windows")
        expired = ordered.rangeBetween(Window.unboundedPreceding, -(w + 1))
        totals |= {
            f"n_expired_{window}": F.count("value").over(expired),
            f"s_expired_{window}": F.sum(exact).over(expired),
            f"max_all_{window}": F.max("value").over(ordered.rangeBetween(-w, -1)),
        }
    windowed = unioned.withColumns(totals).where("is_query")

    derived: dict[str, Column] = {}
    for window in cfg.windows:
        own = _self_in_window(duration_seconds(window, "features.windows"))
        count = F.col("n_before") - F.col(f"n_expired_{window}") - own.cast("long")
        total = (
            F.coalesce(F.col("s_before"), F.lit(0))
            - F.coalesce(F.col(f"s_expired_{window}"), F.lit(0))
            - F.when(own, F.col("self_value").cast(_EXACT)).otherwise(F.lit(0))
        )
        derived |= {
            f"count_{window}": count,
            f"mean_{window}": F.when(count > 0, total.cast("double") / count),
            f"max_{window}": F.when(count > 0, F.col(f"max_all_{window}")),
            f"fix_{window}": (count > 0) & own & (F.col("self_value") >= F.col(f"max_all_{window}")),
        }
    computed = windowed.withColumns(derived).cache()

    pending = F.filter(
        F.array(
            *[
                F.struct(
                    F.lit(w).alias("window"),
                    F.lit(duration_seconds(w, "features.windows")).alias("window_s"),
                    F.col(f"fix_{w}").alias("fix"),
                )
                for w in cfg.windows
            ]
        ),
        lambda item: item["fix"],
    )
    needs = computed.select(*keys, "flight_id", "t", F.explode(pending).alias("need")).select(
        *keys, "flight_id", "t", "need.window", "need.window_s"
    )
    fixes = (
        _max_of_others(events, needs, keys)
        .groupBy("flight_id")
        .pivot("window", list(cfg.windows))
        .agg(F.first("max_others"))
        .withColumnsRenamed({w: f"fixed_{w}" for w in cfg.windows})
    )
    result = computed.join(fixes, on="flight_id", how="left").withColumns(
        {f"max_{w}": F.when(F.col(f"fix_{w}"), F.col(f"fixed_{w}")).otherwise(F.col(f"max_{w}")) for w in cfg.windows}
    )
    selected = [
        F.col(f"{agg}_{w}").alias(feature_name(entity.name, agg, w)) for w in cfg.windows for agg in cfg.aggregations
    ]
    return result.select("flight_id", *selected)


def window_features(flights: DataFrame, cfg: FeaturesConfig) -> DataFrame:
    """Flights with every entity's windowed features joined on; null where the entity key is null."""
    return _join_all(flights, [entity_features(flights, entity, cfg) for entity in cfg.entities])


def _join_all(base: DataFrame, parts: list[DataFrame]) -> DataFrame:
    for part in parts:
        base = base.join(part, on="flight_id", how="left")
    return base
