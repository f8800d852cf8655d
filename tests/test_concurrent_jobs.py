"""Two feature jobs writing one Delta table at the same time, run as a user runs them (the whole job).

Both jobs share the session's Spark, each in its own thread with its own MLflow run. Delta decides
who commits first; the sink's retry policy decides what is retried.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.pipeline.features import FEATURES
from engine.pipeline.runner import JobResult, execute
from engine.sinks.conflicts import CommitConflict
from engine.sinks.delta import history
from tests.conftest import REPO, job_config

EXAMPLE = REPO / "examples" / "transactions.parquet"
KEYS = ["customer_id", "txn_ts"]


def _job(tmp_path: Path, sink: Path, name: str, *overrides: str):
    """The transactions pipeline writing to `sink`, with the run's own outputs under tmp_path/name."""
    return job_config(
        tmp_path / name,
        "pipeline=transactions",
        f"pipeline.sources.0.path={EXAMPLE}",
        f"sink.path={sink}",
        "quality.drift.enabled=false",
        *overrides,
    )


def _at_once(spark: SparkSession, *configs) -> list[JobResult | BaseException]:
    """Each job in its own thread, started together; each one's result or error, in order."""
    outcomes: list[JobResult | BaseException | None] = [None] * len(configs)
    start = threading.Barrier(len(configs))

    def run(i: int) -> None:
        try:
            start.wait()
            outcomes[i] = execute(FEATURES, configs[i], spark)
        except BaseException as err:
            outcomes[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(configs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _table(spark: SparkSession, path: Path) -> DataFrame:
    return spark.read.format("delta").load(str(path))


def _by_date(df: DataFrame) -> dict[str, int]:
    return {str(r["feature_date"]): r["count"] for r in df.groupBy("feature_date").count().collect()}


def test_two_first_overwrites_of_a_new_table_both_commit_and_the_later_wins(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Both start on an empty path; the one that commits second writes to the table the first created (when
    their first commits race, Delta's protocol conflict is retried against that table)."""
    sink = tmp_path / "features"
    even, odd = (
        _job(tmp_path, sink, name, f"pipeline.sources.0.filter='customer_id % 2 = {parity}'")
        for name, parity in (("even", 0), ("odd", 1))
    )
    outcomes = _at_once(spark, even, odd)
    assert all(isinstance(o, JobResult) for o in outcomes), outcomes
    commits = history(spark, str(sink)).orderBy("version").collect()
    runs = [o.run_id for o in outcomes]
    assert [c["version"] for c in commits] == [0, 1] and sorted(c["run_id"] for c in commits) == sorted(runs)
    later = runs.index(commits[-1]["run_id"])
    table = _table(spark, sink)
    parities = {r[0] for r in table.select(F.col("customer_id") % 2).distinct().collect()}
    assert parities == {later} and table.count() == outcomes[later]["commit"].rows_written
    assert table.count() == table.select(*KEYS).distinct().count()


@pytest.fixture
def backfilled(spark: SparkSession, tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The whole year written once, and its rows per feature date."""
    sink = tmp_path / "features"
    execute(FEATURES, _job(tmp_path, sink, "backfill"), spark)
    return sink, _by_date(_table(spark, sink))


def test_two_ranged_jobs_on_different_days_at_once_keep_each_days_rows_once(
    spark: SparkSession, tmp_path: Path, backfilled: tuple[Path, dict[str, int]]
) -> None:
    sink, before = backfilled
    full = _table(spark, sink).collect()
    march, june = (
        _job(tmp_path, sink, name, f"features.start={start}", f"features.end={end}", "sink.commit_retries=5")
        for name, start, end in (("march", "2024-03-01", "2024-03-08"), ("june", "2024-06-01", "2024-06-08"))
    )
    outcomes = _at_once(spark, march, june)
    assert all(isinstance(o, JobResult) for o in outcomes), outcomes
    commits = history(spark, str(sink)).orderBy("version").collect()
    assert [c["version"] for c in commits] == [0, 1, 2]
    assert sorted(c["run_id"] for c in commits[1:]) == sorted(o.run_id for o in outcomes)
    table = _table(spark, sink)
    assert _by_date(table) == before  # each day's rows once: nothing lost, nothing doubled
    assert sorted(table.collect()) == sorted(full)  # the ranges recomputed to the very same values


def test_a_conflict_the_policy_does_not_retry_fails_in_one_line_naming_the_other_writers_version(
    spark: SparkSession, tmp_path: Path, backfilled: tuple[Path, dict[str, int]]
) -> None:
    """Two ranged jobs over the same week with `sink.commit_retries=0`: one commits; the other fails
    naming that commit, and the week's rows are not written twice. Jobs that happen not to overlap both
    commit (one after the other, which is no conflict); the pair then runs again, up to three times."""
    sink, before = backfilled
    for attempt in range(3):
        first, second = (
            _job(
                tmp_path,
                sink,
                f"{name}{attempt}",
                "features.start=2024-03-01",
                "features.end=2024-03-08",
                "sink.commit_retries=0",
            )
            for name in ("first", "second")
        )
        outcomes = _at_once(spark, first, second)
        assert _by_date(_table(spark, sink)) == before
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            break
    [winner] = [o for o in outcomes if isinstance(o, JobResult)]
    assert len(failed) == 1 and isinstance(failed[0], CommitConflict), outcomes
    message = str(failed[0])
    version = winner["commit"].version
    assert message.startswith(f"write to {sink} failed: version {version} (WRITE by run {winner.run_id}), committed")
    assert "gave up after 1 attempt (sink.commit_retries=0)" in message and "\n" not in message
    assert history(spark, str(sink)).first()["version"] == version  # the failed job committed nothing
