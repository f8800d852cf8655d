"""Nulls survive every hop: pandas -> Arrow -> Spark -> Delta -> Parquet (pyarrow) -> Ray."""

from __future__ import annotations

from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from pyspark.sql import SparkSession


def _null_positions(table: pa.Table) -> dict[str, list[int]]:
    return {name: [i for i, v in enumerate(table.column(name).to_pylist()) if v is None] for name in table.column_names}


def test_nulls_survive_every_hop(spark: SparkSession, tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "id": pd.array([1, 2, 3, 4], dtype="Int64"),
            "count": pd.array([5, None, 0, None], dtype="Int64"),
            "mean": [1.5, None, 2.5, None],
            "carrier": pd.array(["AA", None, "", "UA"], dtype="string"),
        }
    )
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    path = str(tmp_path / "nulls")
    arrow_key = "spark.sql.execution.arrow.pyspark.enabled"
    previous = spark.conf.get(arrow_key)
    spark.conf.set(arrow_key, "true")  # the pandas -> Spark hop goes through Arrow
    try:
        spark.createDataFrame(frame).write.format("delta").save(path)
    finally:
        spark.conf.set(arrow_key, previous)
    delta = spark.read.format("delta").load(path).orderBy("id")
    rows = delta.collect()
    assert [r["count"] for r in rows] == [5, None, 0, None]
    assert [r["carrier"] for r in rows] == ["AA", None, "", "UA"]

    files = [urlparse(u).path for u in delta.inputFiles()]
    from_delta = pq.read_table(files).sort_by("id").select(arrow.column_names)
    expected = _null_positions(arrow)
    assert _null_positions(from_delta) == expected
    assert from_delta.column("mean").to_pylist() == [1.5, None, 2.5, None]

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        through_ray = ray.get(ray.remote(lambda t: t).remote(from_delta))
    finally:
        ray.shutdown()
    assert _null_positions(through_ray) == expected
    assert through_ray.to_pandas()["count"].isna().tolist() == [False, True, False, True]
