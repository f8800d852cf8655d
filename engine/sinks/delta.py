"""Sink edge: write a DataFrame as a Delta table version and report what was committed."""

from __future__ import annotations

import json
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from engine.config.schema import SinkConfig


@dataclass(frozen=True)
class Commit:
    """The Delta version a write produced and the rows it wrote."""

    path: str
    version: int
    rows_written: int


def write_delta(
    df: DataFrame, cfg: SinkConfig, commit_info: dict[str, str], replace_where: str | None = None
) -> Commit:
    """Write `df` in one Delta commit carrying `commit_info`; rows come from the commit's metrics, not a rescan.

    With `replace_where` an overwrite replaces only the rows matching it (a backfill or an incremental
    range); Delta fails the commit if `df` holds a row outside it, so nothing else is touched.
    """
    writer = df.write.format("delta").mode(cfg.mode).option("userMetadata", json.dumps(commit_info, sort_keys=True))
    if cfg.partition_by:
        writer = writer.partitionBy(*cfg.partition_by)
    if replace_where and cfg.mode == "overwrite":
        writer = writer.option("replaceWhere", replace_where)
    else:
        writer = writer.option("overwriteSchema", cfg.mode == "overwrite")
    writer.save(cfg.path)
    return last_commit(df.sparkSession, cfg.path)


def last_commit(spark: SparkSession, path: str) -> Commit:
    """The newest version of the table at `path`, read from its transaction log."""
    row = DeltaTable.forPath(spark, path).history(1).select("version", "operationMetrics").first()
    return Commit(path=path, version=row["version"], rows_written=int(row["operationMetrics"].get("numOutputRows", 0)))
