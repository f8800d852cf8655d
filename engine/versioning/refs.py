"""Name a table version: by number, by tag, or by time; and read a version over a file list planned once.

Tags are table properties (`featurelake.tag.<name>` = version), so they live in the table's own
transaction log: they travel with the table, and setting one is an atomic commit.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from delta.tables import DeltaTable
from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.errors import FeaturelakeError
from engine.runtime.instants import epoch_micros
from engine.sinks.delta import session_commit_conf
from engine.sinks.sink import DELTA
from engine.sinks.table_metadata import sql_location, table_properties
from engine.sql import string_literal

TAG_PREFIX = "featurelake.tag."


class VersionError(FeaturelakeError):
    """A version, tag or time that the table cannot serve."""


def missing_local_table(path: str) -> bool:
    """True when `path` is a local folder without a Delta log (remote paths are checked by Spark)."""
    return "://" not in path and not (Path(path) / "_delta_log").is_dir()


def delta_table(spark: SparkSession, path: str) -> DeltaTable:
    """The Delta table at `path`, or a one-line error when there is none."""
    if not DeltaTable.isDeltaTable(spark, path):
        raise VersionError(f"no Delta table at {path}")
    return DeltaTable.forPath(spark, path)


def tags(spark: SparkSession, path: str) -> dict[str, int]:
    """The table's tags and the versions they name."""
    delta_table(spark, path)
    properties = table_properties(spark, path)
    return {k.removeprefix(TAG_PREFIX): int(v) for k, v in properties.items() if k.startswith(TAG_PREFIX)}


def version_range(spark: SparkSession, path: str) -> tuple[int, int]:
    """The oldest and newest versions still in the table's log."""
    row = delta_table(spark, path).history().agg(F.min("version"), F.max("version")).first()
    return int(row[0]), int(row[1])


def resolve_version(spark: SparkSession, path: str, ref: str) -> int:
    """The version that `ref` (a number or a tag) names, checked against the table's log."""
    if ref.isdigit():
        version = int(ref)
    else:
        known = tags(spark, path)
        if ref not in known:
            raise VersionError(f"{path}: no tag '{ref}' (tags: {', '.join(sorted(known)) or 'none'})")
        version = known[ref]
    oldest, newest = version_range(spark, path)
    if not oldest <= version <= newest:
        raise VersionError(f"{path}: version {version} is not in the log (versions {oldest}..{newest})")
    return version


def version_at(spark: SparkSession, path: str, when: datetime) -> int:
    """The newest version committed at or before `when`."""
    cutoff = F.timestamp_micros(F.lit(epoch_micros(when)))
    row = delta_table(spark, path).history().where(F.col("timestamp") <= cutoff).agg(F.max("version")).first()
    if row[0] is None:
        raise VersionError(f"{path}: no version committed at or before {when.isoformat()}")
    return int(row[0])


def read_pinned(spark: SparkSession, path: str, version: int, condition: Column | None = None) -> DataFrame:
    """The table as of `version`, restricted to `condition`, over a file list Delta plans here, once.

    Delta plans a table's scan (skipping files by their statistics) each time a query reads it; a frame
    read by several plans pays it every time. This frame holds the files of the version that
    `condition` cannot rule out, chosen once by Delta's own data skipping, and Delta's own relation
    reads them (deletion vectors, column mapping and row tracking as usual).
    """
    try:
        frame = _planned_frame(spark, path, version, condition)
    except Py4JJavaError:
        raise
    except Py4JError:  # a Delta build without these internals (a vendor runtime): Delta plans each read
        frame = DELTA.read_version(spark, path, version)
    return frame if condition is None else frame.where(condition)


def _planned_frame(spark: SparkSession, path: str, version: int, condition: Column | None) -> DataFrame:
    jvm = spark.sparkContext._jvm
    seq = jvm.scala.collection.JavaConverters
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    none = jvm.scala.Option.empty()
    snapshot = log.getSnapshotAt(version, none, none)
    filters = []
    if condition is not None:  # resolved against the table, its constants folded (data skipping reads literals)
        analyzed = DELTA.read_version(spark, path, version).where(condition)._jdf.queryExecution().analyzed()
        plan = getattr(getattr(jvm.org.apache.spark.sql.catalyst.optimizer, "ConstantFolding$"), "MODULE$").apply(
            analyzed
        )
        filters = [plan.condition()] if plan.getClass().getSimpleName() == "Filter" else []
    files = snapshot.filesForScan(seq.asScalaBuffer(jvm.java.util.ArrayList(filters)).toSeq(), False).files()
    return DataFrame(log.createDataFrame(snapshot, files, False, none), spark)


def set_tag(spark: SparkSession, path: str, name: str, version: int, metadata: dict[str, str]) -> None:
    """Name `version` as `name` in a commit carrying `metadata`; a tag never moves, so re-tagging is refused."""
    existing = tags(spark, path).get(name)
    if existing is not None and existing != version:
        raise VersionError(f"{path}: tag '{name}' already names version {existing}; tags do not move")
    if existing is None:
        with session_commit_conf(spark, json.dumps(metadata, sort_keys=True)):
            tag = f"{string_literal(TAG_PREFIX + name)} = {string_literal(str(version))}"
            spark.sql(f"ALTER TABLE {sql_location(path)} SET TBLPROPERTIES ({tag})")
