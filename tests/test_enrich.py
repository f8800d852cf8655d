"""The enrichment join (the flights pipeline's weather) against a pure-Python reference."""

from __future__ import annotations

import datetime as dt
import random

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.pipeline import JoinConfig
from engine.features.enrich import join_as_of

UTC = dt.UTC
JOIN = JoinConfig(
    source="weather", keys=["origin"], timestamp="time_hour", columns=["temp", "visib"], prefix="weather_"
)
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

    def joined(df, join: JoinConfig = JOIN, points=None) -> dict:
        result = join_as_of(df, observations, join, "sched_dep_ts", points=points)
        return {r["flight_id"]: (r["weather_temp"], r["weather_visib"]) for r in result.collect()}

    got = joined(frame)
    # the same flights with a column added, their points read from the frame before it
    assert joined(frame.withColumn("extra", F.lit(1)), points=frame) == got
    within_2h = joined(frame, JoinConfig(**{**JOIN.__dict__, "ttl": "2h"}))
    for fid, origin, sched in flights:
        seen = [w for w in weather if w[0] == origin and w[1].timestamp() <= sched]
        latest = max(seen, key=lambda w: w[1]) if seen else None
        assert got[fid] == ((latest[2], latest[3]) if latest else (None, None)), fid
        fresh = latest is not None and sched - latest[1].timestamp() <= 2 * 3600
        assert within_2h[fid] == (got[fid] if fresh else (None, None)), fid
    assert sum(v != (None, None) for v in got.values()) > sum(v != (None, None) for v in within_2h.values())
