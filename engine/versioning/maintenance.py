"""Table maintenance: restore to a version, vacuum old files behind a retention guard, compact."""

from __future__ import annotations

import json

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.training import MIN_RETENTION_HOURS
from engine.sinks.delta import session_commit_conf
from engine.sinks.table_metadata import sql_location
from engine.versioning.refs import VersionError, delta_table, tags

_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


def restore(spark: SparkSession, path: str, version: int, metadata: dict[str, str]) -> int:
    """Make `version`'s contents the table's newest version (a new commit; history is kept)."""
    with session_commit_conf(spark, json.dumps(metadata, sort_keys=True)):
        delta_table(spark, path).restoreToVersion(version)
    return int(delta_table(spark, path).history(1).first()["version"])


def tags_at_risk(spark: SparkSession, path: str, retention_hours: float) -> list[str]:
    """Tags whose version a vacuum with this retention could make unreadable.

    A version stays readable while the files it references survive; a vacuum deletes files removed
    by commits older than the retention, so a tag is at risk once a later commit is that old.
    """
    tagged = tags(spark, path)
    if not tagged:
        return []
    old = F.unix_timestamp("timestamp") < F.unix_timestamp() - int(retention_hours * 3600)
    expired = {row["version"] - 1 for row in delta_table(spark, path).history().filter(old).select("version").collect()}
    return [f"{name} (version {v})" for name, v in sorted(tagged.items()) if v in expired]


def vacuum(
    spark: SparkSession, path: str, retention_hours: float, allow_short_retention: bool, metadata: dict[str, str]
) -> int:
    """Delete files older than the retention that no current version needs; returns how many went.

    Refused below 7 days unless allowed, and always refused when it would break a tagged version.
    """
    if retention_hours < MIN_RETENTION_HOURS and not allow_short_retention:
        raise VersionError(
            f"vacuum: retention {retention_hours:g}h is below {MIN_RETENTION_HOURS:g}h, so time travel and running "
            "readers could lose files; set version.allow_short_retention=true to accept that"
        )
    at_risk = tags_at_risk(spark, path, retention_hours)
    if at_risk:
        raise VersionError(f"vacuum: retention {retention_hours:g}h would break tagged versions: {', '.join(at_risk)}")
    table = delta_table(spark, path)
    previous = spark.conf.get(_RETENTION_CHECK, "true")
    spark.conf.set(_RETENTION_CHECK, str(not allow_short_retention).lower())
    try:
        # `vacuum()` returns an empty frame; a dry run lists the files it will delete.
        dry_run = spark.sql(f"VACUUM {sql_location(path)} RETAIN {retention_hours:.6f} HOURS DRY RUN")
        # The dry run also lists the change data folder itself, which the vacuum keeps while it holds files.
        doomed = dry_run.where(~F.col("path").endswith("/_change_data")).count()
        with session_commit_conf(spark, json.dumps(metadata, sort_keys=True)):
            table.vacuum(retention_hours)
    finally:
        spark.conf.set(_RETENTION_CHECK, previous)
    return doomed


def optimize(spark: SparkSession, path: str, zorder_by: list[str], where: str, metadata: dict[str, str]) -> dict:
    """Compact small files (Z-ordered by `zorder_by` when given, clustered on a clustered table)."""
    builder = delta_table(spark, path).optimize()
    if where:
        builder = builder.where(where)
    with session_commit_conf(spark, json.dumps(metadata, sort_keys=True)):
        result = builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()
    metrics = result.first()["metrics"]
    return {"files_added": metrics["numFilesAdded"], "files_removed": metrics["numFilesRemoved"]}
