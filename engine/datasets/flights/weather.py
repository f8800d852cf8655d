"""The weather of a flight: the latest hourly observation at its origin at or before its scheduled departure."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.training.asof import AVAILABLE, CREATED, EVENT, AsOfSpec, as_of_join


def weather_as_of(
    flights: DataFrame, weather: DataFrame, columns: list[str], points: DataFrame | None = None
) -> DataFrame:
    """Add `weather_<column>` for each column from the last observation with time <= sched_dep_ts.

    The general as-of join with the origin as key: an observation is available from its hour on,
    and is taken whole, so values of different hours never mix. `points`, the same flights before
    columns were added, spares computing `flights` twice.
    """
    observations = weather.select(
        "origin",
        F.col("time_hour").alias(EVENT),
        F.col("time_hour").alias(AVAILABLE),
        F.col("time_hour").alias(CREATED),
        *columns,
    )
    spec = AsOfSpec(keys=("origin",), features=tuple(columns), output_names=tuple(f"weather_{c}" for c in columns))
    return as_of_join(flights, [(observations, spec)], "sched_dep_ts", points)
