"""The feature engine against the brute-force reference: every function x window x closed end x granularity.

The data has the edge cases that break windowed features: events exactly on window boundaries,
duplicate timestamps with different values, shuffled input, null values and null keys,
single-event entities, empty windows, a dense entity, and time buckets crossed by windows.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import reference
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.features import (
    AggregationConfig,
    DerivedConfig,
    FeaturesConfig,
    GroupConfig,
    LagConfig,
    TimeFeaturesConfig,
)
from engine.errors import ConfigError
from engine.features.compile import compile_group
from engine.features.plans import (
    Shape,
    choose,
    measure,
    measure_stored,
)
from engine.features.table import feature_names, feature_table
from engine.sources.row_groups import RowGroups, parquet_row_groups

US = 1_000_000
HOUR, DAY = 3600 * US, 86400 * US
BASE = datetime(2024, 3, 1, tzinfo=UTC)  # spans the US daylight-saving change of 2024-03-10
NUMERIC = ["count", "sum", "mean", "min", "max", "stddev", "variance", "first", "last", "last_n"]
CATEGORICAL = ["count_distinct", "min", "max", "first", "last"]
SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), False),
        T.StructField("entity", T.StringType()),
        T.StructField("event_ts", T.TimestampType()),
        T.StructField("known_ts", T.TimestampType()),
        T.StructField("amount", T.DoubleType()),
        T.StructField("category", T.StringType()),
    ]
)


def _events() -> list[dict]:
    rng = random.Random(11)
    rows: list[dict] = []

    def add(entity: str | None, at: int, delay: int | None = 0) -> None:
        amount = None if rng.random() < 0.1 else round(rng.uniform(-20, 120), 2)
        category = None if rng.random() < 0.1 else rng.choice("abcde")
        known = None if delay is None else at + delay
        rows.append({"entity": entity, "at": at, "known": known, "amount": amount, "category": category})

    for entity, count in [("dense", 260), *((f"e{i}", rng.randint(5, 30)) for i in range(8)), ("single", 1)]:
        for _ in range(count):
            at = rng.randrange(0, 20 * DAY // US) * US
            add(entity, at, None if rng.random() < 0.05 else rng.choice([0, 0, 30 * US, 2 * HOUR]))
    for row in list(rows[:120]):  # events exactly on the window boundaries of earlier ones, and exact duplicates
        for offset in (HOUR, DAY, 0):
            add(row["entity"], row["at"] + offset, 0)
    for _ in range(8):
        add(None, rng.randrange(0, 20 * DAY // US) * US)
    rng.shuffle(rows)
    for i, row in enumerate(rows):
        row["id"] = i
    return rows


EVENTS = _events()


def _frame(spark: SparkSession, rows: list[dict]):
    def ts(micros: int | None) -> datetime | None:
        return None if micros is None else BASE + timedelta(microseconds=micros)

    data = [(r["id"], r["entity"], ts(r["at"]), ts(r["known"]), r["amount"], r["category"]) for r in rows]
    return spark.createDataFrame(data, SCHEMA).repartition(3)


def _groups(closed: str) -> list[GroupConfig]:
    return [
        GroupConfig(
            name=f"g_{closed}",
            keys=["entity"],
            ttl="2d",
            windows=["1h", "1d"],
            closed=closed,
            aggregations=[
                AggregationConfig(functions=NUMERIC, column="amount", n=3),
                AggregationConfig(functions=CATEGORICAL, column="category"),
                AggregationConfig(functions=["count"]),
                AggregationConfig(functions=["count", "sum"], column="amount", filter="amount > 50", filter_name="big"),
            ],
            lags=[LagConfig(column="amount", k=[1, 2]), LagConfig(column="category", k=[1])],
        ),
        GroupConfig(
            name=f"life_{closed}",
            keys=["entity"],
            ttl="2d",
            windows=["lifetime"],
            closed=closed,
            aggregations=[
                AggregationConfig(functions=["count", "sum", "min", "max", "first", "last"], column="amount"),
                AggregationConfig(functions=["count_distinct"], column="category"),
            ],
        ),
    ]


def _values(row: dict, source: tuple) -> object:
    column, filter_ = source
    if column is None:
        return 1
    value = row[column]
    if filter_ == "amount > 50":
        return value if row["amount"] is not None and row["amount"] > 50 else None
    return value


def _expected(cfg: FeaturesConfig, events: list[dict], queries: list[tuple]) -> dict[str, list]:
    """Reference values per feature for `queries` = [(key, t_micros)]."""
    expected: dict[str, list] = {}
    known = "known" if cfg.known_at else "at"
    for group in cfg.groups:
        plan = compile_group(group)
        for f in plan.windowed:
            stream = [(r["entity"], r[known], _values(r, (f.input.column, f.input.filter))) for r in events]
            expected[f.name] = reference.windowed(stream, queries, f.function, f.micros, f.closed, f.n)
        for lag in plan.lags:
            stream = [(r["entity"], r[known], r[lag.input.column]) for r in events]
            expected[lag.name] = reference.lag(stream, queries, lag.k, plan.ttl_micros)
    return expected


def _same(actual: object, wanted: object) -> bool:
    if isinstance(wanted, float) and actual is not None:
        return math.isclose(actual, wanted, rel_tol=1e-9, abs_tol=1e-9)
    return actual == wanted


def _assert_matches(rows: list, keys: list[tuple], expected: dict[str, list], label: str) -> None:
    assert len(rows) == len(keys), f"{label}: {len(rows)} rows, expected {len(keys)}"
    mismatches = []
    for name, wanted in expected.items():
        for i, row in enumerate(rows):
            if not _same(row[name], wanted[i]):
                mismatches.append((name, keys[i], row[name], wanted[i]))
    names = sorted({m[0] for m in mismatches})
    assert not mismatches, f"{label}: {len(mismatches)} mismatches in {names}, first {mismatches[:3]}"


def _assert_same_rows(left: list, right: list) -> None:
    """Equal rows by id; doubles may differ in the last bits (running totals start elsewhere)."""
    right_by_id = {r["id"]: r for r in right}
    assert len(left) == len(right_by_id)
    for row in left:
        other = right_by_id[row["id"]]
        different = [c for c in row.asDict() if not _same(row[c], other[c])]
        assert not different, f"id {row['id']}: {different}"


@pytest.mark.parametrize("plan", ["running", "sliding", "vectorized"])
@pytest.mark.parametrize("known_at", [None, "known_ts"], ids=["event_time", "known_at"])
@pytest.mark.parametrize("closed", ["right", "left"])
def test_event_level_matches_reference(spark: SparkSession, closed: str, known_at: str | None, plan: str) -> None:
    """Every plan the engine can choose, with time buckets (forced plans always split)."""
    groups = _groups(closed)[:1] if plan == "vectorized" else _groups(closed)  # vectorized: no lifetime windows
    cfg = FeaturesConfig(timestamp="event_ts", known_at=known_at, groups=groups, skew_split=2, plan=plan)
    table = feature_table(_frame(spark, EVENTS), cfg)
    rows = sorted(table.collect(), key=lambda r: r["id"])
    queries, expected = _event_reference(closed, known_at)
    wanted = {name: expected[name] for name in feature_names(cfg)}  # every feature of the plan's groups
    _assert_matches(rows, queries, wanted, f"event {closed} {known_at}")


@cache
def _event_reference(closed: str, known_at: str | None) -> tuple[list[tuple], dict[str, list]]:
    """The reference values of every feature of `_groups(closed)` at each event, computed once for all plans."""
    cfg = FeaturesConfig(timestamp="event_ts", known_at=known_at, groups=_groups(closed))
    queries = [(r["entity"], r["at"]) for r in sorted(EVENTS, key=lambda r: r["id"])]
    return queries, _expected(cfg, EVENTS, queries)


@pytest.mark.parametrize("plan", ["running", "sliding", "vectorized"])
def test_skew_split_does_not_change_results(spark: SparkSession, plan: str) -> None:
    """Bucketing with copied history (split 1, the tightest) equals no bucketing at all."""
    frames = {}
    for split in (0, 1):
        cfg = FeaturesConfig(timestamp="event_ts", groups=_groups("right")[:1], skew_split=split, plan=plan)
        frames[split] = feature_table(_frame(spark, EVENTS), cfg).drop("feature_date")
    _assert_same_rows(frames[0].collect(), frames[1].collect())
    assert frames[1].count() == len(EVENTS)


def _spine(cfg: FeaturesConfig, events: list[dict], ttl: int, step: int) -> list[tuple]:
    known = "known" if cfg.known_at else "at"
    spine = set()
    for r in events:
        if r["entity"] is None or r[known] is None:
            continue
        b = -(-r[known] // step) * step
        while b <= r[known] + ttl:
            spine.add((r["entity"], b))
            b += step
    return sorted(spine)


@pytest.mark.parametrize(("cadence", "plan"), [("hourly", "auto"), ("daily", "auto"), ("hourly", "vectorized")])
def test_snapshot_matches_reference(spark: SparkSession, cadence: str, plan: str) -> None:
    groups = _groups("right")[:1] if plan == "vectorized" else _groups("right")
    cfg = FeaturesConfig(
        timestamp="snapshot_ts", known_at="known_ts", granularity="snapshot", cadence=cadence, groups=groups, plan=plan
    )
    events = _frame(spark, EVENTS).withColumnRenamed("event_ts", "snapshot_ts")
    table = feature_table(events, cfg)
    since_base = F.unix_micros("snapshot_ts") - int(BASE.timestamp()) * US
    rows = sorted(table.withColumn("_us", since_base).collect(), key=lambda r: (r["entity"], r["_us"]))
    spine, expected = _snapshot_reference(cadence)
    assert [(r["entity"], r["_us"]) for r in rows] == spine
    wanted = {name: expected[name] for name in feature_names(cfg)}  # every feature of the plan's groups
    _assert_matches(rows, spine, wanted, f"snapshot {cadence}")


@cache
def _snapshot_reference(cadence: str) -> tuple[list[tuple], dict[str, list]]:
    """The snapshot spine (2-day TTL) and every feature's reference value on it, computed once for all plans."""
    cfg = FeaturesConfig(timestamp="snapshot_ts", known_at="known_ts", groups=_groups("right"))
    spine = _spine(cfg, EVENTS, 2 * DAY, HOUR if cadence == "hourly" else DAY)
    return spine, _expected(cfg, EVENTS, spine)


@pytest.mark.parametrize("plan", ["vectorized"])
def test_incremental_range_equals_full_run(spark: SparkSession, plan: str) -> None:
    """A run over [day 8, day 12) reads only the history it needs and equals the full run (running plan) there.

    Two chained groups: the second must still see the history before day 8.
    """
    groups = [_groups("left")[0], replace(_groups("right")[0], name="second")]
    full = feature_table(_frame(spark, EVENTS), FeaturesConfig(timestamp="event_ts", groups=groups, plan="running"))
    start, end = (BASE + timedelta(days=8)).date().isoformat(), (BASE + timedelta(days=12)).date().isoformat()
    ranged = FeaturesConfig(timestamp="event_ts", groups=groups, start=start, end=end, plan=plan)
    part = feature_table(_frame(spark, EVENTS), ranged)
    window = full.where(f"event_ts >= '{start}' AND event_ts < '{end}'")
    assert part.count() == window.count() > 0
    _assert_same_rows(part.collect(), window.collect())


def test_time_features_follow_daylight_saving(spark: SparkSession) -> None:
    zone = ZoneInfo("America/New_York")
    cfg = FeaturesConfig(
        timestamp="event_ts",
        time_features=TimeFeaturesConfig(
            timezone="America/New_York",
            parts=list(("hour", "day_of_week", "month", "quarter", "is_weekend")),
            prefix="local",
        ),
        derived=[DerivedConfig(name="hour_twice", expr="local_hour * 2")],
    )
    instants = [datetime(2024, 3, 10, h, 30, tzinfo=UTC) for h in range(4, 10)] + [
        datetime(2024, 11, 3, h, 30, tzinfo=UTC) for h in range(4, 8)
    ]
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(instants)], "id long, event_ts timestamp")
    rows = sorted(feature_table(frame, cfg).collect(), key=lambda r: r["id"])
    for row, instant in zip(rows, instants, strict=True):
        local = instant.astimezone(zone)
        assert row["local_hour"] == local.hour
        assert row["local_day_of_week"] == local.isoweekday()
        assert row["local_month"] == local.month
        assert row["local_quarter"] == (local.month - 1) // 3 + 1
        assert row["local_is_weekend"] == (local.isoweekday() >= 6)
        assert row["hour_twice"] == 2 * local.hour


def test_empty_input_gives_empty_output(spark: SparkSession) -> None:
    cfg = FeaturesConfig(timestamp="event_ts", groups=_groups("right"))
    assert feature_table(_frame(spark, []), cfg).count() == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timestamp": "amount"}, "not a timestamp"),
        ({"timestamp": "nope"}, "column 'nope' is not in the input"),
        ({"derived": [DerivedConfig(name="bad", expr="no_such_feature + 1")]}, "features.derived[0] (bad)"),
        ({"derived": [DerivedConfig(name="amount", expr="1")]}, "names ['amount'] are already input columns"),
        (
            {
                "groups": [
                    GroupConfig(
                        name="g",
                        keys=["entity"],
                        windows=["1h"],
                        aggregations=[AggregationConfig(["count"], filter="no_such_column > 1", filter_name="bad")],
                    )
                ]
            },
            "features: [UNRESOLVED_COLUMN",
        ),
    ],
)
def test_bad_definitions_fail_in_one_line(spark: SparkSession, change: dict, message: str) -> None:
    cfg = FeaturesConfig(**{"timestamp": "event_ts", "groups": _groups("right")[:1], **change})
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        feature_table(_frame(spark, EVENTS[:5]), cfg)


def test_a_hot_entity_is_spread_over_many_tasks(spark: SparkSession) -> None:
    """One key with 10% of the rows: its time buckets land in several shuffle partitions (tasks)."""
    rng = random.Random(5)
    rows = [
        (i, "hot" if i % 10 == 0 else f"k{i % 997}", BASE + timedelta(minutes=rng.randrange(0, 60 * 24 * 90)))
        for i in range(20_000)
    ]
    frame = spark.createDataFrame(rows, "id long, entity string, event_ts timestamp")
    group = GroupConfig(name="g", keys=["entity"], windows=["1d"], aggregations=[AggregationConfig(["count"])])
    saved = {k: spark.conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled")}
    spark.conf.set("spark.sql.shuffle.partitions", "16")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        tasks = {}
        for split in (0, 4):
            table = feature_table(frame, FeaturesConfig(timestamp="event_ts", groups=[group], skew_split=split))
            hot = table.where("entity = 'hot'").groupBy(F.spark_partition_id()).agg(F.sum("g_rows_count_1d"))
            tasks[split] = len(hot.collect())  # the summed feature keeps the window (and its shuffle) in the plan
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)
    assert tasks[0] == 1
    assert tasks[4] >= 8  # 90 days in 4-day buckets, hashed over 16 partitions


def test_every_plan_writes_the_same_schema(spark: SparkSession) -> None:
    """A table's columns and types do not depend on the plan that computed them."""
    schemas = {
        plan: feature_table(
            _frame(spark, EVENTS[:50]), FeaturesConfig(timestamp="event_ts", groups=_groups("left")[:1], plan=plan)
        ).schema.simpleString()
        for plan in ("running", "sliding", "vectorized")
    }
    assert len(set(schemas.values())) == 1, schemas


def test_auto_picks_the_plan_from_events_per_window(spark: SparkSession) -> None:
    """Few events per window: sliding frames; thousands: the vectorized pass; lifetime windows: not vectorized."""

    def frame(entities: int, per_entity: int):
        rows = [
            (i, f"k{i % entities}", BASE + timedelta(minutes=i % (per_entity * entities)))
            for i in range(entities * per_entity)
        ]
        return spark.createDataFrame(rows, "id long, entity string, event_ts timestamp")

    group = GroupConfig(
        name="g", keys=["entity"], windows=["1d"], aggregations=[AggregationConfig(["count", "max"], "id")]
    )
    cfg = FeaturesConfig(timestamp="event_ts", groups=[group])
    time = F.unix_micros(F.col("event_ts"))

    def chosen(events, group: GroupConfig, cfg: FeaturesConfig):
        return choose(events, compile_group(group), cfg, measure(events, [("entity",)], time)[("entity",)], 4)

    sparse = chosen(frame(2_000, 3), group, cfg)
    dense = chosen(frame(2, 3_000), group, cfg)
    lifetime = replace(group, windows=["lifetime"])
    assert (sparse.plan, dense.plan) == ("sliding", "vectorized"), (sparse, dense)
    assert chosen(frame(2, 3_000), lifetime, cfg).plan == "running"
    with pytest.raises(ConfigError, match="vectorized cannot compute group 'g'"):
        chosen(frame(2, 10), lifetime, replace(cfg, plan="vectorized"))


def test_lags_that_collect_their_events_tip_a_group_from_sliding_frames_to_the_vectorized_pass(
    spark: SparkSession,
) -> None:
    """On one measured shape (the flights' tail numbers: 170 events per entity over a year), a group of running
    aggregates stays on sliding frames, and the same group with two lags (frames that collect and sort their
    events) is cheaper in the vectorized pass."""
    events = spark.createDataFrame([], "entity STRING, event_ts TIMESTAMP, x DOUBLE")
    aggregations = [AggregationConfig(["count", "mean", "max"], "x")]
    group = GroupConfig(
        name="g", keys=["entity"], windows=["1h", "3h", "24h", "7d"], ttl="7d", aggregations=aggregations
    )
    cfg = FeaturesConfig(timestamp="event_ts", groups=[group])
    shape = Shape(same_entity=170.0, span=365 * 86_400_000_000, largest_share=0.0)
    plain = choose(events, compile_group(group), cfg, shape, 4)
    lagged = choose(events, compile_group(replace(group, lags=[LagConfig(column="x", k=[1, 2])])), cfg, shape, 4)
    assert (plain.plan, lagged.plan) == ("sliding", "vectorized"), (plain, lagged)


def _events_parquet(path: Path, frame: pd.DataFrame, group_rows: int) -> RowGroups:
    path.mkdir()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path / "part-0.parquet", row_group_size=group_rows, coerce_timestamps="us")
    return parquet_row_groups(str(path))


def _exact_same_entity(frame: pd.DataFrame) -> float:
    """Σn²/N over the rows with an entity and a time: for a random event, how many events its entity has."""
    counts = frame.dropna(subset=["entity", "event_ts"]).groupby("entity").size()
    return float((counts**2).sum() / counts.sum())


def test_row_groups_measure_the_events_shape_on_sorted_and_shuffled_tables(spark: SparkSession, tmp_path: Path) -> None:
    """Read with pyarrow from drawn row groups alone: exact when the sample is the whole small table; on a
    large table of heavy-tailed entities, within 5% of the exact Σn²/N shuffled and 30% sorted by entity (whole
    groups hold whole entities: fewer, larger clusters, so a wider error), and the plan chosen from it is the
    one Spark's Bernoulli sample gives."""
    rng = np.random.default_rng(3)
    n = 400_000
    sizes = rng.zipf(1.6, 40_000).clip(1, 2_000)
    entity = np.repeat(np.arange(len(sizes)), sizes)[:n]
    times = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 365 * 86_400, len(entity)), unit="s")
    frame = pd.DataFrame({"id": np.arange(len(entity)), "entity": entity.astype("float64"), "event_ts": times})
    frame.loc[frame.index % 101 == 0, "entity"] = np.nan
    frame.loc[frame.index % 103 == 0, "event_ts"] = pd.NaT
    small = frame.head(12_000).sample(frac=1.0, random_state=1)
    exact = measure_stored(_events_parquet(tmp_path / "small", small, 1_000), [("entity",)], "event_ts")
    assert exact[("entity",)].same_entity == pytest.approx(_exact_same_entity(small), rel=1e-12)
    group = GroupConfig(name="g", keys=["entity"], windows=["7d"], aggregations=[AggregationConfig(["count"], "id")])
    cfg = FeaturesConfig(timestamp="event_ts", groups=[group])
    for name, rows, error in (("shuffled", frame.sample(frac=1.0, random_state=2), 0.05), ("sorted", frame, 0.3)):
        groups = _events_parquet(tmp_path / name, rows, 2_000)
        shape = measure_stored(groups, [("entity",)], "event_ts")[("entity",)]
        assert shape.same_entity == pytest.approx(_exact_same_entity(rows), rel=error), name
        events = spark.read.parquet(str(tmp_path / name))
        sampled = measure(events, [("entity",)], F.unix_micros("event_ts"))[("entity",)]
        plan = compile_group(group)
        assert choose(events, plan, cfg, shape, 4).plan == choose(events, plan, cfg, sampled, 4).plan, name
