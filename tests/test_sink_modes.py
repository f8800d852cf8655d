"""The Delta sink: append, range overwrite and merge; idempotent writes; schema policy; concurrent writers."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from engine.config.schema import SinkConfig
from engine.errors import ConfigError
from engine.sinks.delta import write_delta
from engine.sinks.schema_policy import SchemaChangeRefused
from engine.sinks.sink import DELTA
from tests.conftest import json_log, log_events

SCHEMA = "user string, day date, ts timestamp, amount double"
META = {"run_id": "r1", "job": "test", "config_hash": "abc", "code_version": "0.0"}


def rows(spark: SparkSession, data: list[tuple], schema: str = SCHEMA) -> DataFrame:
    """Rows of (user, day of January 2024, amount, extra columns...)."""
    return spark.createDataFrame(
        [(u, date(2024, 1, d), datetime(2024, 1, d, 10), *rest) for u, d, *rest in data], schema
    )


def table(spark: SparkSession, path: Path) -> list[tuple]:
    frame = spark.read.format("delta").load(str(path))
    return sorted(tuple(r) for r in frame.select("user", "day", "amount").collect())


def versions(spark: SparkSession, path: Path) -> int:
    return DeltaTable.forPath(spark, str(path)).history().count()


def test_append_overwrite_range_and_merge(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "t"
    append = SinkConfig(path=str(path), mode="append", partition_by=["day"])
    first = write_delta(rows(spark, [("a", 1, 1.0), ("b", 2, 2.0)]), append, META, {"w": 1})
    assert (first.version, first.rows_written, first.skipped) == (0, 2, False)
    write_delta(rows(spark, [("c", 3, 3.0)]), append, META, {"w": 2})
    overwrite = SinkConfig(path=str(path), mode="overwrite", partition_by=["day"])
    day_2 = [("day", "=", date(2024, 1, 2))]
    write_delta(rows(spark, [("b2", 2, 20.0)]), overwrite, META, {"w": 3}, replace_where=day_2)
    assert [(u, a) for u, _, a in table(spark, path)] == [("a", 1.0), ("b2", 20.0), ("c", 3.0)]
    merge = SinkConfig(path=str(path), mode="merge", merge_keys=["user", "ts"], partition_by=["day"])
    merged = write_delta(rows(spark, [("a", 1, 10.0), ("d", 4, 4.0)]), merge, META, {"w": 4})
    assert merged.rows_written == 2
    assert [(u, a) for u, _, a in table(spark, path)] == [("a", 10.0), ("b2", 20.0), ("c", 3.0), ("d", 4.0)]
    metadata = [json.loads(r["userMetadata"]) for r in DeltaTable.forPath(spark, str(path)).history().collect()]
    assert all({"run_id", "job", "config_hash", "code_version", "write_id"} <= set(m) for m in metadata)


def test_a_range_names_any_column_and_value(spark: SparkSession, tmp_path: Path) -> None:
    """A partition column named with a backtick, a value holding a quote and a backslash: the overwrite
    replaces exactly the rows its filter names, and a read of a version with that filter finds them."""
    path, column, odd, plain = str(tmp_path / "t"), "pa`rt", "it's a \\ path", "plain"
    schema = T.StructType([T.StructField(column, T.StringType()), T.StructField("amount", T.DoubleType())])
    where, append = [(column, "=", odd)], SinkConfig(path, "append", partition_by=[column])
    DELTA.write(spark.createDataFrame([(odd, 1.0), (plain, 2.0)], schema), append, META, {"w": 1})
    overwrite = SinkConfig(path, "overwrite", partition_by=[column])
    DELTA.write(spark.createDataFrame([(odd, 10.0)], schema), overwrite, META, {"w": 2}, replace_where=where)
    assert sorted(tuple(r) for r in DELTA.read_version(spark, path).collect()) == [(odd, 10.0), (plain, 2.0)]
    assert [tuple(r) for r in DELTA.read_version(spark, path, 0, where=where).collect()] == [(odd, 1.0)]


def test_a_repeated_write_adds_no_rows(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "t"
    data = rows(spark, [("a", 1, 1.0), ("b", 2, 2.0)])
    for mode, keys in (("append", []), ("merge", ["user", "ts"])):
        sink = SinkConfig(path=str(path), mode=mode, merge_keys=keys)
        first = write_delta(data, sink, META, {"run": mode, "range": None})
        again = write_delta(data, sink, META, {"run": mode, "range": None})
        assert again.skipped and again.version == first.version, mode
        assert len(table(spark, path)) == 2
    assert versions(spark, path) == 2  # one append, one merge; both repeats were skipped by Delta


def test_an_overwrite_repeat_restores_its_rows_after_another_write(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "t"
    sink = SinkConfig(path=str(path), mode="overwrite")
    first = write_delta(rows(spark, [("a", 1, 1.0)]), sink, META, {"run": "A"})
    assert write_delta(rows(spark, [("a", 1, 1.0)]), sink, META, {"run": "A"}).skipped
    write_delta(rows(spark, [("b", 1, 2.0)]), sink, META, {"run": "B"})
    last = write_delta(rows(spark, [("a", 1, 1.0)]), sink, META, {"run": "A"})
    assert (first.version, last.version, last.skipped) == (0, 2, False)
    assert [u for u, _, _ in table(spark, path)] == ["a"]


def test_schema_policy(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "t"
    sink = SinkConfig(path=str(path), mode="append")
    write_delta(rows(spark, [("a", 1, 1.0)]), sink, META, {"w": 1})
    wider = rows(spark, [("b", 2, 2.0, "x")], SCHEMA + ", note string")
    with json_log(tmp_path / "events.log") as log:
        write_delta(wider, sink, META, {"w": 2})
        with pytest.raises(SchemaChangeRefused):
            write_delta(rows(spark, [("c", 3, 3.0, 5)], SCHEMA + ", note int"), sink, META, {"w": 3})
    events = [(e["event"], e["data_source"], e.get("action"), e["record_count"]) for e in log_events(log)]
    assert events == [
        ("schema_drift", str(path), "evolve", None),
        ("materialization_done", str(path), None, 1),
        ("schema_drift", str(path), "refuse", None),
        ("store_write_failed", str(path), None, None),
    ]
    frame = spark.read.format("delta").load(str(path))
    assert sorted((r["user"], r["note"]) for r in frame.collect()) == [("a", None), ("b", "x")]
    before = versions(spark, path)
    retyped = rows(spark, [("c", 3, 3.0, 5)], SCHEMA + ", note int")
    with pytest.raises(SchemaChangeRefused, match=r"changed type note \(string -> int\)"):
        write_delta(retyped, sink, META, {"w": 3})
    with pytest.raises(SchemaChangeRefused, match="dropped note"):
        write_delta(rows(spark, [("c", 3, 3.0)]), sink, META, {"w": 4})
    strict = SinkConfig(path=str(path), mode="append", schema_policy="strict")
    with pytest.raises(SchemaChangeRefused, match="added extra"):
        write_delta(rows(spark, [("c", 3, 3.0, "x", 1)], SCHEMA + ", note string, extra int"), strict, META, {"w": 5})
    assert versions(spark, path) == before
    replace = SinkConfig(path=str(path), mode="overwrite", schema_policy="replace")
    write_delta(rows(spark, [("z", 1, 9.0)]), replace, META, {"w": 6})
    assert "note" not in spark.read.format("delta").load(str(path)).columns


def test_layout_mismatch_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_delta(rows(spark, [("a", 1, 1.0)]), SinkConfig(path=str(path), mode="append", partition_by=["day"]), META, {})
    with pytest.raises(ConfigError, match="differs from the partitioning"):
        write_delta(
            rows(spark, [("b", 1, 1.0)]), SinkConfig(path=str(path), mode="append", partition_by=["user"]), META, {}
        )


def test_an_empty_partition_by_keeps_the_tables_partitioning(spark: SparkSession, tmp_path: Path) -> None:
    """A table's partitioning is fixed at creation: a write that names none (the default) follows it,
    grouping its rows by partition, and a full overwrite keeps it."""
    path = tmp_path / "t"
    write_delta(rows(spark, [("a", 1, 1.0)]), SinkConfig(path=str(path), mode="append", partition_by=["day"]), META, {})
    write_delta(rows(spark, [("b", 2, 2.0), ("c", 2, 3.0)]), SinkConfig(path=str(path), mode="append"), META, {"w": 2})
    write_delta(rows(spark, [("d", 3, 4.0)]), SinkConfig(path=str(path), mode="overwrite"), META, {"w": 3})
    detail = DeltaTable.forPath(spark, str(path)).detail().first()
    assert list(detail["partitionColumns"]) == ["day"]
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("day=")) == [
        "day=2024-01-01",
        "day=2024-01-02",
        "day=2024-01-03",
    ]
    assert table(spark, path) == [("d", date(2024, 1, 3), 4.0)]


def test_liquid_clustering_from_config(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "t"
    commit = write_delta(rows(spark, [("a", 1, 1.0)]), SinkConfig(path=str(path), cluster_by=["user"]), META, {})
    assert commit.rows_written == 1
    assert list(DeltaTable.forPath(spark, str(path)).detail().first()["clusteringColumns"]) == ["user"]


def test_two_writers_appending_at_the_same_time_lose_nothing(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_delta(rows(spark, [("seed", 1, 0.0)]), SinkConfig(path=str(path), mode="append"), META, {"seed": 1})
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        try:
            start.wait()
            for i in range(3):
                data = rows(spark, [(f"{name}{i}", 2, float(i)), (f"{name}{i}x", 3, float(i))])
                write_delta(data, SinkConfig(path=str(path), mode="append"), META, {"writer": name, "i": i})
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("p", "q")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(table(spark, path)) == 1 + 2 * 3 * 2
    assert versions(spark, path) == 1 + 6


def _at_once(*writes) -> list[BaseException]:
    """Run each write in its own thread, started together; the errors they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(writes))

    def run(write) -> None:
        try:
            start.wait()
            write()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(w,)) for w in writes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_two_first_writes_to_an_empty_path_both_commit_after_a_retry(
    spark: SparkSession, tmp_path: Path, mode: str
) -> None:
    """Both start before the table exists; the one that loses the race to create it retries against the
    table the other created."""
    path = tmp_path / "t"
    sink = SinkConfig(path=str(path), mode=mode)
    data = {name: rows(spark, [(name, 1, 1.0)]) for name in ("p", "q")}
    with json_log(tmp_path / "log.jsonl") as log:
        errors = _at_once(*(lambda n=n: write_delta(data[n], sink, META, {"writer": n}) for n in data))
    assert not errors, errors
    retried = [e for e in log_events(log) if e["event"] == "store_write_failed" and e["retrying"]]
    assert len(retried) == 1 and "created by a concurrent writer" in retried[0]["message"]
    assert versions(spark, path) == 2
    users = sorted(r[0] for r in table(spark, path))
    assert users == (["p", "q"] if mode == "append" else users[:1])  # an overwrite: the later one's row only
