"""The flights job: read -> verify -> features -> write -> experiment, with a run record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import reduce
from pathlib import Path

import mlflow
from pyspark.sql import DataFrame, SparkSession

from engine.config.features import FeaturesConfig
from engine.config.schema import FeaturelakeConfig
from engine.errors import ValidationFailed
from engine.experiments.dataset import TableVersion
from engine.experiments.sweep import SweepResult, run_sweep
from engine.features.catalog import feature_schema
from engine.features.events import prepare_flights
from engine.features.table import PARTITION_COLUMN, feature_names, feature_table, replace_range
from engine.features.weather import weather_as_of
from engine.observability.events import emit
from engine.pipeline.experiment import check_experiment, compute_variants, sweep_record
from engine.pipeline.quality import Published, as_of_time, blocking_message, publish, write_quarantine
from engine.pipeline.stages import Stage, StageLog, pipeline_definition
from engine.quality.drift import feature_drift
from engine.quality.gates import gates
from engine.quality.validation import Validated, validate
from engine.quality.verify import ValidationReport
from engine.resilience.retry import read_resiliently
from engine.sinks.delta import Commit, table_version, write_delta
from engine.sources.files import SourceData
from engine.sources.nycflights13 import SourceFiles, locate_sources, materialize, read_flights, read_weather
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
    Stage("quarantine", ("verify",)),
    Stage("plan_features", ("verify",)),
    Stage("compute_write", ("plan_features",)),
    Stage("ml_checks", ("compute_write",)),
    Stage("variant_features", ("compute_write",)),
    Stage("experiment", ("variant_features",)),
]
ID_COLUMNS = ["flight_id", "year", "month", "day", "carrier", "flight", "tailnum", "origin", "dest", "sched_dep_ts"]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    stages: StageLog
    rows_read: dict[str, int]
    published: Published
    commit: Commit | None
    sweep: SweepResult | None
    record_path: Path


def check_flights_job(cfg: FeaturelakeConfig) -> SourceFiles:
    """Before Spark: the source files exist and the experiment's variants compile."""
    check_experiment(cfg)
    return locate_sources(cfg.source, cfg.resilience, task=cfg.job.name)


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
    spark: SparkSession, cfg: FeaturelakeConfig, files: SourceFiles, stages: StageLog, run_id: str
) -> tuple[list[Validated], dict[str, int]]:
    """Read both sources (cached, one scan each) and run every dataset's checks and gates."""

    def resilient(source: str, read: Callable[[], tuple[DataFrame, int]]) -> tuple[DataFrame, int]:
        return read_resiliently(read, source=source, cfg=cfg.resilience)

    flights, n_flights = stages.run(
        "read_flights",
        lambda: resilient(
            "flights", lambda: materialize(read_flights(spark, files.flights, list(cfg.source.months)), "flights")
        ),
        rows=lambda r: r[1],
    )
    weather, n_weather = stages.run(
        "read_weather",
        lambda: resilient("weather", lambda: materialize(read_weather(spark, files.weather), "weather")),
        rows=lambda r: r[1],
    )
    sources = [
        SourceData("flights", flights, n_flights, 0, flights.schema),
        SourceData("weather", weather, n_weather, 0, weather.schema),
    ]
    datasets = {"flights": flights, "weather": weather}
    as_of = as_of_time(cfg.quality)
    validated = stages.run(
        "verify",
        lambda: [
            validate(s, cfg.checks.for_dataset(s.name), cfg.quality, run_id=run_id, as_of=as_of, datasets=datasets)
            for s in sources
        ],
    )
    mlflow.log_metrics({"rows_read_flights": n_flights, "rows_read_weather": n_weather})
    return validated, {"flights": n_flights, "weather": n_weather}


def _with_drift(
    spark: SparkSession, commit: Commit, cfg: FeaturelakeConfig, report: ValidationReport, features: list[str]
) -> ValidationReport:
    """Compare the version just written with the one before it (the run's range only).

    ML checks warn, so they run on the committed versions: both are cheap Parquet reads, where
    checking before the write would mean caching the whole feature table.
    """
    if not cfg.quality.drift.enabled or commit.version == 0:
        return report

    def version(number: int) -> DataFrame:
        df = spark.read.format("delta").option("versionAsOf", number).load(commit.path)
        rewrite = replace_range(cfg.features)
        return df.where(rewrite) if rewrite else df

    previous = version(commit.version - 1)
    names = [f for f in features if f not in cfg.quality.drift.exclude and f in previous.columns]
    rows = commit.rows_written or None
    drift = feature_drift(version(commit.version), previous, names, cfg.quality.drift, label="label", rows=rows)
    return replace(report, drift=drift)


def _serve_cached(spark: SparkSession, cfg: FeaturelakeConfig, report: ValidationReport) -> Commit:
    """The feature table's last good version, served instead of computing on stale data."""
    stale = ", ".join(c.name for c in gates(report).stale)
    version = table_version(spark, cfg.sink.path)
    if version is None:
        raise ValidationFailed(f"stale source ({stale}) and no earlier feature version at {cfg.sink.path} to serve")
    log.warning("stale source (%s): serving %s version %d instead of computing features", stale, cfg.sink.path, version)
    mlflow.set_tag("served_cached_features", f"{cfg.sink.path}@{version}")
    return Commit(cfg.sink.path, version, 0, skipped=True)


def _write(
    table: DataFrame,
    cfg: FeaturelakeConfig,
    files: SourceFiles,
    commit_info: dict[str, str],
    stages: StageLog,
    features: list[str],
) -> Commit:
    """Compute the features while writing them as one Delta commit; log the table version to MLflow.

    The write's identity is the job, its config, its input files and its range, so a repeat of the
    same run is recognised by Delta and adds nothing.
    """
    rewrite = replace_range(cfg.features)
    identity = {"job": cfg.job.name, "config_hash": commit_info["config_hash"], "inputs": files.fingerprint()}
    commit = stages.run(
        "compute_write",
        lambda: write_delta(table, cfg.sink, commit_info, {**identity, "range": rewrite}, replace_where=rewrite),
        rows=lambda c: c.rows_written,
    )
    emit(
        "feature_computed",
        f"{len(features)} features for {commit.rows_written:,} rows of {cfg.sink.path}",
        data_source="flights",
        record_count=commit.rows_written,
        feature_table=Path(cfg.sink.path).name,
        features=len(features),
        version=commit.version,
    )
    path = str(Path(commit.path).resolve())
    mlflow.log_params({"delta_path": path, "delta_version": commit.version})
    mlflow.log_metrics({"rows_written": commit.rows_written, "delta_version": commit.version})
    log_delta_input(path, commit.version, f"{cfg.job.name}_features", "features")
    return commit


def _experiment(
    spark: SparkSession,
    cfg: FeaturelakeConfig,
    files: SourceFiles,
    commit: Commit,
    commit_info: dict[str, str],
    stages: StageLog,
    flights: DataFrame,
    weather: DataFrame,
    *,
    fresh: bool,
) -> SweepResult:
    """Compute the variants the feature table lacks (not from a stale source), then run the sweep."""
    base = TableVersion(str(Path(commit.path).resolve()), commit.version)
    # The base version stands for everything the variant shares with it: sources, labels, range.
    identity = {"job": f"{cfg.job.name}_variant", "base": f"{base.path}@{base.version}", "inputs": files.fingerprint()}

    def compute(features: FeaturesConfig) -> DataFrame:
        return build_features(flights, weather, replace(cfg, features=features))

    variants = stages.run(
        "variant_features",
        lambda: compute_variants(spark, cfg, base, compute if fresh else None, commit_info, identity),
    )
    return stages.run("experiment", lambda: run_sweep(cfg.experiment, variants), rows=lambda s: len(s.results))


def run_flights(spark: SparkSession, cfg: FeaturelakeConfig, files: SourceFiles) -> RunResult:
    """Run the flights job end to end inside one MLflow run.

    A halting check stops the run before any write (the report is still written); quarantined rows
    go to the quarantine table and the rest continue; a stale source serves the last version.
    """
    stages = StageLog()
    with tracked_run(cfg.tracking, run_name=cfg.job.name) as run:
        run_id = run.info.run_id
        mlflow.log_params(config_params(cfg))
        commit_info = commit_metadata(cfg, run_id)
        record: dict = {"job": cfg.job.name, "run_id": run_id, "pipeline_definition": pipeline_definition(STAGES)}
        try:
            validated, rows_read = _read_and_verify(spark, cfg, files, stages, run_id)
            report = reduce(ValidationReport.merge, [v.report for v in validated])
            stem = f"{cfg.job.name}-{run_id}"
            if report.outcome == "halt":
                published = publish(spark, report, cfg.quality, commit_info, stem)
                record["validation_report"] = published.report.to_dict()
                mlflow.set_tag("status", "validation_failed")
                raise ValidationFailed(blocking_message(published, "nothing was written"))
            stages.run("quarantine", lambda: write_quarantine(validated, cfg.quality, commit_info, run_id))
            flights, weather = (v.passed for v in validated)
            stale = report.outcome == "use_cached_features"
            if stale:
                published = publish(spark, report, cfg.quality, commit_info, stem)  # also when nothing can be served
                commit = _serve_cached(spark, cfg, report)
            else:
                table = stages.run("plan_features", lambda: build_features(flights, weather, cfg))
                record["feature_schema"] = feature_schema(table, cfg.features, ["flight_id"], "label")
                mlflow.log_dict(record["feature_schema"], "feature_schema.json")
                write_json(
                    Path(cfg.job.run_record_dir) / f"{cfg.job.name}-feature_schema.json", record["feature_schema"]
                )
                names = [f["name"] for f in record["feature_schema"]["features"]]
                commit = _write(table, cfg, files, commit_info, stages, names)
                record["delta"] = asdict(commit)
                report = stages.run("ml_checks", lambda: _with_drift(spark, commit, cfg, report, names))
                published = publish(spark, report, cfg.quality, commit_info, stem)
            record["validation_report"] = published.report.to_dict()
            record["reports"] = {"json": str(published.json_path), "html": str(published.html_path)}
            sweep = None
            if cfg.experiment.enabled:
                sweep = _experiment(spark, cfg, files, commit, commit_info, stages, flights, weather, fresh=not stale)
                record["experiment"] = sweep_record(sweep)
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
    return RunResult(run_id, stages, rows_read, published, commit, sweep, record_path)
