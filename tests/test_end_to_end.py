"""The flights job end to end on one week of the real data, with real Delta, MLflow and Ray.

One chain of runs on one output folder: the first run (a session fixture) -> the training set on its
version 0 -> a rerun (version 1) -> a stale run that serves the last version; and the same job on a
standalone Spark cluster, through the wheel and the spark-submit line `scripts/package` prints,
writing what the first run wrote. Counts come from the week as read by pandas."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.request import urlopen

import pandas as pd
import pyspark
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.embedded import package_data_folder
from engine.config.online import SqliteStoreConfig
from engine.errors import SourceError, ValidationFailed
from engine.features.table import feature_names
from engine.observability.metrics import read_textfile
from engine.online.lookup import OnlineClient
from engine.online.sqlite_store import SqliteStore
from engine.pipeline.features import FEATURES
from engine.pipeline.materialize import MATERIALIZE
from engine.pipeline.runner import PREPARED, execute
from engine.pipeline.training_set import TRAINING_SET
from tests.conftest import JANUARY, SAMPLE, SMALL_MODELS, job_config, json_log, log_events
from tests.test_online import assert_online_equals_offline, lookup, offline

SPARK_HOME = Path(pyspark.__file__).parent
VENV_BIN = Path(sys.executable).parent
ONLINE_AS_OF = datetime(2013, 1, 7, 18, tzinfo=UTC)  # the week's last evening


def test_writes_the_feature_table(spark: SparkSession, first_run, week: pd.DataFrame) -> None:
    cfg, result = first_run
    table = spark.read.format("delta").option("versionAsOf", 0).load(cfg.sink.path)
    assert result["commit"].version == 0
    assert result["sources"]["flights"].rows == len(week)
    assert result["commit"].rows_written == table.count() == len(week)
    features = [f["name"] for f in json.loads(result.record_path.read_text())["feature_schema"]["features"]]
    weather = cfg.pipeline.joins[0].output_names()
    assert features == [*feature_names(cfg.features), *weather]
    assert len(features) == 4 * 4 * 3 + 2 + 2 + 4 + 2 + 4
    assert table.columns[:11] == [
        "flight_id",
        "year",
        "month",
        "day",
        "carrier",
        "flight",
        "tailnum",
        "origin",
        "dest",
        "sched_dep_ts",
        "label",
    ]
    assert set(features) <= set(table.columns)
    assert dict(table.dtypes)["carrier_dep_delay_count_7d"] == "bigint"
    assert dict(table.dtypes)["route_dep_delay_mean_24h"] == "double"


def test_validation_report_and_run_record(first_run) -> None:
    _, result = first_run
    record = json.loads(Path(result.record_path).read_text())
    assert record["validation_report"]["passed"] is True
    assert {c["name"] for c in record["validation_report"]["checks"]} >= {"flight_key_unique", "origin_allowed"}
    assert [s["stage"] for s in record["pipeline_definition"]] == [s.name for s in FEATURES.stages]
    verify = {"stage": "verify", "reads": ["prepared", "sources"], "writes": "validated"}
    assert record["pipeline_definition"][2] == verify
    assert record["status"] == "succeeded" and [s["name"] for s in record["stages"]] == [
        s.name for s in result.stages.runs
    ]
    schema = record["feature_schema"]["features"][0]
    assert set(schema) == {"name", "type", "description", "entity_keys", "ttl_seconds"}


class _CheckRows(HTMLParser):
    """The (check, status) of every row of the report's checks table."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr" and "data-check" in values:
            self.rows[values["data-check"]] = values["data-status"]


def test_reports_list_every_configured_check(first_run) -> None:
    cfg, result = first_run
    parser = _CheckRows()
    published = result["published"]
    parser.feed(published.html_path.read_text())
    configured = [c.name for c in [*cfg.pipeline.sources[0].checks, *cfg.pipeline.sources[1].checks]]
    assert sorted(parser.rows) == sorted(configured)
    assert set(parser.rows.values()) <= {"passed", "warning"}
    report = json.loads(published.json_path.read_text())
    assert report["passed"] is True and report["outcome"] == "continue"
    by_name = {c["name"]: c for c in report["checks"]}
    assert {parser.rows[n] for n in by_name if by_name[n]["status"] == "passed"} == {"passed"}
    sampled = by_name["dep_delay_mostly_complete"]
    assert sampled["decided_by"] == "sample" and sampled["sample_size"] < report["rows"]["flights"]
    assert sampled["interval"][0] <= sampled["metric"] <= sampled["interval"][1]
    assert by_name["keys_complete"]["decided_by"] == "full"  # a sample can never prove 100%
    artifacts = {a.path for a in MlflowClient(cfg.tracking.uri).list_artifacts(result.run_id, "validation")}
    assert artifacts == {
        f"validation/{published.json_path.name}",
        f"validation/{published.html_path.name}",
    }


def test_mlflow_run_and_experiment(first_run, week: pd.DataFrame) -> None:
    cfg, result = first_run
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(result.run_id)
    assert run.data.params["delta_version"] == "0"
    assert run.data.metrics["rows_written"] == len(week)
    assert run.data.metrics["checks_failed"] == 0
    (dataset_input,) = run.inputs.dataset_inputs
    source = json.loads(dataset_input.dataset.source)
    assert (source["path"], source["delta_table_version"]) == (str(Path(cfg.sink.path).resolve()), "0")
    (sweep_run,) = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    sweep = result["sweep"]
    assert sweep_run.info.run_id == sweep.run_id and sweep_run.data.tags["best_model"] == sweep.model_uri
    trials = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep.run_id}'")
    assert len(trials) == 6 and {c.data.params["variant"] for c in trials} == {v.name for v in cfg.experiment.variants}
    assert not result["sweep"].failed, [r.error for r in result["sweep"].failed]
    assert all(0.0 < r.score < 1.0 for r in sweep.results)
    assert sweep.results[0].score > 0.6  # the best trial learns; a week is too little for every variant to


def test_a_variant_needing_a_longer_window_is_computed_once(spark: SparkSession, first_run, week: pd.DataFrame) -> None:
    """long_windows asks for 14-day windows the table lacks: one Delta commit serves both of its trials,
    and the windows it shares with the feature table agree with it row by row."""
    cfg, result = first_run
    path = str((Path(cfg.experiment.variants_path) / "long_windows").resolve())
    assert spark.sql(f"DESCRIBE HISTORY delta.`{path}`").count() == 1
    used = {(r.trial.variant, r.trial.name) for r in result["sweep"].results}
    board = result["sweep"].leaderboard.set_index("trial")
    for variant, trial in used:
        expected = (path, 0) if variant == "long_windows" else (str(Path(cfg.sink.path).resolve()), 0)
        assert tuple(board.loc[trial, ["delta_path", "delta_version"]]) == expected
    assert sum(variant == "long_windows" for variant, _ in used) == 2
    variant = spark.read.format("delta").load(path)
    features = spark.read.format("delta").load(cfg.sink.path)
    assert variant.count() == len(week) and "carrier_dep_delay_max_24h" not in variant.columns
    joined = variant.alias("v").join(features.alias("f"), "flight_id")
    same = [
        F.col(f"v.{c}").eqNullSafe(F.col(f"f.{c}")) for c in ("carrier_dep_delay_mean_24h", "route_dep_delay_count_7d")
    ]
    wider = F.col("v.origin_dep_delay_count_14d") >= F.col("f.origin_dep_delay_count_7d")
    assert joined.where(~(same[0] & same[1] & wider)).count() == 0


def test_the_run_is_observable(first_run, week: pd.DataFrame) -> None:
    """The metrics file holds every metric with the values the run's own record implies; every log line
    is JSON with the run's pipeline id; each stage is a span under the run's span."""
    cfg, result = first_run
    metrics = read_textfile(Path(cfg.observability.metrics.textfile_dir) / "featurelake_flights.prom")
    ((info, _),) = metrics["pipeline_run_info"]
    pipeline_id = info["pipeline_id"]
    buckets = {s["le"]: v for s, v in metrics["pipeline_duration_seconds_bucket"]}
    assert set(buckets) == {"60.0", "300.0", "900.0", "3600.0", "+Inf"} and buckets["+Inf"] == 1
    assert metrics["pipeline_duration_seconds_count"] == [({"pipeline": "flights", "status": "succeeded"}, 1.0)]
    assert metrics["features_computed_total"] == [
        ({"pipeline": "flights", "feature_table": "features"}, float(result["commit"].rows_written))
    ]
    checks = json.loads(result.record_path.read_text())["validation_report"]["checks"]
    for source in ("flights", "weather"):
        evaluated = [c for c in checks if c["dataset"] == source and c["status"] != "skipped"]
        score = sum(c["status"] != "failed" for c in evaluated) / len(evaluated)
        assert dict((s["data_source"], v) for s, v in metrics["data_quality_score"])[source] == pytest.approx(score)
        for severity in ("error", "warning"):
            failed = sum(c["status"] == "failed" and c["severity"] == severity for c in evaluated)
            assert ({"pipeline": "flights", "data_source": source, "severity": severity}, failed) in [
                (s, v) for s, v in metrics["validation_failures_total"]
            ]
    newest = pd.to_datetime(week["time_hour"], utc=True).max()
    lag = (pd.Timestamp(cfg.quality.as_of, tz="UTC") - newest).total_seconds()
    assert metrics["data_freshness_lag_seconds"] == [({"pipeline": "flights", "data_source": "flights"}, lag)]

    lines = [json.loads(line) for line in (Path(cfg.job.log_dir) / "featurelake.log").read_text().splitlines()]
    assert lines and all({"pipeline_id", "data_source", "record_count", "event"} <= set(line) for line in lines)
    assert {line["pipeline_id"] for line in lines} == {pipeline_id}
    events = {(e["event"], e["data_source"]): e for e in lines if e["event"]}
    assert events["feature_computed", "flights"]["record_count"] == result["commit"].rows_written
    assert events["materialization_done", cfg.sink.path]["record_count"] == result["commit"].rows_written
    assert events["freshness_lag", "flights"]["lag_seconds"] == lag
    assert events["quality_scored", "weather"]["record_count"] == result["sources"]["weather"].rows

    client = MlflowClient(cfg.tracking.uri)
    logged = client.get_run(result.run_id).data.metrics
    assert logged["features_computed_total.features"] == result["commit"].rows_written
    assert logged["pipeline_duration_seconds_count"] == 1
    assert client.get_run(result.run_id).data.tags["pipeline_id"] == pipeline_id
    assert [a.path for a in client.list_artifacts(result.run_id, "metrics")] == ["metrics/featurelake_flights.prom"]

    spans = [json.loads(line) for line in (Path(cfg.job.log_dir) / "traces.jsonl").read_text().splitlines()]
    (root,) = [s for s in spans if s["parent_id"] is None]
    assert root["name"] == "pipeline flights"
    assert {s["context"]["trace_id"] for s in spans} == {root["context"]["trace_id"]}
    stage_spans = {s["name"]: s for s in spans if s["parent_id"] == root["context"]["span_id"]}
    assert set(stage_spans) == {f"stage {s.name}" for s in result.stages.runs}
    assert stage_spans["stage compute_write"]["attributes"]["rows"] == result["commit"].rows_written


def test_training_set_from_the_pinned_version(spark: SparkSession, first_run, week: pd.DataFrame) -> None:
    """job=training_set on version 0: every flight keeps its own features, lineage goes to MLflow,
    the experiment reads the training set's version, and a rebuild after the table moved on is identical."""
    cfg, _ = first_run
    root = Path(cfg.sink.path).parents[1]
    ts_cfg = job_config(root, "job=training_set", SMALL_MODELS, *_pinned_to_version_0(cfg, root))
    result = execute(TRAINING_SET, ts_cfg, spark)
    commit, features = result["commit"], result["planned"].features
    assert [(p.role, p.version) for p in result["inputs"]] == [("spine", 0), ("features", 0)]
    assert commit.rows_written == len(week)
    training = spark.read.format("delta").load(commit.path)
    table = spark.read.format("delta").option("versionAsOf", 0).load(cfg.sink.path)
    columns = ["flight_id", "label", *features]
    assert training.select(columns).exceptAll(table.select(columns)).count() == 0
    assert "label" not in features and "carrier_dep_delay_count_7d" in features
    run = MlflowClient(ts_cfg.tracking.uri).get_run(result.run_id)
    contexts = sorted(i.tags[0].value for i in run.inputs.dataset_inputs)
    assert contexts == ["features", "spine"]
    sweep = result["sweep"]
    assert {r.trial.variant for r in sweep.results} == {"carrier_origin_weather", "all_entities_weather"}
    assert not sweep.failed and all(0.5 < r.score < 1.0 for r in sweep.results)
    children = MlflowClient(ts_cfg.tracking.uri).search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep.run_id}'"
    )
    assert {(c.data.params["delta_path"], c.data.params["delta_version"]) for c in children} == {(commit.path, "0")}
    assert {d.feature for d in result["skew"]} >= {"carrier_dep_delay_count_7d", "weather_temp"}
    assert not any(d.drifted for d in result["skew"])  # the serving table is the version it was built from
    record = json.loads(result.record_path.read_text())
    assert record["inputs"] == [asdict(p) for p in result["inputs"]] and record["features"] == features
    no_checks = ["experiment=none", "quality.drift.enabled=false"]  # the rebuild is only to be skipped
    rebuild = job_config(root, "job=training_set", *no_checks, *_pinned_to_version_0(cfg, root))
    again = execute(TRAINING_SET, rebuild, spark)
    assert again["commit"].skipped and again["commit"].version == 0


def test_materialized_groups_equal_the_training_set_read_at_the_as_of_time(
    spark: SparkSession, first_run, tmp_path: Path
) -> None:
    """job=materialize on version 0, as of the week's last evening: every carrier's and route's online
    values equal what a training set of that version reads for (entity, as-of time); a rerun writes nothing."""
    cfg, _ = first_run
    root = Path(cfg.sink.path).parents[1]
    overrides = [
        "job=materialize",
        "materialize.version=0",
        f"materialize.as_of={ONLINE_AS_OF.isoformat()}",
        "materialize.groups=[carrier,route]",
        f"online.sqlite.path={tmp_path / 'online.db'}",
    ]
    result = execute(MATERIALIZE, job_config(root, *overrides), spark)
    plan, table = result[PREPARED], spark.read.format("delta").option("versionAsOf", 0).load(cfg.sink.path)
    client = OnlineClient(SqliteStore(SqliteStoreConfig(str(tmp_path / "online.db"))))
    for group, written in zip(plan.groups, result["written"], strict=True):
        seen = table.where(F.col(plan.timestamp) <= ONLINE_AS_OF)
        keys = sorted(tuple(r) for r in seen.select(*group.keys).distinct().dropna().collect())
        assert written.rows_written == len(keys) > 0 and not written.incremental
        expected = offline(spark, tmp_path, Path(cfg.sink.path), 0, group, keys, plan.timestamp, ONLINE_AS_OF)
        answer = lookup(client, group, keys, at=ONLINE_AS_OF)
        assert_online_equals_offline(answer, expected, group, keys)
        assert answer.origins[group.name].version == 0
    again = execute(MATERIALIZE, job_config(root, *overrides), spark)
    assert [(w.rows_written, w.incremental) for w in again["written"]] == [(0, True), (0, True)]


def _pinned_to_version_0(cfg, root: Path) -> list[str]:
    return [
        "training_set.spine.version=0",
        f"training_set.spine.path={cfg.sink.path}",
        f"training_set.output.path={root / 'delta' / 'training'}",
    ]


@pytest.fixture(scope="module")
def rerun(spark: SparkSession, first_run, week_source: list[str]):
    """The chain's second link: the same week again, after the training set read version 0."""
    cfg, _ = first_run
    again = job_config(Path(cfg.sink.path).parents[1], *week_source, "experiment=none", SAMPLE)
    return again, execute(FEATURES, again, spark)


def test_rerun_adds_version_one_and_time_travel(spark: SparkSession, first_run, rerun, week: pd.DataFrame) -> None:
    cfg, _ = first_run
    _, result = rerun
    assert result["commit"].version == 1
    v0 = spark.read.format("delta").option("versionAsOf", 0).load(cfg.sink.path)
    v1 = spark.read.format("delta").option("versionAsOf", 1).load(cfg.sink.path)
    assert v0.count() == v1.count() == len(week)
    assert v0.exceptAll(v1).count() == 0
    assert result.get("sweep") is None and "variant_features" not in {s.name for s in result.stages.runs}
    drift = result["published"].report.drift
    compared = [f for f in result["planned"].features if f not in cfg.quality.drift.exclude]
    assert len(compared) > 10 and sorted(d.feature for d in drift) == sorted(compared)  # every feature compared
    assert all((d.psi is not None and d.js is not None) or d.linf is not None for d in drift)  # each one measured
    assert not any(d.drifted for d in drift)  # the same data drifts nowhere


def test_stale_source_serves_the_previous_version(
    spark: SparkSession, first_run, rerun, week_source: list[str]
) -> None:
    """The chain's third link: an as-of time long after the data makes the source stale."""
    cfg, _ = first_run
    root = Path(cfg.sink.path).parents[1]
    stale = job_config(root, *week_source, "experiment=none", "quality.as_of=2016-01-01T00:00:00")
    table = Path(cfg.sink.path).resolve()
    before = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count()
    result = execute(FEATURES, stale, spark)
    report, commit = result["published"].report, result["commit"]
    assert report.outcome == "use_cached_features"
    assert [c.name for c in report.failed] == ["flights_fresh"]
    assert commit.skipped and commit.rows_written == 0
    assert spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count() == before
    assert commit.version == before - 1
    assert "compute_write" not in {s.name for s in result.stages.runs}
    run = MlflowClient(stale.tracking.uri).get_run(result.run_id)
    assert run.data.metrics["served_cached_features"] == 1
    assert json.loads(result["published"].json_path.read_text())["outcome"] == "use_cached_features"


def test_a_header_unlike_the_declared_schema_fails_before_any_read(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "flights.csv").write_text("year,mnth,day\n2013,1,1\n")
    (source / "weather.csv").write_text("origin,time_hour\n")
    cfg = job_config(
        tmp_path,
        f"pipeline.params.data={source}",
        f"pipeline.sources.0.path={source / 'flights.csv'}",
        "experiment=none",
    )
    message = r"source flights: flights.csv: the header has 3 columns, the schema 19 \(missing: month, dep_time, "
    with pytest.raises(SourceError, match=message + r".* and 12 more; not in the schema: mnth\)$"):
        execute(FEATURES, cfg, spark)
    assert not Path(cfg.sink.path).exists()
    record = json.loads(next((tmp_path / "runs").glob("flights-*.json")).read_text())
    assert record["status"] == "failed"
    assert record["error"].startswith("SourceError: source flights: flights.csv: the header")
    assert [s["name"] for s in record["stages"]] == []


def test_blocking_check_failure_writes_nothing(
    spark: SparkSession, tmp_path: Path, week: pd.DataFrame, week_source: list[str]
) -> None:
    cfg = job_config(
        tmp_path,
        *week_source,
        "pipeline.sources.0.checks.3.threshold=1.0",
        "pipeline.sources.0.checks.3.action=halt_pipeline",
        "experiment=none",
    )
    with (
        json_log(tmp_path / "logs" / "featurelake.log") as log,
        pytest.raises(ValidationFailed, match="dep_delay_mostly_complete"),
    ):
        execute(FEATURES, cfg, spark)
    assert not Path(cfg.sink.path).exists()
    failed = [e for e in log_events(log) if e["event"] == "validation_failed"]
    assert [(e["check"], e["data_source"], e["severity"], e["record_count"]) for e in failed] == [
        ("dep_delay_mostly_complete", "flights", "error", len(week))
    ]
    metrics = read_textfile(tmp_path / "metrics" / "featurelake_flights.prom")
    by_labels = {(s["data_source"], s["severity"]): v for s, v in metrics["validation_failures_total"]}
    assert by_labels == {
        ("flights", "error"): 1,
        ("flights", "warning"): 0,
        ("weather", "error"): 0,
        ("weather", "warning"): 0,
    }
    assert [s["status"] for s, _ in metrics["pipeline_duration_seconds_count"]] == ["failed"]
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert record["validation_report"]["passed"] is False
    assert record["validation_report"]["outcome"] == "halt"
    assert record["status"] == "failed" and record["error"].startswith("ValidationFailed: 1 blocking check(s)")
    # the report is published, then the halt gate stops the run: nothing after it runs
    assert [s["name"] for s in record["stages"]] == ["check", "read", "verify", "gate", "publish_halted"]
    run = MlflowClient(cfg.tracking.uri).get_run(record["run_id"])
    assert run.data.tags["status"] == "validation_failed" and run.data.metrics["checks_failed"] == 1
    assert len(list((tmp_path / "reports").glob("*.html"))) == 1
    assert not (tmp_path / "delta" / "quarantine").exists()


def _flights_folder(folder: Path, lines: list[str]) -> Path:
    """A source folder with the given flights lines (the file's own header) and the shipped weather."""
    folder.mkdir()
    with zipfile.ZipFile(package_data_folder() / "flights.csv.zip") as archive:
        header = archive.read(archive.namelist()[0]).decode().split("\n", 1)[0]
    with zipfile.ZipFile(folder / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights.csv", "\n".join([header, *lines]) + "\n")
    shutil.copy(package_data_folder() / "weather.csv", folder / "weather.csv")
    return folder


@pytest.fixture(scope="module")
def first_day(week_source: list[str]) -> list[str]:
    """The first 400 flights of the week, as shipped."""
    folder = Path(week_source[0].removeprefix("pipeline.params.data="))
    with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
        return archive.read(archive.namelist()[0]).decode().splitlines()[1:401]


def _malformed(line: str) -> str:
    """The line with its dep_time (an integer) replaced by text: the whole line is malformed."""
    fields = line.split(",")
    fields[3] = "soon"
    return ",".join(fields)


def _in_2031(line: str) -> str:
    """The same flight, dated 2031 (year and time_hour): after the run's as-of time."""
    fields = line.split(",")
    fields[0], fields[-1] = "2031", fields[-1].replace("2013-", "2031-")
    return ",".join(fields)


def test_a_malformed_line_and_a_future_flight_are_quarantined_and_the_run_goes_on(
    spark: SparkSession, tmp_path: Path, first_day: list[str]
) -> None:
    bad, future = _malformed(first_day[10]), _in_2031(first_day[20])
    february = _malformed(first_day[30].replace("2013,1,1,", "2013,2,1,", 1))  # not in the slice read
    lines = [bad, future, february, *first_day[:10], *first_day[11:20], *first_day[21:30], *first_day[31:]]
    source = _flights_folder(tmp_path / "source", lines)
    cfg = job_config(tmp_path, f"pipeline.params.data={source}", JANUARY, "experiment=none")
    result = execute(FEATURES, cfg, spark)
    report = result["published"].report
    by_name = {c.name: c for c in report.checks}
    assert report.malformed["flights"] == 1 and by_name["flights_malformed_lines"].status == "passed"
    assert by_name["flights_not_in_future"].status == "failed" and by_name["flights_not_in_future"].quarantined == 1
    quarantine = spark.read.format("delta").load(cfg.quality.quarantine_path).toPandas()
    flights = quarantine[quarantine["dataset"] == "flights"]
    assert bad in set(flights["record"])  # the raw line, as it was
    assert [list(f) for f in flights.loc[flights["record"] == bad, "failed_checks"]] == [["malformed_record"]]
    records = zip(flights["record"], flights["failed_checks"], strict=True)
    (moved,) = [json.loads(r) for r, f in records if "flights_not_in_future" in f]
    assert moved["year"] == 2031
    written = spark.read.format("delta").load(cfg.sink.path)
    assert february not in set(flights["record"])
    assert result["commit"].rows_written == written.count() == len(lines) - 1 - report.quarantined["flights"]
    assert written.where("year = 2031").count() == 0


def test_too_many_malformed_lines_halt_before_any_write(
    spark: SparkSession, tmp_path: Path, first_day: list[str]
) -> None:
    lines = [_malformed(line) if i % 20 == 0 else line for i, line in enumerate(first_day)]  # 5% > 1%
    source = _flights_folder(tmp_path / "source", lines)
    cfg = job_config(tmp_path, f"pipeline.params.data={source}", "experiment=none")
    with pytest.raises(ValidationFailed, match=r"1 blocking check\(s\) failed: flights_malformed_lines; nothing"):
        execute(FEATURES, cfg, spark)
    assert not Path(cfg.sink.path).exists() and not Path(cfg.quality.quarantine_path).exists()
    report = json.loads(next((tmp_path / "reports").glob("*.json")).read_text())
    (check,) = [c for c in report["checks"] if c["name"] == "flights_malformed_lines"]
    assert check["metric"] == pytest.approx(20 / 400) and check["detail"].startswith("20 of 400 lines malformed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """A Spark standalone master and two workers (1 core, 1.5 GiB each) on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("cluster")
    port, ui = _free_port(), _free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    master = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
    master += ["--webui-port", str(ui)]
    worker = ["org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1"]
    worker += ["--cores", "1", "--memory", "1536m"]
    daemons = [master] + [
        [*worker, "--webui-port", str(_free_port()), "--work-dir", str(tmp / f"w{i}")] for i in range(2)
    ]
    processes = []
    try:
        for i, args in enumerate(daemons):
            log = (tmp / f"daemon{i}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            if i == 0:
                _wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, "master up")
        status = f"http://127.0.0.1:{ui}/json/"
        _wait(lambda: json.load(urlopen(status, timeout=2))["aliveworkers"] == 2, "two workers registered")
        yield f"spark://127.0.0.1:{port}", tmp, ui
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def test_the_default_job_on_a_standalone_cluster_writes_what_local_mode_writes(
    spark: SparkSession,
    first_run,
    week: pd.DataFrame,
    built: tuple[Path, str],
    standalone_cluster: tuple[str, Path, int],
    tmp_path: Path,
) -> None:
    """The printed spark-submit line, run: the driver process exits once the job is done (Deequ's callback
    server shut before Spark stops), both workers run executors, and the table equals local mode's."""
    local_cfg, _ = first_run
    master, cluster_dir, ui = standalone_cluster
    _, printed = built
    command = shlex.split(printed)
    assert command[0] == "spark-submit" and "--py-files" in command and "--jars" in command
    command[0] = str(VENV_BIN / "spark-submit")
    command[command.index("MASTER")] = master
    command += ["experiment=none", "spark.shuffle_partitions=4", "spark.app_name=featurelake-cluster-test"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env["SPARK_HOME"] = str(SPARK_HOME)
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "featurelake run summary" in run.stdout and f"{len(week):,} rows written" in run.stdout
    assert not re.search(r"\bWARN\b|\bINFO\b", run.stderr), run.stderr[-2000:]  # JVM logging went to the file
    assert (tmp_path / "output" / "logs" / "spark.log").exists()

    apps = json.load(urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5))["completedapps"]
    assert [a["name"] for a in apps] == ["featurelake-cluster-test"]
    executors = [p for worker in ("w0", "w1") for p in (cluster_dir / worker).glob("app-*/*")]
    assert {p.parts[-3] for p in executors} == {"w0", "w1"}  # both workers ran an executor

    on_cluster = spark.read.format("delta").load(str(tmp_path / "output" / "delta" / "flights_features"))
    local = spark.read.format("delta").option("versionAsOf", 0).load(local_cfg.sink.path)
    assert on_cluster.schema == local.schema
    ours = on_cluster.toPandas().sort_values("flight_id", ignore_index=True)
    theirs = local.toPandas().sort_values("flight_id", ignore_index=True)
    assert len(ours) == len(theirs) == len(week)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-12)
