"""Point-in-time training sets on real Delta tables, against a plain-Python reference.

No value from the future may reach a training row: not a row one microsecond late, not a row whose
scheduled job had not run yet, not a late correction committed after the spine time. Pinned
versions rebuild an earlier training set identically after the table has changed.
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from engine.config.schema import SinkConfig, TrainingSetConfig
from engine.config.training import FeatureTableConfig, SpineConfig
from engine.errors import ConfigError
from engine.sinks.delta import write_delta
from engine.training.build import pin_inputs, training_set

US = 1_000_000
MINUTE = 60 * US
BASE = datetime(2024, 1, 1, tzinfo=UTC)
FEATURES = T.StructType(
    [
        T.StructField("user", T.StringType()),
        T.StructField("event_ts", T.TimestampType()),
        T.StructField("created_ts", T.TimestampType()),
        T.StructField("amount", T.DoubleType()),
        T.StructField("tier", T.StringType()),
        T.StructField("event_date", T.DateType()),
    ]
)
SPINE = T.StructType(
    [
        T.StructField("row_id", T.LongType(), False),
        T.StructField("user", T.StringType()),
        T.StructField("t", T.TimestampType()),
        T.StructField("label", T.IntegerType()),
    ]
)


def at(micros: int | None) -> datetime | None:
    return None if micros is None else BASE + timedelta(microseconds=micros)


def feature_frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """Rows of (user, event µs, created µs, amount, tier)."""
    data = [(u, at(e), at(c), a, tier, None if e is None else at(e).date()) for u, e, c, a, tier in rows]
    return spark.createDataFrame(data, FEATURES)


def write(df: DataFrame, path: Path, mode: str = "append", correction: bool = False) -> int:
    sink = SinkConfig(path=str(path), mode=mode, merge_keys=["user", "event_ts"], correction=correction)
    return write_delta(df, sink, {"run_id": "test"}, {"write": uuid.uuid4().hex}).version


def write_spine(spark: SparkSession, path: Path, rows: list[tuple]) -> None:
    data = [(i, u, at(t), label) for i, (u, t, label) in enumerate(rows)]
    spark.createDataFrame(data, SPINE).write.format("delta").save(str(path))


def build(
    spark: SparkSession,
    spine: Path,
    tables: list[FeatureTableConfig],
    spine_version: str = "0",
    values: str = "auto",
) -> DataFrame:
    cfg = TrainingSetConfig(
        spine=SpineConfig(path=str(spine), version=spine_version, timestamp="t", label="label", columns=["row_id"]),
        feature_tables=tables,
        values=values,
    )
    frame, _, _ = training_set(spark, cfg, pin_inputs(spark, cfg))
    return frame


def table(path: Path, version: int | str = 0, **options) -> FeatureTableConfig:
    name = options.pop("name", "users")
    settings = {"keys": ["user"], "timestamp": "event_ts", "features": ["amount", "tier"]} | options
    return FeatureTableConfig(name=name, path=str(path), version=str(version), **settings)


def amounts(frame: DataFrame, column: str = "amount") -> dict[int, float | None]:
    return {r["row_id"]: r[column] for r in frame.select("row_id", column).collect()}


def test_a_row_one_microsecond_after_the_spine_time_never_joins(spark: SparkSession, tmp_path: Path) -> None:
    t = 600 * MINUTE
    write(
        feature_frame(spark, [("u", t - 1, 0, 1.0, "a"), ("u", t + 1, 0, 2.0, "b"), ("v", t, 0, 3.0, "c")]),
        tmp_path / "f",
    )
    write_spine(spark, tmp_path / "s", [("u", t, 1), ("v", t, 0), ("v", t - 1, 0)])
    inclusive = amounts(build(spark, tmp_path / "s", [table(tmp_path / "f", created_column="created_ts")]))
    assert inclusive == {0: 1.0, 1: 3.0, 2: None}
    strict = build(spark, tmp_path / "s", [table(tmp_path / "f", created_column="created_ts", strict=True)])
    assert amounts(strict) == {0: 1.0, 1: None, 2: None}


def test_a_delay_of_two_hours_hides_younger_values(spark: SparkSession, tmp_path: Path) -> None:
    t = 1000 * MINUTE
    two_hours = 120 * MINUTE
    rows = [
        ("u", t - two_hours, 0, 1.0, "old"),
        ("u", t - two_hours + 1, 0, 2.0, "young"),
        ("v", t - two_hours + 1, 0, 3.0, "x"),
    ]
    write(feature_frame(spark, rows), tmp_path / "f")
    write_spine(spark, tmp_path / "s", [("u", t, 1), ("v", t, 1), ("v", t + 1, 1)])
    frame = build(spark, tmp_path / "s", [table(tmp_path / "f", created_column="created_ts", delay="2h")])
    assert amounts(frame) == {0: 1.0, 1: None, 2: 3.0}


def test_ttl_expiry_yields_null(spark: SparkSession, tmp_path: Path) -> None:
    t = 1000 * MINUTE
    write(
        feature_frame(spark, [("u", t - 60 * MINUTE, 0, 1.0, "a"), ("v", t - 60 * MINUTE - 1, 0, 2.0, "b")]),
        tmp_path / "f",
    )
    write_spine(spark, tmp_path / "s", [("u", t, 1), ("v", t, 1), ("v", t - 1, 1)])
    frame = build(spark, tmp_path / "s", [table(tmp_path / "f", created_column="created_ts", ttl="1h")])
    assert amounts(frame) == {0: 1.0, 1: None, 2: 2.0}


@pytest.mark.parametrize("values", ["sweep", "winners"])  # values through the sort, or joined to the winners
def test_ties_resolve_by_created_time_then_by_commit(spark: SparkSession, tmp_path: Path, values: str) -> None:
    t = 100 * MINUTE
    rows = [("u", t, 5, 2.0, "later"), ("u", t, 1, 1.0, "earlier"), ("u", t, 3, None, "middle")]
    write(feature_frame(spark, rows), tmp_path / "f")
    write_spine(spark, tmp_path / "s", [("u", t, 1)])
    frame = build(spark, tmp_path / "s", [table(tmp_path / "f", created_column="created_ts")], values=values)
    assert [(r["amount"], r["tier"]) for r in frame.collect()] == [(2.0, "later")]
    # Without a created column the commit time decides: the row written later wins the tie.
    write(feature_frame(spark, [("u", t, 0, 7.0, "second commit")]), tmp_path / "f")
    frame = build(spark, tmp_path / "s", [table(tmp_path / "f", version=1)], values=values)
    assert [(r["amount"], r["tier"]) for r in frame.collect()] == [(7.0, "second commit")]


@pytest.mark.parametrize("values", ["sweep", "winners"])  # values through the sort, or joined to the winners
def test_a_null_value_in_the_latest_row_is_not_filled_from_older_rows(
    spark: SparkSession, tmp_path: Path, values: str
) -> None:
    t = 100 * MINUTE
    write(feature_frame(spark, [("u", t - 2, 0, 5.0, "a"), ("u", t - 1, 0, None, None)]), tmp_path / "f")
    write_spine(spark, tmp_path / "s", [("u", t, 1), ("u", t - 2, 1)])
    frame = build(spark, tmp_path / "s", [table(tmp_path / "f", created_column="created_ts")], values=values)
    assert {r["row_id"]: (r["amount"], r["tier"]) for r in frame.collect()} == {0: (None, None), 1: (5.0, "a")}


@pytest.mark.parametrize("values", ["sweep", "winners"])  # values through the sort, or joined to the winners
def test_late_corrections_never_leak_and_time_travel_rebuilds_the_old_set(
    spark: SparkSession, tmp_path: Path, values: str
) -> None:
    day = 1440 * MINUTE
    backfill = feature_frame(spark, [("u", 1 * day, 0, 1.0, "original"), ("v", 2 * day, 0, 4.0, "kept")])
    v0 = write(backfill, tmp_path / "f", mode="merge")
    future = int((datetime.now(UTC) + timedelta(days=30) - BASE).total_seconds()) * US
    write_spine(spark, tmp_path / "s", [("u", 3 * day, 1), ("u", future, 1), ("v", future, 0)])
    before = build(spark, tmp_path / "s", [table(tmp_path / "f", version=v0)], values=values)
    assert amounts(before) == {0: 1.0, 1: 1.0, 2: 4.0}

    # A correction of the old value is appended now: it exists only from its commit time on, and the
    # value that was served before it stays in the table for the spine rows that precede the commit.
    correction = feature_frame(spark, [("u", 1 * day, 0, 9.0, "corrected")])
    v1 = write(correction, tmp_path / "f", correction=True)
    after = build(spark, tmp_path / "s", [table(tmp_path / "f", version=v1)], values=values)
    assert amounts(after) == {0: 1.0, 1: 9.0, 2: 4.0}, "the day-3 row must not see a value committed years later"
    again = build(spark, tmp_path / "s", [table(tmp_path / "f", version=v0)], values=values)
    assert sorted(again.collect()) == sorted(before.collect())


@pytest.mark.parametrize("values", ["sweep", "winners"])  # values through the sort, or joined to the winners
def test_many_rows_against_the_reference(spark: SparkSession, tmp_path: Path, values: str) -> None:
    """Random data with duplicate times, boundaries, nulls, shuffled rows and a huge entity."""
    rng = random.Random(5)
    users = ["a", "b", "c", "d", None]
    rows, created = [], 0
    for _ in range(600):
        created += 1
        user = rng.choice(users)
        event = None if rng.random() < 0.03 else rng.randrange(0, 400) * 10 * MINUTE
        amount = None if rng.random() < 0.15 else round(rng.uniform(-5, 5), 3)
        rows.append((user, event, created, amount, rng.choice(["x", "y", None])))
    for i in range(3000):  # a huge entity
        created += 1
        rows.append(("huge", rng.randrange(0, 400) * 10 * MINUTE + rng.choice([0, 1, -1]), created, float(i), "h"))
    rng.shuffle(rows)
    write(feature_frame(spark, rows), tmp_path / "f")
    spine = [
        (
            rng.choice([*users, "huge", "nobody"]),
            None if rng.random() < 0.03 else rng.randrange(0, 420) * 10 * MINUTE,
            1,
        )
        for _ in range(400)
    ]
    write_spine(spark, tmp_path / "s", spine)
    for ttl, delay, strict in [(None, 0, False), (90, 0, True), (60, 30, False), (None, 20, True)]:
        spec = table(
            tmp_path / "f",
            created_column="created_ts",
            ttl=f"{ttl}m" if ttl else "",
            delay=f"{delay}m" if delay else "0s",
            strict=strict,
        )
        got = {
            r["row_id"]: (r["amount"], r["tier"]) for r in build(spark, tmp_path / "s", [spec], values=values).collect()
        }
        want = {}
        for i, (user, t, _) in enumerate(spine):
            candidates = [
                r
                for r in rows
                if user is not None
                and t is not None
                and r[0] == user
                and r[1] is not None
                and r[1] + delay * MINUTE <= t
                and (r[1] < t if strict else r[1] <= t)
            ]
            best = max(candidates, key=lambda r: (r[1], r[2]), default=None)
            fresh = best is not None and (ttl is None or best[1] >= t - ttl * MINUTE)
            want[i] = (best[3], best[4]) if fresh else (None, None)
        assert got == want, (ttl, delay, strict)


WIDE = 200  # features: more than one chunk of columns on the winners plan


def _doubled_rows(keys: int) -> list[tuple]:
    """(key, event µs, created µs, f000..f199): a third of the keys hold two rows with the same times.

    Row A holds 3000 + key in the first half of the features and 1000 + key after, row B 2000 + key
    everywhere: A is the greater, unless A's first value is null (keys 0-9, where B wins); keys 10-19
    hold the same row twice.
    """
    rows = []
    for k in range(keys):
        event, created = (k + 1) * MINUTE, 7
        if k < keys // 3:
            a = [float(3000 + k)] * (WIDE // 2) + [float(1000 + k)] * (WIDE // 2)
            if k < 10:
                a[0] = None
            b = a if 10 <= k < 20 else [float(2000 + k)] * WIDE
            rows += [(k, event, created, *a), (k, event, created, *b)]
        else:
            rows.append((k, event, created, *(float(k * 10 + j) for j in range(WIDE))))
    return rows


def widest_scan(frame: DataFrame) -> int:
    """The most columns one file scan of the executed plan reads (after adaptive execution has run it)."""
    plan = frame._jdf.queryExecution().executedPlan().toString()
    final = plan.split("== Final Plan ==", 1)[1].split("== Initial Plan ==", 1)[0]
    widths = []
    for listed, more in re.findall(r"FileScan \w+ \[([^\]]*?)(?:\.\.\. (\d+) more fields)?\]", final):
        widths.append(len([c for c in listed.split(",") if c.strip()]) + int(more or 0))
    return max(widths)


def _tie_winner(candidates: list[tuple]) -> tuple:
    """The reference's rule for exact ties: the greatest values, column by column, a null below any value."""
    return max(candidates, key=lambda values: [(v is not None, v if v is not None else 0.0) for v in values])


@pytest.mark.parametrize("writer", ["spark", "delta-rs"])  # with row tracking, and written by another engine
def test_exact_ties_across_chunks_of_columns_take_one_whole_row_on_every_plan(
    spark: SparkSession, tmp_path: Path, writer: str
) -> None:
    names = [f"f{j:03d}" for j in range(WIDE)]
    rows = _doubled_rows(300)
    path = tmp_path / "wide"
    columns = {
        "key": pa.array([r[0] for r in rows], pa.int64()),
        "event_ts": pa.array([at(r[1]) for r in rows], pa.timestamp("us", tz="UTC")),
        "created_ts": pa.array([at(r[2]) for r in rows], pa.timestamp("us", tz="UTC")),
        **{n: pa.array([r[3 + j] for r in rows], pa.float64()) for j, n in enumerate(names)},
    }
    if writer == "delta-rs":
        write_deltalake(str(path), pa.table(columns))
    else:
        schema = ", ".join(["key long", "event_ts timestamp", "created_ts timestamp", *(f"{n} double" for n in names)])
        frame = spark.createDataFrame([(r[0], at(r[1]), at(r[2]), *r[3:]) for r in rows], schema)
        frame.write.format("delta").option("delta.enableRowTracking", "true").save(str(path))
    spine = [(k, k, at(300 * MINUTE), 1) for k in range(300)]  # every key, after its rows
    spark.createDataFrame(spine, "row_id long, key long, t timestamp, label int").write.format("delta").save(
        str(tmp_path / "s")
    )
    spec = FeatureTableConfig(
        name="wide", path=str(path), version="0", keys=["key"], timestamp="event_ts", created_column="created_ts"
    )
    by_key: dict[int, list[tuple]] = {}
    for r in rows:
        by_key.setdefault(r[0], []).append(tuple(r[3:]))
    want = {k: _tie_winner(by_key[k]) for k in range(300)}
    got = {}
    for values in ["auto", "sweep", "winners"] if writer == "spark" else ["sweep", "winners"]:
        frame = build(spark, tmp_path / "s", [spec], values=values)
        collected = frame.collect()
        assert len(collected) == len(spine), f"{values}: one training row per spine row"
        got[values] = {r["key"]: tuple(r[n] for n in names) for r in collected}
        mixed = [k for k, v in got[values].items() if v not in by_key[k]]
        assert mixed == [], f"{values}: {len(mixed)} training rows mix source rows, e.g. key {mixed[:1]}"
        if values == "winners":
            assert widest_scan(frame) >= WIDE, "the tied points' whole rows are read in one scan"
    assert all(seen == want for seen in got.values())


def test_two_tables_with_different_keys_and_an_empty_spine(spark: SparkSession, tmp_path: Path) -> None:
    t = 100 * MINUTE
    write(feature_frame(spark, [("u", t - 1, 0, 1.0, "user row")]), tmp_path / "users")
    merchants = spark.createDataFrame([("m", at(t - 5), 0.5)], "merchant string, ts timestamp, risk double")
    merchants.write.format("delta").option("delta.enableRowTracking", "true").save(str(tmp_path / "merchants"))
    rows = [(0, "u", "m", at(t), 1), (1, "u", None, at(t), 0)]
    spark.createDataFrame(rows, "row_id long, user string, merchant string, t timestamp, label int").write.format(
        "delta"
    ).save(str(tmp_path / "s"))
    tables = [
        table(tmp_path / "users", created_column="created_ts", prefix="user_"),
        FeatureTableConfig(
            name="merchants", path=str(tmp_path / "merchants"), version="0", keys=["merchant"], timestamp="ts"
        ),
    ]
    frame = build(spark, tmp_path / "s", tables)
    got = {r["row_id"]: (r["user_amount"], r["user_tier"], r["risk"]) for r in frame.collect()}
    assert got == {0: (1.0, "user row", 0.5), 1: (1.0, "user row", None)}
    spark.createDataFrame([], SPINE).write.format("delta").save(str(tmp_path / "empty"))
    assert build(spark, tmp_path / "empty", [table(tmp_path / "users", created_column="created_ts")]).count() == 0


def test_scans_are_pruned_to_the_spine_range_minus_the_ttl(spark: SparkSession, tmp_path: Path) -> None:
    day = 1440 * MINUTE
    rows = [("u", d * day + 60 * MINUTE, 0, float(d), "x") for d in range(20)]
    frame = feature_frame(spark, rows)
    sink = SinkConfig(path=str(tmp_path / "f"), mode="append", partition_by=["event_date"])
    write_delta(frame, sink, {"run_id": "test"}, {"write": "pruned"})
    write_spine(spark, tmp_path / "s", [("u", 10 * day, 1), ("u", 12 * day, 1)])
    spec = table(tmp_path / "f", created_column="created_ts", ttl="2d", partition_date_column="event_date")
    result = build(spark, tmp_path / "s", [spec])
    plan = result._jdf.queryExecution().executedPlan().toString()
    partition_filters = plan[plan.index("PartitionFilters: [isnotnull(event_date") :].split("]", 1)[0]
    assert "2024-01-09" in partition_filters and "2024-01-13" in partition_filters, partition_filters
    assert amounts(result) == {0: 9.0, 1: 11.0}


def test_ten_tables_of_a_hundred_features_build_table_by_table(spark: SparkSession, tmp_path: Path) -> None:
    t = 100 * MINUTE
    width, count = 100, 10

    def written(i: int) -> FeatureTableConfig:
        path = tmp_path / f"t{i}"
        times = pa.array([at(t - 1), at(t - 2)], pa.timestamp("us", tz="UTC"))
        columns = {"user": pa.array(["u", "u"]), "event_ts": times, "created_ts": times}
        columns |= {f"f{j}": pa.array([float(i * 1000 + j + k) for k in (1, 2)]) for j in range(width)}
        write_deltalake(str(path), pa.table(columns))  # small tables written without a JVM: the plan is the test
        return FeatureTableConfig(
            name=f"t{i}",
            path=str(path),
            version="0",
            keys=["user"],
            timestamp="event_ts",
            created_column="created_ts",
            prefix=f"t{i}_",
        )

    tables = [written(i) for i in range(count)]
    write_spine(spark, tmp_path / "s", [("u", t, 1), ("w", t, 0)])
    frame = build(spark, tmp_path / "s", tables)
    assert len(frame.columns) == 4 + count * width
    plan = frame._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange hashpartitioning") <= 3 * count  # linear: a few exchanges per table
    (row,) = [r for r in frame.collect() if r["user"] == "u"]  # the plan just made is the one that runs
    assert [row[f"t{i}_f7"] for i in range(count)] == [float(i * 1000 + 7 + 1) for i in range(count)]
    assert widest_scan(frame) < width / 2 + 10, "with no exact tie, no table is read whole"


def test_bad_training_set_configs_fail_in_one_line(spark: SparkSession, tmp_path: Path) -> None:
    write(feature_frame(spark, [("u", 0, 0, 1.0, "a")]), tmp_path / "f")
    write_spine(spark, tmp_path / "s", [("u", 0, 1)])
    with pytest.raises(ConfigError, match=r"columns not in .*: nope"):
        build(spark, tmp_path / "s", [table(tmp_path / "f", features=["amount", "nope"])])
    with pytest.raises(ConfigError, match="already in the training set; set a prefix"):
        build(spark, tmp_path / "s", [table(tmp_path / "f", name="a"), table(tmp_path / "f", name="b")])
    with pytest.raises(Exception, match="no tag 'missing'"):
        build(spark, tmp_path / "s", [table(tmp_path / "f", version="missing")])
    with pytest.raises(Exception, match="version 7 is not in the log"):
        build(spark, tmp_path / "s", [table(tmp_path / "f", version=7)])
