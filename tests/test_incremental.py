"""Backfill then incremental runs: a ranged run rewrites only its dates in the Delta table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.features import AggregationConfig, FeaturesConfig, GroupConfig
from engine.config.schema import SinkConfig
from engine.features.table import feature_table, range_filters
from engine.sinks.delta import write_delta

BASE = datetime(2024, 1, 1, tzinfo=UTC)
GROUP = GroupConfig(
    name="user", keys=["user"], windows=["1d", "3d"], aggregations=[AggregationConfig(["count", "sum"], "amount")]
)


def _events(spark: SparkSession, days: int):
    rows = [(i, f"u{i % 3}", BASE + timedelta(hours=7 * i), float(i)) for i in range(days * 24 // 7)]
    return spark.createDataFrame(rows, "id long, user string, event_ts timestamp, amount double")


def _files_by_date(spark: SparkSession, path: str) -> dict[str, set[str]]:
    files = DeltaTable.forPath(spark, path).toDF().select("feature_date", F.input_file_name().alias("f")).distinct()
    out: dict[str, set[str]] = {}
    for row in files.collect():
        out.setdefault(str(row["feature_date"]), set()).add(row["f"])
    return out


def test_incremental_run_rewrites_only_its_dates(spark: SparkSession, tmp_path) -> None:
    sink = SinkConfig(path=str(tmp_path / "features"), partition_by=["feature_date"])
    backfill = FeaturesConfig(timestamp="event_ts", groups=[GROUP], end="2024-01-08")
    write_delta(
        feature_table(_events(spark, 7), backfill),
        sink,
        {"run": "backfill"},
        {"end": 8},
        replace_where=range_filters(backfill),
    )
    before = _files_by_date(spark, sink.path)
    assert sorted(before) == [f"2024-01-0{d}" for d in range(1, 8)]

    # a day of new events arrives; the next run computes 2024-01-08 only, reading the history it needs
    new = FeaturesConfig(timestamp="event_ts", groups=[GROUP], start="2024-01-08", end="2024-01-09")
    commit = write_delta(
        feature_table(_events(spark, 8), new), sink, {"run": "day 8"}, {"day": 8}, replace_where=range_filters(new)
    )
    after = _files_by_date(spark, sink.path)
    assert commit.version == 1
    assert {d: after[d] for d in before} == before  # earlier dates: the very same files
    assert "2024-01-08" in after

    table = spark.read.format("delta").load(sink.path)
    full = feature_table(_events(spark, 8), FeaturesConfig(timestamp="event_ts", groups=[GROUP]))
    assert table.count() == full.count()
    assert table.select(full.columns).exceptAll(full).count() == 0

    # repeating the same run is skipped; a different run over the same range replaces it: no duplicates
    again = write_delta(
        feature_table(_events(spark, 8), new), sink, {"run": "day 8"}, {"day": 8}, replace_where=range_filters(new)
    )
    assert again.skipped and again.version == 1
    other = {"day": 8, "run": 2}
    write_delta(
        feature_table(_events(spark, 8), new), sink, {"run": "day 8 again"}, other, replace_where=range_filters(new)
    )
    assert spark.read.format("delta").load(sink.path).count() == full.count()
