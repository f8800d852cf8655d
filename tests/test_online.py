"""The online store on real Delta tables and a real SQLite file: each online value equals what a
point-in-time training set built from the same version reads for (entity, as-of time); a write is atomic;
an incremental run rewrites only changed entities; a rerun writes nothing."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from engine.config.online import SqliteStoreConfig
from engine.config.schema import SinkConfig, TrainingSetConfig
from engine.config.training import FeatureTableConfig, SpineConfig
from engine.online.groups import OnlineGroup
from engine.online.lookup import EXPIRED, NULL, PRESENT, UNKNOWN, LookupError_, OnlineClient
from engine.online.materialize import materialize_group
from engine.online.sqlite_store import SqliteStore
from engine.online.store import GroupState
from engine.sinks.delta import write_delta
from engine.training.build import pin_inputs, training_set

AT = datetime(2024, 1, 10, 12, tzinfo=UTC)
SCHEMA = T.StructType(
    [
        T.StructField("user", T.StringType()),
        T.StructField("origin", T.StringType()),
        T.StructField("dest", T.StringType()),
        T.StructField("event_ts", T.TimestampType()),
        T.StructField("amount", T.DoubleType()),
        T.StructField("n", T.LongType()),
        T.StructField("tier", T.StringType()),
        T.StructField("seen", T.TimestampType()),
        T.StructField("recent", T.ArrayType(T.DoubleType())),
        T.StructField("delay", T.DoubleType()),
    ]
)
USER = OnlineGroup("user", ("user",), ("amount", "n", "tier", "seen", "recent"), 86_400)
ROUTE = OnlineGroup("route", ("origin", "dest"), ("delay",), None)


def row(user, origin, dest, hours: float, amount, n=1, tier="t", recent=(1.0,), delay=0.5) -> tuple:
    when = AT + timedelta(hours=hours)
    return (user, origin, dest, when, amount, n, tier, None if tier is None else when, recent, delay)


VERSION_0 = [
    row("a", "JFK", "LAX", -3, 1.0, 1, "x", (1.0,), 10.0),
    row("a", "JFK", "LAX", -1, 2.0, 2, "y", (1.0, 2.0), 11.0),
    row("a", "JFK", "LAX", 1, 99.0, 9, "future", (9.0,), 99.0),  # after the as-of time
    row("b", "EWR", "SFO", -48, 5.0, 5, "old", None, None),  # older than the user TTL (1 day): expired
    row("c", "LGA", "ORD", -0.5, None, None, None, None, None),  # the latest row has no values: nulls
    row("c", "LGA", "ORD", -5, 3.0, 3, "z", (3.0,), 3.0),
    row("d", "JFK", "SFO", -2, 7.0, 7, "tie", (7.0,), 7.0),
    row("d", "JFK", "SFO", -2, 7.0, 7, "tie", (7.0,), 7.0),  # a duplicate row
    row("e", "EWR", "LAX", 5, 6.0, 6, "later", (6.0,), 6.0),  # only after the as-of time: unknown
    row("f", "LGA", "SFO", 0, 4.0, 4, "edge", (4.0, float("inf")), -0.0),  # exactly at the as-of time
    row(None, "JFK", "LAX", -1, 8.0, 8, "nokey", (8.0,), 12.0),  # no user: route only
]
VERSION_1 = [
    row("a", "JFK", "LAX", -0.5, 3.0, 3, "late", (3.0,), 13.0),  # a late row, committed after version 0
    row("g", "EWR", "ORD", -4, 9.5, 2, "new", (), 1.5),  # a new entity
]
USERS = ["a", "b", "c", "d", "e", "f", "g", "zz"]
ROUTES = [
    ("JFK", "LAX"),
    ("EWR", "SFO"),
    ("LGA", "ORD"),
    ("JFK", "SFO"),
    ("EWR", "LAX"),
    ("LGA", "SFO"),
    ("EWR", "ORD"),
]


def write(spark: SparkSession, path: Path, rows: list[tuple]) -> int:
    sink = SinkConfig(path=str(path), mode="append")
    return write_delta(spark.createDataFrame(rows, SCHEMA), sink, {"run_id": "test"}, {"w": uuid.uuid4().hex}).version


def offline(
    spark: SparkSession,
    tmp: Path,
    table: Path,
    version: int,
    group: OnlineGroup,
    keys: list[tuple],
    timestamp: str = "event_ts",
    at: datetime = AT,
) -> dict:
    """What a training set built from the same version reads for each (entity, AT) spine row."""
    fields = [T.StructField("row_id", T.LongType(), False)]
    fields += [T.StructField(k, T.StringType()) for k in group.keys] + [T.StructField("t", T.TimestampType())]
    fields.append(T.StructField("label", T.IntegerType()))
    spine = tmp / f"spine_{group.name}_{uuid.uuid4().hex[:6]}"
    rows = [(i, *key, at, 0) for i, key in enumerate(keys)]
    spark.createDataFrame(rows, T.StructType(fields)).write.format("delta").save(str(spine))
    ttl = f"{group.ttl_seconds}s" if group.ttl_seconds else ""
    features = FeatureTableConfig(
        name=group.name,
        path=str(table),
        version=str(version),
        keys=list(group.keys),
        timestamp=timestamp,
        features=list(group.features),
        ttl=ttl,
    )
    cfg = TrainingSetConfig(
        spine=SpineConfig(path=str(spine), version="0", timestamp="t", label="label", columns=["row_id"]),
        feature_tables=[features],
    )
    frame, _, _ = training_set(spark, cfg, pin_inputs(spark, cfg))
    got = {r["row_id"]: r for r in frame.collect()}
    return {key: {f: got[i][f] for f in group.features} for i, key in enumerate(keys)}


def lookup(client: OnlineClient, group: OnlineGroup, keys: list[tuple], at: datetime = AT):
    rows = [dict(zip(group.keys, key, strict=True)) for key in keys]
    return client.get_online_features(rows, [f"{group.name}:{f}" for f in group.features], at=at)


def assert_online_equals_offline(answer, expected: dict, group: OnlineGroup, keys: list[tuple]) -> None:
    for key, values, statuses in zip(keys, answer.values, answer.statuses, strict=True):
        for feature in group.features:
            online, status = values[f"{group.name}:{feature}"], statuses[f"{group.name}:{feature}"]
            want = expected[key][feature]
            if isinstance(want, datetime):
                want = want.astimezone(UTC)  # PySpark returns local wall time
            assert online == want, (group.name, key, feature, online, want)
            assert (status == PRESENT) == (want is not None), (key, feature, status)


@pytest.fixture(scope="module")
def table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("online") / "features"
    assert write(spark, path, VERSION_0) == 0
    assert write(spark, path, VERSION_1) == 1
    return path


def test_online_values_equal_a_training_set_read_at_the_same_time(
    spark: SparkSession, table: Path, tmp_path: Path
) -> None:
    store = SqliteStore(SqliteStoreConfig(str(tmp_path / "online.db")))
    client = OnlineClient(store)
    for version, group, keys in (
        (0, USER, [(u,) for u in USERS]),
        (1, USER, [(u,) for u in USERS]),
        (1, ROUTE, ROUTES),
    ):
        written = materialize_group(spark, store, str(table), version, group, "event_ts", AT)
        assert written.version == version
        answer = lookup(client, group, keys)
        assert_online_equals_offline(answer, offline(spark, tmp_path, table, version, group, keys), group, keys)
        assert answer.origins[group.name].version == version
    statuses = lookup(client, USER, [(u,) for u in USERS]).statuses
    by_user = {u: set(s.values()) for u, s in zip(USERS, statuses, strict=True)}
    assert by_user["b"] == {EXPIRED} and by_user["e"] == by_user["zz"] == {UNKNOWN}
    assert by_user["c"] == {NULL} and by_user["f"] == by_user["a"] == {PRESENT}
    a = lookup(client, USER, [("a",)]).values[0]
    assert (a["user:amount"], a["user:tier"], a["user:recent"]) == (3.0, "late", [3.0])  # version 1's late row


@pytest.mark.parametrize("changes", ["change data feed", "version diff"])
def test_an_incremental_run_writes_only_changed_entities_and_a_rerun_writes_nothing(
    spark: SparkSession, tmp_path: Path, changes: str
) -> None:
    """With the change data feed (the sink turns it on) or without it (a table made by another writer)."""
    table = tmp_path / "features"
    if changes == "change data feed":
        write(spark, table, VERSION_0), write(spark, table, VERSION_1)
    else:
        for rows in (VERSION_0, VERSION_1):
            frame = spark.createDataFrame(rows, SCHEMA).write.format("delta").mode("append")
            frame.option("delta.enableRowTracking", "true").save(str(table))
    feed = DeltaTable.forPath(spark, str(table)).detail().first()["properties"].get("delta.enableChangeDataFeed")
    assert feed == ("true" if changes == "change data feed" else None)
    store = SqliteStore(SqliteStoreConfig(str(tmp_path / "online.db")))
    full = materialize_group(spark, store, str(table), 0, USER, "event_ts", AT)
    assert (full.rows_written, full.incremental) == (5, False)  # a, b, c, d, f
    again = materialize_group(spark, store, str(table), 0, USER, "event_ts", AT)
    assert (again.rows_written, again.incremental) == (0, True)
    newer = materialize_group(spark, store, str(table), 1, USER, "event_ts", AT)
    assert (newer.rows_written, newer.deleted, newer.incremental) == (2, 0, True)  # a's late row, and g
    keys = [(u,) for u in USERS]
    assert_online_equals_offline(
        lookup(OnlineClient(store), USER, keys), offline(spark, tmp_path, table, 1, USER, keys), USER, keys
    )
    DeltaTable.forPath(spark, str(table)).delete("user = 'g'")  # version 2
    gone = materialize_group(spark, store, str(table), 2, USER, "event_ts", AT)
    assert (gone.rows_written, gone.deleted) == (0, 1)
    assert lookup(OnlineClient(store), USER, [("g",)]).statuses[0]["user:amount"] == UNKNOWN


def test_a_reader_sees_one_materialization_or_the_other_never_a_mix(tmp_path: Path) -> None:
    store = SqliteStore(SqliteStoreConfig(str(tmp_path / "online.db")))
    keys = [(i,) for i in range(20_000)]

    def state(version: int) -> GroupState:
        return GroupState("g", "t", version, AT.isoformat(), ("k",), ("bigint",), ("v",), ("bigint",), None, "")

    def rows(version: int):
        return (((i,), (0, (version,))) for i in range(20_000))

    store.write(state(0), rows(0), [], full=True)
    seen, stop = [], threading.Event()

    def read() -> None:
        reader = OnlineClient(SqliteStore(SqliteStoreConfig(str(tmp_path / "online.db"))))
        while not stop.is_set():
            answer = reader.get_online_features([{"k": k[0]} for k in keys[::97]], ["g:v"], at=AT)
            seen.append((answer.origins["g"].version, {v["g:v"] for v in answer.values}))

    thread = threading.Thread(target=read)
    thread.start()
    for version in range(1, 6):
        store.write(state(version), rows(version), [], full=version % 2 == 0)
    stop.set()
    thread.join()
    assert len({version for version, _ in seen}) > 1
    assert all(values == {version} for version, values in seen), [s for s in seen if s[1] != {s[0]}][:3]


def test_a_failed_write_leaves_the_previous_values_served(tmp_path: Path) -> None:
    store = SqliteStore(SqliteStoreConfig(str(tmp_path / "online.db")))
    state = GroupState("g", "t", 0, AT.isoformat(), ("k",), ("string",), ("v",), ("double",), None, "")
    store.write(state, [(("x",), (0, (1.5,)))], [], full=True)

    def broken():
        yield ("x",), (0, (2.5,))
        raise OSError("the source went away")

    with pytest.raises(OSError):
        store.write(GroupState(**{**state.__dict__, "version": 1}), broken(), [], full=True)
    answer = OnlineClient(store).get_online_features([{"k": "x"}], ["g:v"], at=AT)
    assert (answer.values, answer.origins["g"].version) == ([{"g:v": 1.5}], 0)


@pytest.mark.parametrize(
    ("rows", "features", "message"),
    [
        ([{"k": "x"}], ["g:nope"], "group g has no feature nope"),
        ([{"k": "x"}], ["h:v"], "group 'h' is not in the online store (materialize it first)"),
        ([{"key": "x"}], ["g:v"], "entity row 0 has no k (the keys of group g)"),
        ([{"k": "x"}], ["v"], "feature 'v' is not named group:feature"),
        ([{"k": 3}], ["g:v"], "key k: 3 is not a string"),
    ],
)
def test_a_bad_lookup_is_one_line_naming_the_problem(tmp_path: Path, rows, features, message: str) -> None:
    store = SqliteStore(SqliteStoreConfig(str(tmp_path / "online.db")))
    state = GroupState("g", "t", 0, AT.isoformat(), ("k",), ("string",), ("v",), ("double",), None, "")
    store.write(state, [(("x",), (0, (1.5,)))], [], full=True)
    with pytest.raises(LookupError_) as error:
        OnlineClient(store).get_online_features(rows, features, at=AT)
    assert str(error.value) == message
