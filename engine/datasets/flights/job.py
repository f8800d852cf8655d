"""The flights job: read -> verify -> features -> write -> experiment, declared as stages.

A halting check stops the run before any write (the report is still published); quarantined rows
go to the quarantine table and the rest continue; a stale source serves the last good version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from functools import reduce
from pathlib import Path
from typing import Any

import mlflow
from pyspark.sql import DataFrame

from engine.config.features import FeaturesConfig
from engine.config.schema import FeaturelakeConfig
from engine.datasets.flights.events import prepare_flights
from engine.datasets.flights.source import SourceFiles, locate_sources, read_flights, read_weather
from engine.datasets.flights.weather import weather_as_of
from engine.errors import ValidationFailed
from engine.experiments.dataset import TableVersion
from engine.experiments.sweep import SweepResult
from engine.features.catalog import feature_schema
from engine.features.table import PARTITION_COLUMN, feature_names, feature_table, replace_range
from engine.observability.events import emit
from engine.pipeline.experiment import (
    SweepInputs,
    check_experiment,
    compute_variants,
    sweep_record,
    sweep_variants,
    variants_while_ray_starts,
)
from engine.pipeline.quality import Published, as_of_time, blocking_message, publish_to_run, write_quarantine
from engine.pipeline.runner import PREPARED, Job, RunContext, Stage
from engine.quality.drift import feature_drift
from engine.quality.gates import gates
from engine.quality.inputs import SourceData
from engine.quality.states import Outcome
from engine.quality.validation import Validated, validate
from engine.quality.verify import ValidationReport
from engine.resilience.retry import read_resiliently
from engine.sinks.delta import Commit, latest_version, write_delta
from engine.sources.materialize import materialize
from engine.tracking.mlflow_runs import log_delta_input, write_json

log = logging.getLogger("engine.pipeline")

ID_COLUMNS = ["flight_id", "year", "month", "day", "carrier", "flight", "tailnum", "origin", "dest", "sched_dep_ts"]


def prepare(cfg: FeaturelakeConfig) -> SourceFiles:
    """Before Spark: the experiment compiles and the source files exist."""
    check_experiment(cfg)
    return locate_sources(cfg.source, cfg.resilience, task=cfg.job.name)


def build_features(flights: DataFrame, weather: DataFrame, cfg: FeaturelakeConfig) -> DataFrame:
    """The feature table: one row per flight, keys, label, windowed and weather features."""
    prepared = flights.transform(prepare_flights, cfg.job)
    table = prepared.transform(feature_table, cfg.features).transform(
        weather_as_of, weather, list(cfg.features.weather_columns), points=prepared
    )
    weather_columns = [f"weather_{c}" for c in cfg.features.weather_columns]
    features = [*feature_names(cfg.features), *weather_columns]
    return table.select(*ID_COLUMNS, "label", *features, PARTITION_COLUMN)


def read_source(
    name: str, read: Callable[[RunContext, SourceFiles], DataFrame]
) -> Callable[[RunContext, SourceFiles], SourceData]:
    """A stage reading one source (retried behind its circuit), cached and counted in one scan."""

    def stage(ctx: RunContext, files: SourceFiles) -> SourceData:
        data = read_resiliently(lambda: materialize(read(ctx, files), name), source=name, cfg=ctx.cfg.resilience)
        mlflow.log_metric(f"rows_read_{name}", data.rows)
        return data

    return stage


def verify(ctx: RunContext, files: SourceFiles, flights: SourceData, weather: SourceData) -> list[Validated]:
    """Every dataset's checks and gates; the weather may serve the flights' referential checks."""
    datasets = {"flights": flights.well_formed, "weather": weather.well_formed}
    cfg, as_of = ctx.cfg, as_of_time(ctx.cfg.quality)
    origins = {"flights": str(files.flights), "weather": str(files.weather)}
    return [
        validate(
            s,
            cfg.checks.for_dataset(s.name),
            cfg.quality,
            run_id=ctx.run_id,
            as_of=as_of,
            datasets=datasets,
            origin=origins[s.name],
        )
        for s in (flights, weather)
    ]


def gate(ctx: RunContext, validated: list[Validated]) -> ValidationReport:
    """The merged report; a halting check publishes it and stops the run before any write."""
    report = reduce(ValidationReport.merge, [v.report for v in validated])
    if report.outcome == Outcome.HALT:
        published = publish_report(ctx, report)
        mlflow.set_tag("status", "validation_failed")
        raise ValidationFailed(blocking_message(published, "nothing was written"))
    return report


def quarantine(ctx: RunContext, validated: list[Validated]) -> Commit | None:
    return write_quarantine(validated, ctx.cfg.quality, ctx.commit_info, ctx.run_id)


def plan_features(ctx: RunContext, validated: list[Validated]) -> DataFrame:
    """The feature table's plan, and its schema recorded (run record, MLflow, a JSON beside the records)."""
    flights, weather = (v.passed for v in validated)
    table = build_features(flights, weather, ctx.cfg)
    schema = feature_schema(table, ctx.cfg.features, ["flight_id"], "label")
    ctx.record.feature_schema = schema
    mlflow.log_dict(schema, "feature_schema.json")
    write_json(Path(ctx.cfg.job.run_record_dir) / f"{ctx.cfg.job.name}-feature_schema.json", schema)
    return table


def _feature_names(ctx: RunContext) -> list[str]:
    """The features of the table this run plans, from the feature schema `plan_features` recorded."""
    return [f["name"] for f in (ctx.record.feature_schema or {}).get("features", [])]


def compute_write(ctx: RunContext, table: DataFrame, files: SourceFiles) -> Commit:
    """Compute the features while writing them as one Delta commit; log the version to MLflow.

    The write's identity is the job, its config, its input files and its range, so a repeat of the
    same run is recognised by Delta and adds nothing.
    """
    cfg = ctx.cfg
    rewrite = replace_range(cfg.features)
    identity = {"job": cfg.job.name, "config_hash": ctx.commit_info["config_hash"], "inputs": files.fingerprint()}
    commit = write_delta(table, cfg.sink, ctx.commit_info, {**identity, "range": rewrite}, replace_where=rewrite)
    features = _feature_names(ctx)
    emit(
        "feature_computed",
        f"{len(features)} features for {commit.rows_written:,} rows of {cfg.sink.path}",
        data_source="flights",
        record_count=commit.rows_written,
        feature_table=Path(cfg.sink.path).name,
        features=len(features),
        version=commit.version,
    )
    _log_commit(ctx, commit)
    return commit


def _log_commit(ctx: RunContext, commit: Commit) -> None:
    path = str(Path(commit.path).resolve())
    ctx.record.delta = asdict(commit)
    mlflow.log_params({"delta_path": path, "delta_version": commit.version})
    mlflow.log_metrics({"rows_written": commit.rows_written, "delta_version": commit.version})
    log_delta_input(path, commit.version, f"{ctx.cfg.job.name}_features", "features")


def ml_checks(ctx: RunContext, report: ValidationReport, commit: Commit) -> ValidationReport:
    """Drift of the version just written against the one before it (the run's range only).

    ML checks warn, so they run on the committed versions: both are cheap Parquet reads, where
    checking before the write would mean caching the whole feature table.
    """
    cfg = ctx.cfg
    if not cfg.quality.drift.enabled or commit.version == 0:
        return report

    def version(number: int) -> DataFrame:
        df = ctx.spark.read.format("delta").option("versionAsOf", number).load(commit.path)
        rewrite = replace_range(cfg.features)
        return df.where(rewrite) if rewrite else df

    previous = version(commit.version - 1)
    names = [f for f in _feature_names(ctx) if f not in cfg.quality.drift.exclude and f in previous.columns]
    rows = commit.rows_written or None
    drift = feature_drift(version(commit.version), previous, names, cfg.quality.drift, label="label", rows=rows)
    return replace(report, drift=drift)


def publish_report(ctx: RunContext, report: ValidationReport) -> Published:
    return publish_to_run(ctx, report, f"{ctx.cfg.job.name}-{ctx.run_id}")


def serve_cached(ctx: RunContext, report: ValidationReport) -> Commit:
    """The feature table's last good version, served instead of computing on stale data."""
    path = ctx.cfg.sink.path
    stale = ", ".join(c.name for c in gates(report).stale)
    version = latest_version(ctx.spark, path)
    if version is None:
        raise ValidationFailed(f"stale source ({stale}) and no earlier feature version at {path} to serve")
    log.warning("stale source (%s): serving %s version %d instead of computing features", stale, path, version)
    mlflow.set_tag("served_cached_features", f"{path}@{version}")
    commit = Commit(path, version, 0, skipped=True)
    ctx.record.delta = asdict(commit)
    return commit


def variant_features(
    ctx: RunContext, files: SourceFiles, commit: Commit, validated: list[Validated], report: ValidationReport
) -> SweepInputs:
    """The variants the feature table lacks, computed once each (never from a stale source), while Ray
    starts for the sweep."""
    cfg = ctx.cfg
    base = TableVersion(str(Path(commit.path).resolve()), commit.version)
    # The base version stands for everything the variant shares with it: sources, labels, range.
    identity = {"job": f"{cfg.job.name}_variant", "base": f"{base.path}@{base.version}", "inputs": files.fingerprint()}
    flights, weather = (v.passed for v in validated)

    def compute(features: FeaturesConfig) -> DataFrame:
        return build_features(flights, weather, replace(cfg, features=features))

    fresh = report.outcome != Outcome.USE_CACHED_FEATURES
    return variants_while_ray_starts(
        cfg, lambda: compute_variants(ctx.spark, cfg, base, compute if fresh else None, ctx.commit_info, identity)
    )


def experiment(ctx: RunContext, inputs: SweepInputs) -> SweepResult:
    sweep = sweep_variants(ctx.cfg, inputs)
    ctx.record.experiment = sweep_record(sweep)
    return sweep


def _fresh(_: FeaturelakeConfig, values: Mapping[str, Any]) -> bool:
    return values["report"].outcome == Outcome.CONTINUE


def _stale(_: FeaturelakeConfig, values: Mapping[str, Any]) -> bool:
    return values["report"].outcome == Outcome.USE_CACHED_FEATURES


def _experiment(cfg: FeaturelakeConfig, _: Mapping[str, Any]) -> bool:
    return cfg.experiment.enabled


def _read_flights(ctx: RunContext, files: SourceFiles) -> DataFrame:
    return read_flights(ctx.spark, files.flights, list(ctx.cfg.source.months), list(ctx.cfg.source.days))


def _read_weather(ctx: RunContext, files: SourceFiles) -> DataFrame:
    return read_weather(ctx.spark, files.weather)


def _rows(source: SourceData) -> int:
    return source.rows


def _rows_written(commit: Commit) -> int:
    return commit.rows_written


FLIGHTS = Job(
    name="flights",
    prepare=prepare,
    stages=(
        Stage("read_flights", read_source("flights", _read_flights), (PREPARED,), "flights", rows=_rows),
        Stage("read_weather", read_source("weather", _read_weather), (PREPARED,), "weather", rows=_rows),
        Stage("verify", verify, (PREPARED, "flights", "weather"), "validated"),
        Stage("gate", gate, ("validated",), "report"),
        Stage("quarantine", quarantine, ("validated",), "quarantine"),
        Stage("plan_features", plan_features, ("validated",), "table", when=_fresh),
        Stage("compute_write", compute_write, ("table", PREPARED), "commit", when=_fresh, rows=_rows_written),
        Stage("ml_checks", ml_checks, ("report", "commit"), "report", when=_fresh),
        Stage("publish", publish_report, ("report",), "published"),
        Stage("serve_cached", serve_cached, ("report",), "commit", when=_stale),
        Stage(
            "variant_features",
            variant_features,
            (PREPARED, "commit", "validated", "report"),
            "variants",
            when=_experiment,
        ),
        Stage("experiment", experiment, ("variants",), "sweep", when=_experiment, rows=lambda s: len(s.results)),
    ),
)
