"""The versioning jobs on a real Delta table: history, read, diff, restore, vacuum, optimize, tag."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.schema import SinkConfig
from engine.errors import ConfigError
from engine.pipeline.runner import execute
from engine.pipeline.versioning import VERSION, VersionResult, prepare
from engine.sinks.delta import write_delta
from engine.versioning.refs import VersionError, read_pinned
from tests.conftest import job_config


@pytest.fixture
def run_job(spark: SparkSession, tmp_path: Path) -> Callable[..., VersionResult]:
    """Run a versioning job on the test's table: run_job("diff", "version.as_of=0")."""

    def run(action: str, *overrides: str) -> VersionResult:
        table = f"version.table={tmp_path / 't'}"
        cfg = job_config(tmp_path, "job=version", f"version={action}", table, *overrides)
        return execute(VERSION, cfg, spark)["result"]

    return run


@pytest.fixture(scope="module")
def three_versions(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three versions: 0 (two rows), 1 (a third row), 2 (a new column, one value changed)."""
    path = tmp_path_factory.mktemp("versions") / "t"
    sink = SinkConfig(path=str(path), mode="append")
    meta = {"run_id": "run-0", "job": "test"}
    write_delta(spark.createDataFrame([("a", 1.0), ("b", 2.0)], "user string, x double"), sink, meta, {"v": 0})
    write_delta(
        spark.createDataFrame([("c", 3.0)], "user string, x double"), sink, meta | {"run_id": "run-1"}, {"v": 1}
    )
    merge = SinkConfig(path=str(path), mode="merge", merge_keys=["user"])
    changed = spark.createDataFrame([("a", 10.0, None)], "user string, x double, note string")
    write_delta(changed, merge, meta | {"run_id": "run-2"}, {"v": 2})
    return path


@pytest.fixture
def table(three_versions: Path, tmp_path: Path) -> Path:
    """A copy of the three versions for the test to change: files, log and modification times
    (Delta's commit times) as written."""
    return Path(shutil.copytree(three_versions, tmp_path / "t", copy_function=shutil.copy2))


def test_history_lists_versions_with_run_ids_and_rows(run_job, table: Path) -> None:
    result = run_job("history")
    got = [(r["version"], r["operation"], r["run_id"], r["rows_written"]) for r in result.data["history"]]
    assert got == [(2, "MERGE", "run-2", 1), (1, "WRITE", "run-1", 1), (0, "WRITE", "run-0", 2)]
    assert "run-1" in "\n".join(result.lines)


def test_read_as_of_version_tag_and_time(run_job, table: Path) -> None:
    assert run_job("read", "version.as_of=1").data["rows_shown"] == 3
    run_job("tag", "version.as_of=0", "version.tag=train-2026-11")
    assert run_job("read", "version.as_of=train-2026-11").data == {
        "version": 0,
        "columns": ["user", "x"],
        "rows_shown": 2,
    }
    committed = {r["version"]: r["timestamp"] for r in run_job("history").data["history"]}
    as_of_time = run_job("read", f"version.timestamp='{committed[1]}'")
    assert (as_of_time.data["columns"], as_of_time.data["rows_shown"]) == (["user", "x"], 3)
    with pytest.raises(VersionError, match="tags do not move"):
        run_job("tag", "version.as_of=1", "version.tag=train-2026-11")
    history = run_job("history").data
    assert history["tags"] == {"train-2026-11": 0}


def test_diff_reports_rows_schema_and_feature_statistics(run_job, table: Path) -> None:
    result = run_job("diff", "version.as_of=0", "version.other=2")
    assert result.data["rows"] == [2, 3]
    assert result.data["schema"]["added"] == ["note"]
    old, new = result.data["features"]["x"]
    assert (old["mean"], old["max"], new["mean"], new["max"]) == (1.5, 2.0, 5.0, 10.0)
    assert set(result.data["changed"]) == {"x", "note"}


def test_restore_makes_an_old_version_current(spark: SparkSession, run_job, table: Path) -> None:
    result = run_job("restore", "version.as_of=0")
    assert result.data == {"version": 3}
    frame = spark.read.format("delta").load(str(table))
    assert sorted(tuple(r) for r in frame.collect()) == [("a", 1.0), ("b", 2.0)]


def test_vacuum_is_guarded(run_job, table: Path) -> None:
    with pytest.raises(VersionError, match="below 168h"):
        run_job("vacuum", "version.retention_hours=0")
    run_job("tag", "version.as_of=0", "version.tag=keep")
    time.sleep(1.5)
    with pytest.raises(VersionError, match=r"would break tagged versions: keep \(version 0\)"):
        run_job("vacuum", "version.retention_hours=0", "version.allow_short_retention=true")
    assert run_job("vacuum").data == {"files_deleted": 0}


def test_vacuum_deletes_the_files_no_version_needs_and_counts_them(spark: SparkSession, run_job, table: Path) -> None:
    """The merge of version 2 rewrote a file; with no retention that file goes, and the count says so."""
    files = set(table.rglob("*.parquet"))
    current = spark.read.format("delta").load(str(table)).inputFiles()
    time.sleep(1.1)
    result = run_job("vacuum", "version.retention_hours=0", "version.allow_short_retention=true")
    deleted = result.data["files_deleted"]
    assert deleted > 0 and deleted == len(files - set(table.rglob("*.parquet")))
    assert sorted(spark.read.format("delta").load(str(table)).inputFiles()) == sorted(current)
    assert spark.read.format("delta").load(str(table)).count() == 3
    assert f"vacuum: {deleted} files older than 0h deleted" in result.lines


def test_optimize_compacts_files(spark: SparkSession, run_job, table: Path) -> None:
    before = len(spark.read.format("delta").load(str(table)).inputFiles())
    result = run_job("optimize", "version.zorder_by=[x]")
    after = len(spark.read.format("delta").load(str(table)).inputFiles())
    assert result.data["files_removed"] == before and after == result.data["files_added"] == 1


def test_bad_version_jobs_fail_in_one_line(run_job, table: Path, tmp_path: Path) -> None:
    with pytest.raises(VersionError, match="no tag 'nope'"):
        run_job("read", "version.as_of=nope")
    with pytest.raises(VersionError, match=r"version 9 is not in the log \(versions 0..2\)"):
        run_job("restore", "version.as_of=9")
    cfg = job_config(tmp_path, "job=version", f"version.table={tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="no Delta table at"):
        prepare(cfg)


def _files_scanned(frame) -> int:
    """The files the file scans of `frame`'s last executed plan opened (Spark's `numFiles` metric)."""

    def scans(node) -> list:
        children = node.children()
        nested = [n for i in range(children.size()) for n in scans(children.apply(i))]
        return [node, *nested] if node.metrics().contains("numFiles") else nested

    plan = frame._jdf.queryExecution().executedPlan()
    return sum(int(scan.metrics().apply("numFiles").value()) for scan in scans(plan))


def test_a_pinned_read_keeps_deleted_rows_out_and_skips_files(spark: SparkSession, tmp_path: Path) -> None:
    """The file list planned once still goes through Delta's relation: deletion vectors apply, and
    the condition skips files by their statistics while filtering rows."""
    path = str(tmp_path / "dv")
    frame = spark.range(0, 20).selectExpr("id", "CAST(id AS DOUBLE) AS value")
    frame.repartitionByRange(2, "id").sortWithinPartitions("id").write.format("delta").option(
        "delta.enableDeletionVectors", "true"
    ).save(path)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id % 5 = 0")
    version = 1
    whole = read_pinned(spark, path, version)
    assert sorted(r.id for r in whole.collect()) == [i for i in range(20) if i % 5]
    kept = read_pinned(spark, path, version, F.col("id") >= 12)
    assert sorted(r.id for r in kept.collect()) == [i for i in range(12, 20) if i % 5]
    # ids 0-9 and 10-19 are one file each (the version's two, as its log says): the condition leaves the
    # second only, in the frame's file list and in what Spark's scan opened
    assert spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first().numFiles == 2
    assert len(whole.inputFiles()) == 2 and len(kept.inputFiles()) == 1
    assert _files_scanned(whole) == 2 and _files_scanned(kept) == 1
    assert sorted(r.id for r in read_pinned(spark, path, 0, F.col("id") < 3).collect()) == [0, 1, 2]
