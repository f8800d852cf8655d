"""The training-set job: pin inputs -> as-of join -> write a Delta table -> skew -> experiment, with lineage."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.config.quality import DriftConfig
from engine.config.schema import FeaturelakeConfig, TrainingSetConfig
from engine.errors import ConfigError
from engine.experiments.dataset import TableVersion
from engine.experiments.sweep import SweepResult, run_sweep
from engine.pipeline.experiment import check_experiment, servable_variants, sweep_record
from engine.pipeline.runner import PREPARED, Job, RunContext, Stage
from engine.quality.drift import feature_drift
from engine.sinks.delta import Commit, write_delta
from engine.tracking.mlflow_runs import log_delta_input
from engine.training.build import PinnedInput, pin_inputs, training_set
from engine.versioning.refs import missing_local_table


def prepare(cfg: FeaturelakeConfig) -> TrainingSetConfig:
    """Fail before Spark starts when the training set is not configured or a local input is missing."""
    if cfg.training_set is None:
        raise ConfigError("training_set: no training set selected (training_set=<name>)")
    tables = [cfg.training_set.spine.path, *(t.path for t in cfg.training_set.feature_tables)]
    for path in tables:
        if missing_local_table(path):
            raise ConfigError(f"training_set: no Delta table at {path} (run the job that writes it first)")
    check_experiment(cfg)
    return cfg.training_set


def pin(ctx: RunContext, spec: TrainingSetConfig) -> list[PinnedInput]:
    """Every input at a fixed version, logged as the run's dataset inputs (lineage)."""
    pinned = pin_inputs(ctx.spark, spec)
    for item in pinned:
        log_delta_input(str(Path(item.path).resolve()), item.version, item.name, item.role)
    ctx.record.inputs = [asdict(p) for p in pinned]
    return pinned


def plan(ctx: RunContext, spec: TrainingSetConfig, pinned: list[PinnedInput]) -> tuple[DataFrame, list[str]]:
    table, features, _ = training_set(ctx.spark, spec, pinned)
    ctx.record.features = features
    return table, features


def compute_write(
    ctx: RunContext, spec: TrainingSetConfig, pinned: list[PinnedInput], planned: tuple[DataFrame, list[str]]
) -> Commit:
    identity = {"job": ctx.cfg.job.name, "inputs": [asdict(p) for p in pinned], "output": asdict(spec.output)}
    commit = write_delta(planned[0], spec.output, ctx.commit_info, identity)
    ctx.record.delta = asdict(commit)
    mlflow.log_params({"delta_path": str(Path(commit.path).resolve()), "delta_version": commit.version})
    mlflow.log_metrics({"rows_written": commit.rows_written, "features": len(planned[1])})
    return commit


def skew(ctx: RunContext, spec: TrainingSetConfig, commit: Commit, planned: tuple[DataFrame, list[str]]) -> list[dict]:
    found = serving_skew(ctx.spark, spec, commit, planned[1], ctx.cfg.quality.drift)
    ctx.record.skew = found
    mlflow.log_metric("features_skewed", sum(1 for d in found if d["drifted"]))
    return found


def experiment(
    ctx: RunContext, spec: TrainingSetConfig, commit: Commit, planned: tuple[DataFrame, list[str]]
) -> SweepResult:
    """The sweep on the version just written, with the training set's own label and time."""
    cfg = ctx.cfg
    table = TableVersion(str(Path(commit.path).resolve()), commit.version)
    variants = servable_variants(check_experiment(cfg), table, planned[1])
    settings = replace(
        cfg.experiment,
        label=spec.spine.label,
        split=replace(cfg.experiment.split, time_column=spec.spine.timestamp),
    )
    sweep = run_sweep(settings, variants)
    ctx.record.experiment = sweep_record(sweep)
    return sweep


TRAINING_SET = Job(
    name="training_set",
    prepare=prepare,
    stages=(
        Stage("pin_inputs", pin, (PREPARED,), "inputs", rows=len),
        Stage("plan", plan, (PREPARED, "inputs"), "planned"),
        Stage("compute_write", compute_write, (PREPARED, "inputs", "planned"), "commit", rows=lambda c: c.rows_written),
        Stage("skew", skew, (PREPARED, "commit", "planned"), "skew"),
        Stage(
            "experiment",
            experiment,
            (PREPARED, "commit", "planned"),
            "sweep",
            when=lambda cfg, _: cfg.experiment.enabled,
            rows=lambda s: len(s.results),
        ),
    ),
)


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
