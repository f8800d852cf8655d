"""The training-set job: pin inputs -> as-of join -> write a Delta table -> skew -> experiment, with lineage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.config.quality import DriftConfig
from engine.config.schema import FeaturelakeConfig, TrainingSetConfig
from engine.errors import ConfigError
from engine.experiments.dataset import TableVersion
from engine.experiments.sweep import SweepResult, run_sweep
from engine.experiments.variants import VariantPlan
from engine.pipeline.experiment import check_experiment, servable_variants
from engine.pipeline.recording import commit_recorded, sweep_recorded
from engine.pipeline.runner import PREPARED, DeltaInput, Job, Recorded, RunContext, Stage
from engine.quality.drift import feature_drift
from engine.quality.findings import FeatureDrift
from engine.sinks.delta import Commit
from engine.sinks.sink import DELTA
from engine.training.build import PinnedInput, pin_inputs, training_set
from engine.versioning.refs import missing_local_table


@dataclass(frozen=True)
class Prepared:
    """The training set to build and the experiment's variants, compiled before Spark starts."""

    spec: TrainingSetConfig
    variants: list[VariantPlan]


def prepare(cfg: FeaturelakeConfig) -> Prepared:
    """Fail before Spark starts when the training set is not configured, a local input is missing, or the
    experiment does not compile."""
    if cfg.training_set is None:
        raise ConfigError("training_set: no training set selected (training_set=<name>)")
    tables = [cfg.training_set.spine.path, *(t.path for t in cfg.training_set.feature_tables)]
    for path in tables:
        if missing_local_table(path):
            raise ConfigError(f"training_set: no Delta table at {path} (run the job that writes it first)")
    return Prepared(cfg.training_set, check_experiment(cfg))


def pin(ctx: RunContext, prepared: Prepared) -> list[PinnedInput]:
    """Every input at a fixed version."""
    return pin_inputs(ctx.spark, prepared.spec)


def _pinned_recorded(_: FeaturelakeConfig, pinned: list[PinnedInput]) -> Recorded:
    """The pinned inputs in the run record and as the run's dataset inputs (lineage)."""
    inputs = tuple(DeltaInput(str(Path(p.path).resolve()), p.version, p.name, p.role) for p in pinned)
    return Recorded(record={"inputs": [asdict(p) for p in pinned]}, inputs=inputs)


@dataclass(frozen=True)
class Planned:
    """The training set's plan and the features it holds."""

    table: DataFrame
    features: list[str]


def plan(ctx: RunContext, prepared: Prepared, pinned: list[PinnedInput]) -> Planned:
    table, features, _ = training_set(ctx.spark, prepared.spec, pinned)
    return Planned(table, features)


def compute_write(ctx: RunContext, prepared: Prepared, pinned: list[PinnedInput], planned: Planned) -> Commit:
    output = prepared.spec.output
    identity = {"job": ctx.cfg.job.name, "inputs": [asdict(p) for p in pinned], "output": asdict(output)}
    return DELTA.write(planned.table, output, ctx.commit_info, identity)


def skew(ctx: RunContext, prepared: Prepared, commit: Commit, planned: Planned) -> list[FeatureDrift]:
    return serving_skew(ctx.spark, prepared.spec, commit, planned.features, ctx.cfg.quality.drift)


def _skew_recorded(_: FeaturelakeConfig, found: list[FeatureDrift]) -> Recorded:
    skewed = sum(1 for d in found if d.drifted)
    return Recorded(record={"skew": [asdict(d) for d in found]}, metrics={"features_skewed": skewed})


def experiment(ctx: RunContext, prepared: Prepared, commit: Commit, planned: Planned) -> SweepResult:
    """The sweep on the version just written, with the training set's own label and time."""
    cfg, spec = ctx.cfg, prepared.spec
    table = TableVersion(str(Path(commit.path).resolve()), commit.version)
    variants = servable_variants(prepared.variants, table, planned.features)
    settings = replace(
        cfg.experiment,
        label=spec.spine.label,
        split=replace(cfg.experiment.split, time_column=spec.spine.timestamp),
    )
    return run_sweep(settings, variants)


TRAINING_SET = Job(
    name="training_set",
    prepare=prepare,
    stages=(
        Stage("pin_inputs", pin, (PREPARED,), "inputs", rows=len, records=_pinned_recorded),
        Stage(
            "plan",
            plan,
            (PREPARED, "inputs"),
            "planned",
            records=lambda _, p: Recorded(record={"features": p.features}, metrics={"features": len(p.features)}),
        ),
        Stage(
            "compute_write",
            compute_write,
            (PREPARED, "inputs", "planned"),
            "commit",
            rows=lambda c: c.rows_written,
            records=lambda _, commit: commit_recorded(commit),
        ),
        Stage("skew", skew, (PREPARED, "commit", "planned"), "skew", records=_skew_recorded),
        Stage(
            "experiment",
            experiment,
            (PREPARED, "commit", "planned"),
            "sweep",
            when=lambda cfg, _: cfg.experiment.enabled,
            rows=lambda s: len(s.results),
            records=lambda _, sweep: sweep_recorded(sweep),
        ),
    ),
)


def serving_skew(
    spark: SparkSession, spec: TrainingSetConfig, commit: Commit, features: list[str], cfg: DriftConfig
) -> list[FeatureDrift]:
    """Training/serving skew: each feature of the written training set against the newest version
    of the table that serves it (PSI and JS distance, as for drift)."""
    if not cfg.enabled:
        return []
    training = DELTA.read_version(spark, commit.path, commit.version)
    skew = []
    for table in spec.feature_tables:
        serving = DELTA.read_version(spark, table.path)
        pairs = [(f"{table.prefix}{c}", c) for c in serving.columns if f"{table.prefix}{c}" in features]
        if pairs:
            renamed = training.select(*[F.col(t).alias(c) for t, c in pairs])
            found = feature_drift(renamed, serving, [c for _, c in pairs], cfg, rows=commit.rows_written or None)
            skew += [replace(d, feature=f"{table.prefix}{d.feature}", table=table.name) for d in found]
    return skew
