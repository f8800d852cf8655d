"""The training-set job: pin inputs -> as-of join -> write a Delta table -> experiment, with lineage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.quality import DriftConfig
from engine.config.schema import FeaturelakeConfig, TrainingSetConfig
from engine.errors import ConfigError
from engine.experiments.dataset import TableVersion
from engine.experiments.sweep import SweepResult, run_sweep
from engine.pipeline.experiment import check_experiment, servable_variants, sweep_record
from engine.pipeline.stages import Stage, StageLog, pipeline_definition
from engine.quality.drift import feature_drift
from engine.sinks.delta import Commit, write_delta
from engine.tracking.mlflow_runs import (
    commit_metadata,
    config_params,
    log_delta_input,
    tracked_run,
    write_run_record,
)
from engine.training.build import PinnedInput, pin_inputs, training_set
from engine.versioning.refs import missing_local_table

STAGES = [
    Stage("pin_inputs"),
    Stage("plan", ("pin_inputs",)),
    Stage("compute_write", ("plan",)),
    Stage("skew", ("compute_write",)),
    Stage("experiment", ("compute_write",)),
]


@dataclass(frozen=True)
class TrainingSetResult:
    run_id: str
    stages: StageLog
    inputs: list[PinnedInput]
    features: list[str]
    commit: Commit
    skew: list[dict]
    sweep: SweepResult | None
    record_path: Path


def check_inputs(cfg: FeaturelakeConfig) -> TrainingSetConfig:
    """Fail before Spark starts when the training set is not configured or a local input is missing."""
    if cfg.training_set is None:
        raise ConfigError("training_set: no training set selected (training_set=<name>)")
    tables = [cfg.training_set.spine.path, *(t.path for t in cfg.training_set.feature_tables)]
    for path in tables:
        if missing_local_table(path):
            raise ConfigError(f"training_set: no Delta table at {path} (run the job that writes it first)")
    check_experiment(cfg)
    return cfg.training_set


def run_training_set(spark: SparkSession, cfg: FeaturelakeConfig, spec: TrainingSetConfig) -> TrainingSetResult:
    """Build the configured training set from pinned versions inside one MLflow run."""
    stages = StageLog()
    with tracked_run(cfg.tracking, run_name=cfg.job.name) as run:
        run_id = run.info.run_id
        mlflow.log_params(config_params(cfg))
        pinned = stages.run("pin_inputs", lambda: pin_inputs(spark, spec), rows=len)
        for item in pinned:
            log_delta_input(str(Path(item.path).resolve()), item.version, item.name, item.role)
        table, features, _ = stages.run("plan", lambda: training_set(spark, spec, pinned))
        identity = {"job": cfg.job.name, "inputs": [asdict(p) for p in pinned], "output": asdict(spec.output)}
        commit = stages.run(
            "compute_write",
            lambda: write_delta(table, spec.output, commit_metadata(cfg, run_id), identity),
            rows=lambda c: c.rows_written,
        )
        mlflow.log_params({"delta_path": str(Path(commit.path).resolve()), "delta_version": commit.version})
        skew = stages.run("skew", lambda: serving_skew(spark, spec, commit, features, cfg.quality.drift))
        mlflow.log_metrics(
            {
                "rows_written": commit.rows_written,
                "features": len(features),
                "features_skewed": sum(1 for d in skew if d["drifted"]),
            }
        )
        sweep = None
        if cfg.experiment.enabled:
            table = TableVersion(str(Path(commit.path).resolve()), commit.version)
            variants = servable_variants(check_experiment(cfg), table, features)
            experiment = replace(  # the training set names its own label and time
                cfg.experiment,
                label=spec.spine.label,
                split=replace(cfg.experiment.split, time_column=spec.spine.timestamp),
            )
            sweep = stages.run("experiment", lambda: run_sweep(experiment, variants), rows=lambda s: len(s.results))
        record = {
            "job": cfg.job.name,
            "run_id": run_id,
            "pipeline_definition": pipeline_definition(STAGES),
            "inputs": [asdict(p) for p in pinned],
            "features": features,
            "delta": asdict(commit),
            "skew": skew,
            "experiment": sweep_record(sweep) if sweep else None,
            "stages": stages.to_list(),
        }
        record_path = write_run_record(cfg.job, run_id, record)
    return TrainingSetResult(run_id, stages, pinned, features, commit, skew, sweep, record_path)


def serving_skew(
    spark: SparkSession, spec: TrainingSetConfig, commit: Commit, features: list[str], cfg: DriftConfig
) -> list[dict]:
    """Training/serving skew: each feature of the written training set against the newest version
    of the table that serves it (PSI and JS distance, as for drift)."""
    if not cfg.enabled:
        return []
    training = spark.read.format("delta").option("versionAsOf", commit.version).load(commit.path)
    skew = []
    for table in spec.feature_tables:
        serving = spark.read.format("delta").load(table.path)
        pairs = [(f"{table.prefix}{c}", c) for c in serving.columns if f"{table.prefix}{c}" in features]
        if pairs:
            renamed = training.select(*[F.col(t).alias(c) for t, c in pairs])
            found = feature_drift(renamed, serving, [c for _, c in pairs], cfg, rows=commit.rows_written or None)
            skew += [d | {"feature": f"{table.prefix}{d['feature']}", "table": table.name} for d in found]
    return skew
