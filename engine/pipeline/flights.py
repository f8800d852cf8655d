"""The flights job: read -> verify -> features -> write -> experiment, with a run record."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from pyspark.sql import DataFrame, SparkSession

from engine.config.schema import FeaturelakeConfig
from engine.errors import ValidationFailed
from engine.experiments.sweep import TrialResult, leaderboard, plan_trials, run_trials
from engine.features.catalog import feature_schema
from engine.features.events import prepare_flights
from engine.features.table import PARTITION_COLUMN, feature_names, feature_table, replace_range
from engine.features.weather import weather_as_of
from engine.pipeline.stages import Stage, StageLog, pipeline_definition
from engine.quality.checks import ValidationReport, verify
from engine.sinks.delta import Commit, write_delta
from engine.sources.nycflights13 import SourceFiles, materialize, read_flights, read_weather
from engine.tracking.mlflow_runs import config_params, tracked_run

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


def config_hash(cfg: FeaturelakeConfig) -> str:
    return hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]


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


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str))


def _write_record(cfg: FeaturelakeConfig, run_id: str, record: dict) -> Path:
    path = Path(cfg.job.run_record_dir) / f"{cfg.job.name}-{run_id}.json"
    _write_json(path, record)
    mlflow.log_artifact(str(path), artifact_path="run_record")
    return path


def _experiment(
    spark: SparkSession, cfg: FeaturelakeConfig, commit: Commit, feature_columns: list[str]
) -> list[TrialResult]:
    """Score the configured feature sets on Ray over the pinned Delta version; log each as a nested run."""
    uris = spark.read.format("delta").option("versionAsOf", commit.version).load(commit.path).inputFiles()
    files = [url2pathname(urlparse(u).path) if u.startswith("file:") else u for u in uris]
    trials = plan_trials(list(cfg.experiment.variants), feature_columns)
    results = leaderboard(run_trials(files, trials, "label", "sched_dep_ts", cfg.experiment))
    for result in results:
        with mlflow.start_run(run_name=result.variant, nested=True):
            mlflow.log_params(
                {
                    "variant": result.variant,
                    "model": cfg.experiment.model,
                    "n_features": len(result.features),
                    "delta_path": commit.path,
                    "delta_version": commit.version,
                }
            )
            mlflow.log_text("\n".join(result.features), "features.txt")
            if result.auc is not None:
                mlflow.log_metrics(
                    {"auc": result.auc, "train_rows": result.train_rows, "valid_rows": result.valid_rows}
                )
            else:
                mlflow.set_tag("error", result.error or "")
    table = "| rank | variant | auc | features | error |\n|---|---|---|---|---|\n" + "".join(
        f"| {i} | {r.variant} | {'' if r.auc is None else f'{r.auc:.4f}'} | {len(r.features)} | {r.error or ''} |\n"
        for i, r in enumerate(results, 1)
    )
    mlflow.log_text(table, "leaderboard.md")
    return results


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


def _write(table: DataFrame, cfg: FeaturelakeConfig, run_id: str, stages: StageLog) -> Commit:
    """Compute the features while writing them as one Delta commit; log the table version to MLflow."""
    commit_info = {
        "run_id": run_id,
        "job": cfg.job.name,
        "config_hash": config_hash(cfg),
        "code_version": metadata.version("featurelake"),
    }
    commit = stages.run(
        "compute_write",
        lambda: write_delta(table, cfg.sink, commit_info, replace_range(cfg.features)),
        rows=lambda c: c.rows_written,
    )
    path = str(Path(commit.path).resolve())
    mlflow.log_params({"delta_path": path, "delta_version": commit.version})
    mlflow.log_metrics({"rows_written": commit.rows_written, "delta_version": commit.version})
    digest = hashlib.sha256(f"{path}@{commit.version}".encode()).hexdigest()[:16]
    # Source only (no Spark profile job); the version as a string, as MLflow drops a falsy version 0.
    source = DeltaDatasetSource(path=path, delta_table_version=str(commit.version))
    mlflow.log_input(MetaDataset(source, name=f"{cfg.job.name}_features", digest=digest), context="features")
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
            _write_json(Path(cfg.job.run_record_dir) / f"{cfg.job.name}-feature_schema.json", record["feature_schema"])
            commit = _write(table, cfg, run_id, stages)
            record["delta"] = asdict(commit)
            trials: list[TrialResult] = []
            if cfg.experiment.enabled:
                features = [f["name"] for f in record["feature_schema"]["features"]]
                trials = stages.run("experiment", lambda: _experiment(spark, cfg, commit, features), rows=len)
                record["experiment"] = [asdict(t) for t in trials]
            mlflow.log_metrics({f"stage_seconds_{s.name}": s.seconds for s in stages.runs})
        except BaseException:
            record["stages"] = stages.to_list()
            try:
                _write_record(cfg, run_id, record)
            except Exception:  # the run's own error is the one to report
                log.warning("could not write the run record of failed run %s", run_id, exc_info=True)
            raise
        finally:
            spark.catalog.clearCache()
        record["stages"] = stages.to_list()
        record_path = _write_record(cfg, run_id, record)
    return RunResult(run_id, stages, rows_read, report, commit, trials, record_path)
