"""As-of weather join against a pure-Python reference."""

from __future__ import annotations

import datetime as dt
import random

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.datasets.flights.weather import weather_as_of

UTC = dt.UTC
FLIGHTS = T.StructType(
    [
        T.StructField("flight_id", T.StringType()),
        T.StructField("origin", T.StringType()),
        T.StructField("sched_dep_ts", T.TimestampType()),
    ]
)
WEATHER = T.StructType(
    [
        T.StructField("origin", T.StringType()),
        T.StructField("time_hour", T.TimestampType()),
        T.StructField("temp", T.DoubleType()),
        T.StructField("visib", T.DoubleType()),
    ]
)


def test_latest_observation_at_or_before_departure(spark: SparkSession) -> None:
    rng = random.Random(3)
    base = dt.datetime(2013, 3, 10, tzinfo=UTC)
    weather = []
    for origin in ("EWR", "JFK"):
        for hour in range(0, 48):
            if rng.random() < 0.2:
                continue  # missing hours
            temp = None if rng.random() < 0.1 else round(rng.uniform(-5, 30), 2)  # nulls stay with their hour
            weather.append((origin, base + dt.timedelta(hours=hour), temp, float(hour)))
    flights = []
    for i in range(300):
        origin = rng.choice(["EWR", "JFK", "LGA"])  # LGA has no weather at all
        sched = int(base.timestamp()) + rng.randrange(-3600, 50 * 3600, 60)
        flights.append((f"f{i}", origin, sched))
    flights.append(("exact", "EWR", int(weather[5][1].timestamp())))  # departure exactly on an observation
    rows = [(fid, origin, dt.datetime.fromtimestamp(sched, UTC)) for fid, origin, sched in flights]

    frame, observations = spark.createDataFrame(rows, FLIGHTS), spark.createDataFrame(weather, WEATHER)
    got = {
        r["flight_id"]: (r["weather_temp"], r["weather_visib"])
        for r in weather_as_of(frame, observations, ["temp", "visib"]).collect()
    }
    # the same flights with a column added, their points read from the frame before it
    widened = weather_as_of(frame.withColumn("extra", F.lit(1)), observations, ["temp", "visib"], points=frame)
    assert {r["flight_id"]: (r["weather_temp"], r["weather_visib"]) for r in widened.collect()} == got
    for fid, origin, sched in flights:
        seen = [w for w in weather if w[0] == origin and w[1].timestamp() <= sched]
        latest = max(seen, key=lambda w: w[1]) if seen else None
        assert got[fid] == ((latest[2], latest[3]) if latest else (None, None)), fid
