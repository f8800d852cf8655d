"""Sink edge: write a DataFrame as one Delta commit (overwrite, append or merge) and report what was committed.

Every commit carries the caller's metadata (run id, job, config hash, code version) and a write id.
The write id is Delta's idempotent-write key (`txnAppId` / `txnVersion`): Delta skips a commit
whose key it has already applied, so a retried or repeated write never duplicates rows. Commit
conflicts with concurrent writers are retried. New tables get row tracking, which records each
row's commit version, so a late correction's commit time can be read back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from delta import exceptions as delta_errors
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.config.resilience import RetryConfig
from engine.config.schema import SchemaPolicy, SinkConfig, SinkMode
from engine.errors import ConfigError, describe
from engine.observability.events import emit
from engine.resilience.retry import retry_on
from engine.sinks.conflicts import CommitConflict, commit_conflict
from engine.sinks.schema_policy import SchemaDiff, enforce, schema_diff
from engine.sinks.table_metadata import partition_columns
from engine.sql import Filter, predicate, quote_identifier

CORRECTION_COLUMN = "correction"
# Set when a table is created: row ids (the training sets' tie-break) and the change data feed (the
# online store's incremental materialization reads only the rows that changed).
TABLE_PROPERTIES = {"delta.enableRowTracking": "true", "delta.enableChangeDataFeed": "true"}
CONFLICTS = (  # commit conflicts with a concurrent writer: retried
    delta_errors.ConcurrentAppendException,
    delta_errors.ConcurrentDeleteDeleteException,
    delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentTransactionException,
    delta_errors.ConcurrentWriteException,
    delta_errors.MetadataChangedException,
)
_SESSION_WRITE_CONF = threading.Lock()  # merge takes its txn id and metadata from session conf


@dataclass(frozen=True)
class WriteId:
    """Delta's idempotent-write key: a commit with an (app id, version) already applied is skipped."""

    app_id: str
    version: int

    def __str__(self) -> str:
        return f"{self.app_id}/{self.version}"


@dataclass(frozen=True)
class Commit:
    """The Delta version holding a write, the rows it wrote, and whether this call skipped it as a repeat."""

    path: str
    version: int
    rows_written: int
    skipped: bool = False


def _commits(table: DeltaTable, limit: int | None = None) -> DataFrame:
    """Version, time, operation, run id, job, write id and rows written of the table's newest commits."""
    metrics = F.col("operationMetrics")
    rows = F.when(
        F.col("operation") == "MERGE",
        F.coalesce(metrics["numTargetRowsInserted"].cast("long"), F.lit(0))
        + F.coalesce(metrics["numTargetRowsUpdated"].cast("long"), F.lit(0)),
    ).otherwise(F.coalesce(metrics["numOutputRows"].cast("long"), F.lit(0)))
    commits = table.history(limit) if limit else table.history()
    return commits.select(
        "version",
        "timestamp",
        "operation",
        F.get_json_object("userMetadata", "$.run_id").alias("run_id"),
        F.get_json_object("userMetadata", "$.job").alias("job"),
        F.get_json_object("userMetadata", "$.write_id").alias("write_id"),
        rows.alias("rows_written"),
    )


def history(spark: SparkSession, path: str) -> DataFrame:
    """The table's commits, newest first: version, time, operation, run id, job, write id and rows written."""
    return _commits(DeltaTable.forPath(spark, path)).orderBy(F.desc("version"))


def write_id(identity: Mapping[str, object], mode: SinkMode, table_version: int | None) -> WriteId:
    """The idempotent-write key of one logical write: its identity (job, config, inputs, range) hashed.

    Append and merge use version 0, so the same identity is applied once, ever. An overwrite is keyed
    on the table version it was planned against: a repeat while the table still holds its write is
    skipped, and a repeat after someone else's write restores its own rows.
    """
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]
    version = 0 if mode != SinkMode.OVERWRITE or table_version is None else table_version + 1
    return WriteId(app_id=f"featurelake-{digest}", version=version)


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The table's newest version, or None when there is no Delta table at `path`."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return DeltaTable.forPath(spark, path).history(1).first()["version"]


def _with_correction_flag(df: DataFrame, cfg: SinkConfig, existing: DeltaTable | None) -> DataFrame:
    """Mark late corrections; keep the flag column (false) on tables that already have it."""
    has_flag = existing is not None and CORRECTION_COLUMN in existing.toDF().columns
    if cfg.correction or has_flag:
        return df.withColumn(CORRECTION_COLUMN, F.lit(cfg.correction))
    return df


def _layout(spark: SparkSession, cfg: SinkConfig) -> list[str]:
    """The existing table's partition columns: `sink.partition_by` must match them, and an empty one
    keeps them (a table's partitioning is fixed when it is created)."""
    partitions = partition_columns(spark, cfg.path)
    if cfg.partition_by and partitions != list(cfg.partition_by):
        raise ConfigError(
            f"sink.partition_by: {list(cfg.partition_by)} differs from the partitioning {partitions} of {cfg.path}"
        )
    return partitions


@contextmanager
def session_commit_conf(spark: SparkSession, metadata: str, txn: WriteId | None = None) -> Iterator[None]:
    """Set the commit metadata (and txn id) that Delta's DML and maintenance commands read from the session.

    Those commands take no writer options; a lock keeps threads of one session from mixing them up.
    """
    keys = {"spark.databricks.delta.commitInfo.userMetadata": metadata}
    if txn is not None:
        keys["spark.databricks.delta.write.txnAppId"] = txn.app_id
        keys["spark.databricks.delta.write.txnVersion"] = str(txn.version)
    with _SESSION_WRITE_CONF:
        for key, value in keys.items():
            spark.conf.set(key, value)
        try:
            yield
        finally:
            for key in keys:
                spark.conf.unset(key)


def _create_clustered(spark: SparkSession, df: DataFrame, cfg: SinkConfig) -> None:
    """Liquid clustering is declared at creation, so a clustered table is created (empty) first."""
    builder = DeltaTable.createIfNotExists(spark).location(cfg.path).addColumns(df.schema).clusterBy(*cfg.cluster_by)
    for key, value in TABLE_PROPERTIES.items():
        builder = builder.property(key, value)
    builder.execute()


def _rebalanced(df: DataFrame, columns: list[str]) -> DataFrame:
    """Rows grouped by the partition columns before a partitioned write, so each partition gets a few
    files, not one per task. Adaptive execution splits a large partition over several tasks and
    packs small ones together (Spark's REBALANCE hint)."""
    if not columns:
        return df
    hint = ", ".join(quote_identifier(c) for c in columns)
    return df.sparkSession.sql(f"SELECT /*+ REBALANCE({hint}) */ * FROM {{rows}}", rows=df)


def _commit_once(
    df: DataFrame,
    cfg: SinkConfig,
    txn: WriteId,
    metadata: str,
    replace_where: str | None,
    evolve: bool,
    partitions: list[str],
) -> None:
    spark = df.sparkSession
    if cfg.mode == SinkMode.MERGE and DeltaTable.isDeltaTable(spark, cfg.path):
        condition = " AND ".join(f"t.{quote_identifier(k)} <=> s.{quote_identifier(k)}" for k in cfg.merge_keys)
        merge = DeltaTable.forPath(spark, cfg.path).alias("t").merge(df.alias("s"), condition)
        if evolve:
            merge = merge.withSchemaEvolution()
        with session_commit_conf(spark, metadata, txn):
            merge.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
        return
    overwrite = cfg.mode == SinkMode.OVERWRITE  # else append (a merge into no table yet creates it)
    if cfg.cluster_by:
        if not DeltaTable.isDeltaTable(spark, cfg.path):
            _create_clustered(spark, df, cfg)
        # A plain overwrite would replace the table's clustering; a predicate overwrite keeps it.
        replace_where = replace_where or ("true" if overwrite else None)
    writer = (
        _rebalanced(df, partitions)
        .write.format("delta")
        .mode("overwrite" if overwrite else "append")  # Spark save modes
        .options(**TABLE_PROPERTIES)
        .option("userMetadata", metadata)
        .option("txnAppId", txn.app_id)
        .option("txnVersion", txn.version)
    )
    if partitions:
        writer = writer.partitionBy(*partitions)
    if replace_where and overwrite:
        writer = writer.option("replaceWhere", replace_where)
    elif overwrite and cfg.schema_policy == SchemaPolicy.REPLACE:
        writer = writer.option("overwriteSchema", "true")
    if evolve:
        writer = writer.option("mergeSchema", "true")
    writer.save(cfg.path)


def write_delta(
    df: DataFrame,
    cfg: SinkConfig,
    commit_info: Mapping[str, str],
    identity: Mapping[str, object],
    *,
    replace_where: Sequence[Filter] = (),
) -> Commit:
    """Write `df` to `cfg.path` in one idempotent Delta commit, after checking the schema policy.

    With `replace_where` filters (column, operator, value) an overwrite replaces only the rows matching all
    of them (a backfill or an incremental range), through a `replaceWhere` predicate with the columns quoted
    and the values escaped (`engine.sql`); Delta fails the commit if `df` holds a row outside it, so nothing
    else is touched.
    `identity` names the logical write (job, config, inputs, range); a repeat of it is skipped.
    Rows written come from the commit's metrics, not from a rescan. The outcome is an event:
    `materialization_done` or `store_write_failed`.
    """
    where, started = predicate(replace_where), time.perf_counter()
    try:
        commit = _write(df, cfg, commit_info, identity, where)
    except Exception as err:
        message = str(err) if isinstance(err, CommitConflict) else f"write to {cfg.path} failed: {describe(err)}"
        _write_failed(cfg, err, message, retrying=False)
        raise
    emit(
        "materialization_done",
        f"{cfg.path}: version {commit.version}, {commit.rows_written:,} rows"
        + (" (a repeat: skipped)" if commit.skipped else ""),
        data_source=cfg.path,
        record_count=commit.rows_written,
        version=commit.version,
        skipped=commit.skipped,
        mode=cfg.mode,
        seconds=round(time.perf_counter() - started, 3),
    )
    return commit


def _write_failed(cfg: SinkConfig, err: Exception, message: str, *, retrying: bool) -> None:
    emit(
        "store_write_failed",
        message,
        data_source=cfg.path,
        level=logging.WARNING,
        mode=cfg.mode,
        error=describe(err),
        retrying=retrying,
    )


def _announce_drift(diff: SchemaDiff, cfg: SinkConfig, full_overwrite: bool) -> None:
    refused = cfg.schema_policy == SchemaPolicy.STRICT or bool(diff.dropped or diff.retyped)
    replaced = cfg.schema_policy == SchemaPolicy.REPLACE and full_overwrite
    action = "replace" if replaced else "refuse" if refused else "evolve"
    emit(
        "schema_drift",
        f"schema of the data written to {cfg.path} differs from the table's: {diff.describe()} ({action})",
        data_source=cfg.path,
        level=logging.WARNING,
        added=list(diff.added),
        dropped=list(diff.dropped),
        retyped=list(diff.retyped),
        policy=cfg.schema_policy,
        action=action,
    )


def _write(
    df: DataFrame,
    cfg: SinkConfig,
    commit_info: Mapping[str, str],
    identity: Mapping[str, object],
    replace_where: str | None,
) -> Commit:
    spark = df.sparkSession
    existing = DeltaTable.forPath(spark, cfg.path) if DeltaTable.isDeltaTable(spark, cfg.path) else None
    df = _with_correction_flag(df, cfg, existing)
    evolve = False
    partitions = list(cfg.partition_by)
    if existing is not None:
        partitions = _layout(spark, cfg)
        diff = schema_diff(existing.toDF().schema, df.schema)
        full_overwrite = cfg.mode == SinkMode.OVERWRITE and not replace_where
        if not diff.empty:
            _announce_drift(diff, cfg, full_overwrite)
        enforce(cfg.schema_policy, diff, cfg.path, full_overwrite)
        evolve = bool(diff.added) and not (cfg.schema_policy == SchemaPolicy.REPLACE and full_overwrite)
    newest = _commits(existing, 1).first() if existing is not None else None
    before = newest["version"] if newest is not None else None
    txn = write_id(identity, cfg.mode, before)
    holds_this_write = newest is not None and (newest["write_id"] or "").split("/")[0] == txn.app_id
    if cfg.mode == SinkMode.OVERWRITE and holds_this_write:  # a repeat while the table still holds this very write
        return Commit(cfg.path, newest["version"], newest["rows_written"], skipped=True)
    metadata = json.dumps({**commit_info, "write_id": str(txn)}, sort_keys=True)

    def conflict(attempt: int, err: Exception, delay: float) -> None:
        message = f"commit conflict on {cfg.path} (attempt {attempt}): {type(err).__name__}; retrying in {delay:g} s"
        _write_failed(cfg, err, message, retrying=True)

    try:
        retry_on(
            lambda: _commit_once(df, cfg, txn, metadata, replace_where, evolve, partitions),
            retryable=lambda err: isinstance(err, CONFLICTS),
            policy=RetryConfig(attempts=cfg.commit_retries + 1, first_delay_seconds=0.2, max_delay_seconds=5.0),
            on_retry=conflict,
        )
    except CONFLICTS as err:
        raise commit_conflict(spark, cfg.path, err, cfg.commit_retries + 1, cfg.commit_retries) from None
    except delta_errors.ProtocolChangedException as err:
        # Two first writes to an empty path: the other one created the table. Once, against that table
        # (its schema policy, layout and history apply as to any write).
        if existing is not None or not DeltaTable.isDeltaTable(spark, cfg.path):
            raise
        _write_failed(cfg, err, f"{cfg.path} was created by a concurrent writer; writing again to it", retrying=True)
        return _write(df, cfg, commit_info, identity, replace_where)
    return commit_of(spark, cfg.path, str(txn), before)


def commit_of(spark: SparkSession, path: str, write: str, before: int | None) -> Commit:
    """The commit that holds write id `write`; `skipped` when it predates version `before` (a repeat)."""
    row = history(spark, path).filter(F.col("write_id") == write).select("version", "rows_written").first()
    if row is None:
        raise RuntimeError(f"no commit of write {write} in the history of {path}")
    skipped = before is not None and row["version"] <= before
    return Commit(path, row["version"], row["rows_written"], skipped)
