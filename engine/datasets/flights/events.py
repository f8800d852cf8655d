"""Flight events: when each flight was scheduled, when its outcome became known, and its label."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.config.schema import JobConfig

FLIGHT_KEY = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]


def prepare_flights(flights: DataFrame, job: JobConfig) -> DataFrame:
    """Add `flight_id`, the scheduled and actual departure, when the delay became known, and the label.

    `time_hour` is the scheduled hour in UTC, so adding `minute` gives the scheduled departure
    without local-time arithmetic. A flight's delay is known at the later of its scheduled and
    actual departure (a flight that left early is reported at its slot), so it never lies in its own
    window `[t - w, t)`; a cancelled flight (no dep_delay) never becomes known.
    """
    sched_epoch = F.unix_timestamp("time_hour") + F.col("minute") * 60
    departed = sched_epoch + (F.col("dep_delay") * 60).cast("long")
    label = F.when(F.col(job.label_column).isNotNull(), (F.col(job.label_column) > job.label_threshold).cast("int"))
    return flights.select(
        F.concat_ws("|", *[F.col(c).cast("string") for c in FLIGHT_KEY]).alias("flight_id"),
        "year",
        "month",
        "day",
        "carrier",
        "flight",
        "tailnum",
        "origin",
        "dest",
        "sched_dep_time",
        F.timestamp_seconds(sched_epoch).alias("sched_dep_ts"),
        sched_epoch.alias("sched_epoch"),
        departed.alias("departed_epoch"),
        F.timestamp_seconds(F.when(departed.isNotNull(), F.greatest(sched_epoch, departed))).alias("delay_known_ts"),
        "dep_delay",
        label.alias("label"),
    )
