"""Windowed features against an independent pure-Python reference, on edge-case data."""

from __future__ import annotations

import math
import random

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from engine.config.schema import EntityConfig, FeaturesConfig, duration_seconds
from engine.features.windows import feature_name, window_features

H = 3600
SCHEMA = T.StructType(
    [
        T.StructField("flight_id", T.StringType()),
        T.StructField("carrier", T.StringType()),
        T.StructField("origin", T.StringType()),
        T.StructField("dest", T.StringType()),
        T.StructField("sched_epoch", T.LongType()),
        T.StructField("departed_epoch", T.LongType()),
        T.StructField("dep_delay", T.DoubleType()),
    ]
)
CFG = FeaturesConfig(
    value="dep_delay",
    entities=[EntityConfig("carrier", ["carrier"]), EntityConfig("route", ["origin", "dest"])],
    windows=["1h", "3h", "24h", "7d"],
    aggregations=["count", "mean", "max"],
)


def flight(
    fid: str, carrier: str | None, sched: int, delay_min: float | None, origin: str = "JFK", dest: str | None = "LAX"
) -> tuple:
    departed = None if delay_min is None else sched + int(delay_min * 60)
    return (fid, carrier, origin, dest, sched, departed, delay_min)


def reference(rows: list[tuple]) -> dict[str, dict[str, object]]:
    """Brute force: for each flight and window, the other flights of its entity that departed in [t-w, t)."""
    out: dict[str, dict[str, object]] = {}
    for fid, carrier, origin, dest, sched, _, _ in rows:
        features: dict[str, object] = {}
        for entity in CFG.entities:
            key = {"carrier": (carrier,), "route": (origin, dest)}[entity.name]
            for window in CFG.windows:
                w = duration_seconds(window, "w")
                names = [feature_name(entity.name, agg, window) for agg in ("count", "mean", "max")]
                if any(k is None for k in key):
                    features.update(dict.fromkeys(names))
                    continue
                values = [
                    r[6]
                    for r in rows
                    if r[0] != fid
                    and r[5] is not None
                    and {"carrier": (r[1],), "route": (r[2], r[3])}[entity.name] == key
                    and sched - w <= r[5] < sched
                ]
                features[names[0]] = len(values)
                features[names[1]] = sum(values) / len(values) if values else None
                features[names[2]] = max(values) if values else None
        out[fid] = features
    return out


def assert_matches(spark: SparkSession, rows: list[tuple]) -> None:
    got = {r["flight_id"]: r.asDict() for r in window_features(spark.createDataFrame(rows, SCHEMA), CFG).collect()}
    want = reference(rows)
    assert set(got) == set(want)
    for fid, features in want.items():
        for name, expected in features.items():
            actual = got[fid][name]
            if isinstance(expected, float):
                assert actual is not None and math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-9), (fid, name)
            else:
                assert actual == expected, (fid, name, actual, expected)


def test_edge_cases(spark: SparkSession) -> None:
    t = 100 * 86400
    rows = [
        flight("query", "AA", t, 5.0),
        flight("at_window_start", "AA", t - H - 600, 10.0),  # departs exactly t - 1h: inside 1h
        flight("just_before_start", "AA", t - H - 601, 12.0),  # departs t - 1h - 60 s: outside 1h
        flight("departs_at_t", "AA", t - 300, 5.0),  # departs exactly at t: never inside
        flight("dup_a", "AA", t - 2 * H, 0.0),  # duplicate timestamps
        flight("dup_b", "AA", t - 2 * H, 0.0),
        flight("cancelled", "AA", t - 30 * 60, None),  # never known
        flight("early_self_max", "BB", t, -20.0),  # left 20 min early, would be its own max
        flight("other_bb", "BB", t - 2 * H, -30.0),
        flight("early_only", "CC", t, -5.0),  # alone in its window: count 0, mean and max null
        flight("scheduled_later_left_early", "AA", t + 600, -30.0),  # departed t - 20 min: known before t
        flight("null_carrier", None, t, 3.0),
        flight("null_dest", "AA", t, 4.0, dest=None),
        flight("single", "DD", t, 7.0),
        flight("week_edge", "AA", t - 7 * 86400, 0.0),  # departs exactly t - 7d
    ]
    random.Random(1).shuffle(rows)  # out-of-order input
    assert_matches(spark, rows)


def test_random_with_dense_entity(spark: SparkSession) -> None:
    rng = random.Random(42)
    rows = []
    for i in range(1200):
        carrier = "HUGE" if i < 700 else rng.choice(["AA", "BB", "CC", None])
        sched = 86400 * 10 + rng.randrange(0, 10 * 86400, 300)  # 5-minute grid: many exact ties
        delay = None if rng.random() < 0.05 else float(rng.choice([-15, -5, -1, 0, 0, 3, 20, 90, 400]))
        rows.append(flight(f"f{i}", carrier, sched, delay, dest=rng.choice(["LAX", "SFO"])))
    assert_matches(spark, rows)


def test_empty_input(spark: SparkSession) -> None:
    result = window_features(spark.createDataFrame([], SCHEMA), CFG)
    assert result.count() == 0
    assert feature_name("carrier", "max", "7d") in result.columns


def test_all_early_departures_exclude_self(spark: SparkSession) -> None:
    t = 50 * 86400
    rows = [flight(f"e{i}", "EE", t + i * 60, -float(10 + i)) for i in range(20)]
    assert_matches(spark, rows)
