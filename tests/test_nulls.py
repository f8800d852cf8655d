"""Nulls survive every hop: pandas -> Arrow -> Spark -> Delta -> delta-rs (a pinned version) -> Ray."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pandas as pd
import pyarrow as pa
import ray
from pyspark.sql import SparkSession

from engine.experiments.dataset import TableVersion, read_arrow_table


def _cells(table: pa.Table) -> dict[str, list]:
    """Each column's values, with NaN spelled out so that it compares equal to itself and apart from null."""

    def cell(value: object) -> object:
        return "NaN" if isinstance(value, float) and math.isnan(value) else value

    return {name: [cell(v) for v in table.column(name).to_pylist()] for name in table.column_names}


def test_nulls_survive_every_hop(spark: SparkSession, ray_session: None, tmp_path) -> None:
    ts = datetime(2013, 1, 1, 5, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "id": pd.array([1, 2, 3, 4], dtype="Int64"),
            "count": pd.array([5, None, 0, None], dtype="Int64"),
            "mean": [1.5, None, float("nan"), None],
            "carrier": pd.array(["AA", None, "", "UA"], dtype="string"),
            "flag": pd.array([True, None, False, None], dtype="boolean"),
            "ts": pd.array([ts, None, ts, None], dtype="datetime64[us, UTC]"),
            "day": pd.array([date(2013, 1, 1), None, date(2013, 1, 2), None], dtype=pd.ArrowDtype(pa.date32())),
        }
    )
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    path = str(tmp_path / "nulls")
    arrow_key = "spark.sql.execution.arrow.pyspark.enabled"
    previous = spark.conf.get(arrow_key)
    spark.conf.set(arrow_key, "true")  # the pandas -> Spark hop goes through Arrow
    try:
        spark.createDataFrame(frame).write.format("delta").save(path)
        spark.createDataFrame(frame.iloc[:1]).write.format("delta").mode("overwrite").save(path)  # version 1
    finally:
        spark.conf.set(arrow_key, previous)
    rows = spark.read.format("delta").option("versionAsOf", 0).load(path).orderBy("id").collect()
    assert [r["count"] for r in rows] == [5, None, 0, None]
    assert [r["carrier"] for r in rows] == ["AA", None, "", "UA"]
    assert [r["flag"] for r in rows] == [True, None, False, None]

    from_delta = read_arrow_table(TableVersion(path, 0), arrow.column_names).sort_by("id")
    assert _cells(from_delta) == _cells(arrow)
    assert [from_delta.schema.field(c).type for c in ("id", "count", "mean", "carrier", "flag", "day")] == [
        pa.int64(),
        pa.int64(),
        pa.float64(),
        pa.string(),
        pa.bool_(),
        pa.date32(),
    ]
    assert from_delta.schema.field("ts").type == pa.timestamp("us", tz="UTC")

    through_ray = ray.get(ray.remote(lambda t: t).remote(ray.put(from_delta)))
    assert through_ray.schema == from_delta.schema
    assert _cells(through_ray) == _cells(arrow)
    assert through_ray.to_pandas()["count"].isna().tolist() == [False, True, False, True]
