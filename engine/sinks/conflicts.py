"""A commit conflict the retry policy does not retry, in one line naming the other writer's commit.

Delta's conflict exceptions describe the winning commit (its time, operation and user metadata) but
not its version; the version is found in the table's history by that commit's time.
"""

from __future__ import annotations

import re

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.errors import FeaturelakeError, first_line

_WINNER = re.compile(r'Conflicting commit: \{"timestamp":(\d+)')
_WRITE_ID = re.compile(r'\\"write_id\\": \\"([^"\\]+)\\"')


class CommitConflict(FeaturelakeError):
    """Another writer committed to the table first, and the retry policy gave up on this write."""


def _other_commit(spark: SparkSession, path: str, message: str) -> str:
    """`version 4 (WRITE by run r2)`: the winning commit as the table's history has it (the commit of its write
    id, else the one closest in time), or `a commit of another writer` when the message names none."""
    found = _WINNER.search(message)
    if found is None:
        return "a commit of another writer"
    write = _WRITE_ID.search(message)
    commits = (
        DeltaTable.forPath(spark, path)
        .history()
        .select(
            "version",
            "operation",
            F.get_json_object("userMetadata", "$.run_id").alias("run_id"),
            F.get_json_object("userMetadata", "$.write_id").alias("write_id"),
            F.abs(F.unix_millis("timestamp") - F.lit(int(found[1]))).alias("apart"),
        )
    )
    if write is not None:
        commits = commits.where(F.col("write_id") == write[1])
    row = commits.orderBy("apart", F.desc("version")).first()
    if row is None:
        return "a commit of another writer"
    by = f" by run {row['run_id']}" if row["run_id"] else ""
    return f"version {row['version']} ({row['operation']}{by})"


def commit_conflict(spark: SparkSession, path: str, err: Exception, attempts: int, retries: int) -> CommitConflict:
    """The conflict `err` (after `attempts` attempts, `retries` allowed) as one line naming the winning commit."""
    reason = first_line(err).split("] ", 1)[-1].replace(" Please try the operation again.", "").rstrip(".")
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    return CommitConflict(
        f"write to {path} failed: {_other_commit(spark, path, str(err))}, committed by another writer while this "
        f"one ran, conflicts with it ({reason}); gave up after {tries} (sink.commit_retries={retries})"
    )
