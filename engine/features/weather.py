"""As-of join: the latest hourly weather observed at the origin at or before the scheduled departure."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def weather_as_of(flights: DataFrame, weather: DataFrame, columns: list[str]) -> DataFrame:
    """Add `weather_<column>` for each column from the last observation with time <= sched_dep_ts.

    Flights and observations are unioned per origin and ordered by time, observations first on
    ties; `last(..., ignorenulls)` over the running frame carries the latest observation forward,
    taken whole as one struct so values of different hours never mix.
    """
    observations = weather.select(
        "origin",
        F.unix_timestamp("time_hour").alias("t"),
        F.lit(0).alias("order"),
        F.lit(None).cast("string").alias("flight_id"),
        F.struct(*[F.col(c).alias(c) for c in columns]).alias("obs"),
    )
    queries = flights.select(
        "origin",
        F.col("sched_epoch").alias("t"),
        F.lit(1).alias("order"),
        "flight_id",
        F.lit(None).cast(observations.schema["obs"].dataType).alias("obs"),
    )
    running = Window.partitionBy("origin").orderBy("t", "order").rowsBetween(Window.unboundedPreceding, 0)
    latest = (
        observations.unionByName(queries)
        .withColumn("latest", F.last("obs", ignorenulls=True).over(running))
        .where(F.col("order") == 1)
        .select("flight_id", *[F.col(f"latest.{c}").alias(f"weather_{c}") for c in columns])
    )
    return flights.join(latest, on="flight_id", how="left")
