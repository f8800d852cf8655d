"""Read the pinned inputs of a training set: the spine, and each feature table with its availability times."""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.config.training import FeatureTableConfig
from engine.errors import ConfigError
from engine.sinks.delta import CORRECTION_COLUMN
from engine.sinks.sink import DELTA
from engine.sinks.table_metadata import table_properties
from engine.sql import quote_identifier
from engine.training.asof import AVAILABLE, CREATED, EVENT, AsOfSpec
from engine.versioning.refs import read_pinned

_COMMIT_VERSION = "_row_commit_version"


@dataclass(frozen=True)
class TimeRange:
    """The spine's first and last times in microseconds since the epoch (UTC), and its row count."""

    first: int
    last: int
    rows: int


def spine_range(spine: DataFrame, timestamp: str) -> TimeRange | None:
    """The spine's time range and size (one aggregation); None when no spine row has a time."""
    row = spine.agg(F.min(F.unix_micros(timestamp)), F.max(F.unix_micros(timestamp)), F.count(F.lit(1))).first()
    return None if row[0] is None else TimeRange(row[0], row[1], row[2])


def _micros(value: int) -> Column:
    return F.timestamp_micros(F.lit(value))


def _reach(cfg: FeatureTableConfig, window: TimeRange) -> Column:
    """Rows that could join some spine row: at or before its last time, within the TTL of its first.

    The bounds are literals, so Delta skips files by their statistics, and partitions by the date column.
    """
    ttl = cfg.ttl_seconds
    first = window.first - ttl * 1_000_000 if ttl is not None else None
    condition = F.col(cfg.timestamp) <= _micros(window.last)
    if first is not None:
        condition = condition & (F.col(cfg.timestamp) >= _micros(first))
    if cfg.partition_date_column:
        day = F.col(cfg.partition_date_column)
        condition = condition & (day <= F.to_date(_micros(window.last)))
        if first is not None:
            condition = condition & (day >= F.to_date(_micros(first)))
    return condition


def feature_columns(df: DataFrame, cfg: FeatureTableConfig) -> list[str]:
    """The configured features, or every column that is not a key, a time or bookkeeping."""
    bookkeeping = {*cfg.keys, cfg.timestamp, cfg.created_column, cfg.partition_date_column, CORRECTION_COLUMN}
    chosen = list(cfg.features) or [c for c in df.columns if c not in bookkeeping and c not in cfg.exclude]
    missing = [c for c in [*cfg.keys, cfg.timestamp, *chosen] if c not in df.columns]
    if missing:
        raise ConfigError(f"training_set.feature_tables.{cfg.name}: columns not in {cfg.path}: {', '.join(missing)}")
    return chosen


def _commit_times(spark: SparkSession, path: str) -> DataFrame:
    return (
        DeltaTable.forPath(spark, path)
        .history()
        .select(F.col("version").alias(_COMMIT_VERSION), F.col("timestamp").alias("_commit_ts"))
    )


def feature_rows(
    spark: SparkSession, cfg: FeatureTableConfig, version: int, window: TimeRange | None
) -> tuple[DataFrame, AsOfSpec]:
    """One pinned feature table as as-of join input: keys, event, availability and created times, features.

    Availability is the event time plus the table's delay, or the commit time for a row flagged as a
    correction. The created time (for ties) is `created_column`, or the row's commit time.
    """
    features = feature_columns(DELTA.read_version(spark, cfg.path, version), cfg)
    # One file list per table, planned here: the sweep and the reads of the winners' values share it.
    table = read_pinned(spark, cfg.path, version, _reach(cfg, window) if window is not None else None)
    if window is None:
        table = table.limit(0)
    has_flag = CORRECTION_COLUMN in table.columns
    needs_commit_time = has_flag or not cfg.created_column
    if needs_commit_time:
        if table_properties(spark, cfg.path).get("delta.enableRowTracking") != "true":
            raise ConfigError(
                f"training_set.feature_tables.{cfg.name}: {cfg.path} has no row tracking, so commit times are "
                "unknown; set created_column (and drop the correction flag)"
            )
        table = table.select("*", F.col("_metadata.row_commit_version").alias(_COMMIT_VERSION))
        table = table.join(F.broadcast(_commit_times(spark, cfg.path)), _COMMIT_VERSION, "left")
    event = F.col(cfg.timestamp)
    scheduled = event + F.expr(f"INTERVAL {cfg.delay_seconds} SECONDS") if cfg.delay_seconds else event
    available = F.when(F.col(CORRECTION_COLUMN), F.col("_commit_ts")).otherwise(scheduled) if has_flag else scheduled
    created = F.col(cfg.created_column) if cfg.created_column else F.col("_commit_ts")
    # The features by name in one call: a table may have hundreds.
    prepared = table.withColumns({EVENT: event, AVAILABLE: available, CREATED: created}).selectExpr(
        *(quote_identifier(k) for k in cfg.keys), EVENT, AVAILABLE, CREATED, *(quote_identifier(c) for c in features)
    )
    names = tuple(f"{cfg.prefix}{c}" for c in features)
    return prepared, AsOfSpec(tuple(cfg.keys), tuple(features), names, cfg.ttl_seconds, cfg.strict)
