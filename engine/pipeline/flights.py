"""The flights job: read -> verify -> features -> write -> experiment, with a run record."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from pyspark.sql import DataFrame, SparkSession

from engine.config.schema import FeaturelakeConfig
from engine.errors import ValidationFailed
from engine.experiments.scoring import score_version
from engine.experiments.sweep import TrialResult
from engine.features.catalog import feature_schema
from engine.features.events import prepare_flights
from engine.features.table import PARTITION_COLUMN, feature_names, feature_table, replace_range
from engine.features.weather import weather_as_of
from engine.pipeline.stages import Stage, StageLog, pipeline_definition
from engine.quality.checks import ValidationReport, verify
from engine.sinks.delta import Commit, write_delta
from engine.sources.nycflights13 import SourceFiles, materialize, read_flights, read_weather
from engine.tracking.mlflow_runs import (
    commit_metadata,
    config_params,
    log_delta_input,
    tracked_run,
    write_json,
    write_run_record,
)

log = logging.getLogger("engine.pipeline")

STAGES = [
    Stage("read_flights"),
    Stage("read_weather"),
    Stage("verify", ("read_flights", "read_weather")),
    Stage("plan_features", ("verify",)),
    Stage("compute_write", ("plan_features",)),
    Stage("experiment", ("compute_write",)),
]
ID_COLUMNS = ["flight_id", "year", "month", "day", "carrier", "flight", "tailnum", "origin", "dest", "sched_dep_ts"]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    stages: StageLog
    rows_read: dict[str, int]
    report: ValidationReport
    commit: Commit | None
    trials: list[TrialResult]
    record_path: Path


def build_features(flights: DataFrame, weather: DataFrame, cfg: FeaturelakeConfig) -> DataFrame:
    """The feature table: one row per flight, keys, label, windowed and weather features."""
    table = (
        flights.transform(prepare_flights, cfg.job)
        .transform(feature_table, cfg.features)
        .transform(weather_as_of, weather, list(cfg.features.weather_columns))
    )
    weather_columns = [f"weather_{c}" for c in cfg.features.weather_columns]
    features = [*feature_names(cfg.features), *weather_columns]
    return table.select(*ID_COLUMNS, "label", *features, PARTITION_COLUMN)


def _read_and_verify(
    spark: SparkSession, cfg: FeaturelakeConfig, files: SourceFiles, stages: StageLog
) -> tuple[DataFrame, DataFrame, dict[str, int], ValidationReport]:
    """Read both sources (cached, one scan each) and run every check on them."""
    flights, n_flights = stages.run(
        "read_flights",
        lambda: materialize(read_flights(spark, files.flights, list(cfg.source.months)), "flights"),
        rows=lambda r: r[1],
    )
    weather, n_weather = stages.run(
        "read_weather", lambda: materialize(read_weather(spark, files.weather), "weather"), rows=lambda r: r[1]
    )
    report = stages.run(
        "verify",
        lambda: verify(flights, "flights", list(cfg.checks.flights)).merge(
            verify(weather, "weather", list(cfg.checks.weather))
        ),
    )
    mlflow.log_metrics(
        {
            "rows_read_flights": n_flights,
            "rows_read_weather": n_weather,
            "checks_passed": len(report.checks) - len(report.failed),
            "checks_failed": len(report.failed),
        }
    )
    return flights, weather, {"flights": n_flights, "weather": n_weather}, report


def _write(table: DataFrame, cfg: FeaturelakeConfig, files: SourceFiles, run_id: str, stages: StageLog) -> Commit:
    """Compute the features while writing them as one Delta commit; log the table version to MLflow.

    The write's identity is the job, its config, its input files and its range, so a repeat of the
    same run is recognised by Delta and adds nothing.
    """
    commit_info = commit_metadata(cfg, run_id)
    rewrite = replace_range(cfg.features)
    identity = {"job": cfg.job.name, "config_hash": commit_info["config_hash"], "inputs": files.fingerprint()}
    commit = stages.run(
        "compute_write",
        lambda: write_delta(table, cfg.sink, commit_info, {**identity, "range": rewrite}, replace_where=rewrite),
        rows=lambda c: c.rows_written,
    )
    path = str(Path(commit.path).resolve())
    mlflow.log_params({"delta_path": path, "delta_version": commit.version})
    mlflow.log_metrics({"rows_written": commit.rows_written, "delta_version": commit.version})
    log_delta_input(path, commit.version, f"{cfg.job.name}_features", "features")
    return commit


def run_flights(spark: SparkSession, cfg: FeaturelakeConfig, files: SourceFiles) -> RunResult:
    """Run the flights job end to end inside one MLflow run; raise ValidationFailed before any write."""
    stages = StageLog()
    with tracked_run(cfg.tracking, run_name=cfg.job.name) as run:
        run_id = run.info.run_id
        mlflow.log_params(config_params(cfg))
        record: dict = {"job": cfg.job.name, "run_id": run_id, "pipeline_definition": pipeline_definition(STAGES)}
        try:
            flights, weather, rows_read, report = _read_and_verify(spark, cfg, files, stages)
            record["validation_report"] = report.to_dict()
            if not report.passed:
                mlflow.set_tag("status", "validation_failed")
                blocking = [c.name for c in report.failed if c.severity == "error"]
                raise ValidationFailed(
                    f"{len(blocking)} blocking check(s) failed: {', '.join(blocking)}; nothing was written"
                )
            table = stages.run("plan_features", lambda: build_features(flights, weather, cfg))
            record["feature_schema"] = feature_schema(table, cfg.features, ["flight_id"], "label")
            mlflow.log_dict(record["feature_schema"], "feature_schema.json")
            write_json(Path(cfg.job.run_record_dir) / f"{cfg.job.name}-feature_schema.json", record["feature_schema"])
            commit = _write(table, cfg, files, run_id, stages)
            record["delta"] = asdict(commit)
            trials: list[TrialResult] = []
            if cfg.experiment.enabled:
                features = [f["name"] for f in record["feature_schema"]["features"]]
                trials = stages.run(
                    "experiment",
                    lambda: score_version(spark, cfg.experiment, commit, features, "label", "sched_dep_ts"),
                    rows=len,
                )
                record["experiment"] = [asdict(t) for t in trials]
            mlflow.log_metrics({f"stage_seconds_{s.name}": s.seconds for s in stages.runs})
        except BaseException:
            record["stages"] = stages.to_list()
            try:
                write_run_record(cfg.job, run_id, record)
            except Exception:  # the run's own error is the one to report
                log.warning("could not write the run record of failed run %s", run_id, exc_info=True)
            raise
        finally:
            spark.catalog.clearCache()
        record["stages"] = stages.to_list()
        record_path = write_run_record(cfg.job, run_id, record)
    return RunResult(run_id, stages, rows_read, report, commit, trials, record_path)
