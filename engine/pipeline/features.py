"""The feature job of a declared pipeline: read -> verify -> features -> write -> experiment, as stages.

Every source is located before Spark starts and its declaration checked against its stored schema
before any data is read. A halting check stops the run before any write (the report is still
published); quarantined rows go to the quarantine table and the rest continue; a stale source serves
the feature table's last good version.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from engine.config.features import FeaturesConfig
from engine.config.pipeline import JoinConfig, PipelineConfig
from engine.config.schema import FeaturelakeConfig
from engine.errors import ConfigError, ValidationFailed
from engine.experiments.dataset import TableVersion
from engine.experiments.sweep import SweepResult
from engine.experiments.variants import VariantPlan, joined_names
from engine.features.catalog import feature_schema
from engine.features.enrich import join_as_of
from engine.features.events import LABEL, with_event_columns
from engine.features.table import PARTITION_COLUMN, compile_features, feature_names, feature_table, range_filters
from engine.observability.events import emit
from engine.pipeline.declaration import check_declaration
from engine.pipeline.experiment import (
    SweepInputs,
    check_experiment,
    compute_variants,
    sweep_variants,
    variants_while_ray_starts,
)
from engine.pipeline.quality import (
    Published,
    as_of_time,
    halt,
    halting,
    publish_to_run,
    published_record,
    write_quarantine,
)
from engine.pipeline.recording import commit_recorded, sweep_recorded
from engine.pipeline.runner import PREPARED, Job, Recorded, RunContext, Stage
from engine.quality.drift import feature_drift
from engine.quality.gates import gates
from engine.quality.states import Outcome
from engine.quality.validation import Validated, validate
from engine.quality.verify import ValidationReport
from engine.runtime.datasets import SourceData, StoredGroups
from engine.sinks.delta import Commit
from engine.sinks.sink import DELTA
from engine.sources.files import fingerprint, locate, read_source_resiliently

log = logging.getLogger("engine.pipeline")


@dataclass(frozen=True)
class Located:
    """The pipeline with each source where Spark reads it (fetched or extracted into the staging folder)."""

    pipeline: PipelineConfig
    variants: list[VariantPlan]

    def fingerprint(self) -> dict[str, str]:
        """Each source's content fingerprint: part of a write's identity."""
        return {s.name: fingerprint(s) for s in self.pipeline.sources}


def prepare(cfg: FeaturelakeConfig) -> Located:
    """Before Spark: a pipeline is selected, the features and the experiment compile, and every source
    exists (remote files fetched, archives extracted)."""
    if cfg.pipeline is None:
        raise ConfigError("pipeline: no pipeline selected (pipeline=<name>)")
    compile_features(cfg.features)
    variants = check_experiment(cfg)
    pipeline = cfg.pipeline
    staging = Path(pipeline.staging_dir)
    sources = [locate(s, staging, cfg.resilience, task=f"{cfg.job.name}-{pipeline.name}") for s in pipeline.sources]
    return Located(replace(pipeline, sources=sources), variants)


def check(ctx: RunContext, located: Located) -> dict[str, T.StructType]:
    """The declaration against the sources' stored schemas (headers, footers, the Delta log): a column no
    source has, or an expression Spark cannot parse, fails here, before any data is read."""
    return check_declaration(ctx.spark, ctx.cfg, located.pipeline)


def read(ctx: RunContext, located: Located, stored: dict[str, T.StructType]) -> dict[str, SourceData]:
    """Every source read (retried behind its circuit), cached and counted in one scan each."""
    days = list(located.pipeline.days)
    data = {}
    for source in located.pipeline.sources:
        options = {"allow_empty": False, "stored": stored[source.name]}
        data[source.name] = read_source_resiliently(ctx.spark, source, ctx.cfg.resilience, days=days, **options)
    return data


def verify(ctx: RunContext, located: Located, sources: dict[str, SourceData]) -> list[Validated]:
    """Every source's checks and gates; any source may serve another's referential checks."""
    datasets = {name: s.well_formed for name, s in sources.items()}
    cfg, as_of = ctx.cfg, as_of_time(ctx.cfg.quality)
    return [
        validate(
            data,
            list(located.pipeline.source(name).checks),
            cfg.quality,
            run_id=ctx.run_id,
            as_of=as_of,
            datasets=datasets,
            origin=located.pipeline.source(name).path,
        )
        for name, data in sources.items()
    ]


def gate(ctx: RunContext, validated: list[Validated]) -> ValidationReport:
    """The sources' reports merged into one: the stages after it publish a halting one and stop the run
    before any write (`publish_halted`, `halt`)."""
    return reduce(ValidationReport.merge, [v.report for v in validated])


def quarantine(ctx: RunContext, validated: list[Validated]) -> Commit | None:
    return write_quarantine(validated, ctx.cfg.quality, ctx.commit_info, ctx.run_id)


def build_features(
    passed: Mapping[str, DataFrame],
    pipeline: PipelineConfig,
    features: FeaturesConfig,
    joins: list[JoinConfig] | tuple[JoinConfig, ...] | None = None,
    stored: StoredGroups | None = None,
) -> DataFrame:
    """The feature table: one row per driving row with its keys, carried columns, label, windowed
    features and joined columns; for snapshots, one row per entity per period with its keys and time."""
    joins = pipeline.joins if joins is None else joins
    entity = pipeline.entity
    events = with_event_columns(passed[entity.source], pipeline.driving, pipeline.label)
    table = events.transform(feature_table, features, stored)
    for join in joins:
        other = with_event_columns(passed[join.source], pipeline.source(join.source))
        table = join_as_of(table, other, join, features.timestamp, points=events)
    if features.granularity == "snapshot":
        columns = [*entity.keys, features.timestamp]
    else:
        columns = [*entity.keys, *(c for c in pipeline.carry if c not in entity.keys)]
        columns += [LABEL] if pipeline.label else []
    return table.select(*columns, *feature_names(features), *joined_names(joins), PARTITION_COLUMN)


def _passed(located: Located, validated: list[Validated]) -> dict[str, DataFrame]:
    """Each source's passed rows by name (`verify` validates them in declaration order)."""
    return {s.name: v.passed for s, v in zip(located.pipeline.sources, validated, strict=True)}


def _stored_events(pipeline: PipelineConfig, sources: Mapping[str, SourceData]) -> StoredGroups | None:
    """The driving source's stored row groups, less the columns its event columns redefine: the plan
    chooser samples them for the columns they still hold as the events have them."""
    groups = sources[pipeline.driving.name].row_groups
    return None if groups is None else replace(groups, columns=groups.columns - set(pipeline.driving.columns))


@dataclass(frozen=True)
class Planned:
    """The feature table's plan and its schema (every feature's name, type, description, keys, TTL)."""

    table: DataFrame
    schema: dict

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.schema["features"]]


def plan_features(
    ctx: RunContext, located: Located, validated: list[Validated], sources: Mapping[str, SourceData]
) -> Planned:
    """The feature table's plan and its schema."""
    pipeline = located.pipeline
    stored = _stored_events(pipeline, sources)
    table = build_features(_passed(located, validated), pipeline, ctx.cfg.features, stored=stored)
    label = LABEL if pipeline.label else None
    return Planned(table, feature_schema(table, ctx.cfg.features, list(pipeline.entity.keys), label, pipeline.joins))


def _schema_recorded(cfg: FeaturelakeConfig, planned: Planned) -> Recorded:
    """The feature schema in the run record, in MLflow and as a JSON beside the run records."""
    name = f"{cfg.pipeline.name}-feature_schema.json"
    return Recorded(
        record={"feature_schema": planned.schema},
        artifacts={"feature_schema.json": planned.schema},
        files={name: planned.schema},
    )


def _identity(cfg: FeaturelakeConfig, located: Located, **more: object) -> dict[str, object]:
    return {"job": cfg.job.name, "pipeline": located.pipeline.name, "inputs": located.fingerprint(), **more}


def compute_write(ctx: RunContext, planned: Planned, located: Located) -> Commit:
    """Compute the features while writing them as one Delta commit.

    The write's identity is the pipeline, its config, its inputs' content and its range, so a repeat of
    the same run is recognised by Delta and adds nothing.
    """
    cfg = ctx.cfg
    rewrite = range_filters(cfg.features)
    identity = _identity(cfg, located, config_hash=ctx.commit_info["config_hash"], range=rewrite)
    commit = DELTA.write(planned.table, cfg.sink, ctx.commit_info, identity, replace_where=rewrite)
    features = planned.features
    emit(
        "feature_computed",
        f"{len(features)} features for {commit.rows_written:,} rows of {cfg.sink.path}",
        data_source=located.pipeline.entity.source,
        record_count=commit.rows_written,
        feature_table=Path(cfg.sink.path).name,
        features=len(features),
        version=commit.version,
    )
    return commit


def _commit_recorded(cfg: FeaturelakeConfig, commit: Commit) -> Recorded:
    return commit_recorded(commit, f"{cfg.pipeline.name}_features")


def ml_checks(ctx: RunContext, report: ValidationReport, commit: Commit, planned: Planned) -> ValidationReport:
    """Drift of the version just written against the one before it (the run's range only).

    ML checks warn, so they run on the committed versions: both are cheap Parquet reads, where
    checking before the write would mean caching the whole feature table.
    """
    cfg = ctx.cfg
    if not cfg.quality.drift.enabled or commit.version == 0:
        return report

    def version(number: int) -> DataFrame:
        return DELTA.read_version(ctx.spark, commit.path, number, where=range_filters(cfg.features))

    previous = version(commit.version - 1)
    names = [f for f in planned.features if f not in cfg.quality.drift.exclude and f in previous.columns]
    rows = commit.rows_written or None
    label = LABEL if cfg.pipeline.label else None
    drift = feature_drift(version(commit.version), previous, names, cfg.quality.drift, label=label, rows=rows)
    return replace(report, drift=drift)


def publish_report(ctx: RunContext, report: ValidationReport) -> Published:
    return publish_to_run(ctx, report, f"{ctx.cfg.pipeline.name}-{ctx.run_id}")


def serve_cached(ctx: RunContext, report: ValidationReport) -> Commit:
    """The feature table's last good version, served instead of computing on stale data."""
    path = ctx.cfg.sink.path
    stale = ", ".join(c.name for c in gates(report).stale)
    version = DELTA.latest_version(ctx.spark, path)
    if version is None:
        raise ValidationFailed(f"stale source ({stale}) and no earlier feature version at {path} to serve")
    log.warning("stale source (%s): serving %s version %d instead of computing features", stale, path, version)
    return Commit(path, version, 0, skipped=True)


def _served_recorded(_: FeaturelakeConfig, commit: Commit) -> Recorded:
    return Recorded(
        record={"delta": asdict(commit)}, tags={"served_cached_features": f"{commit.path}@{commit.version}"}
    )


def variant_features(
    ctx: RunContext, located: Located, commit: Commit, validated: list[Validated], report: ValidationReport
) -> SweepInputs:
    """The variants the feature table lacks, computed once each (never from a stale source), while Ray
    starts for the sweep."""
    cfg = ctx.cfg
    base = TableVersion(str(Path(commit.path).resolve()), commit.version)
    # The base version stands for everything the variant shares with it: sources, labels, range.
    identity = {**_identity(cfg, located), "job": f"{cfg.job.name}_variant", "base": f"{base.path}@{base.version}"}
    passed = _passed(located, validated)

    def compute(plan: VariantPlan) -> DataFrame:
        return build_features(passed, located.pipeline, plan.features_config, plan.joins)

    fresh = report.outcome != Outcome.USE_CACHED_FEATURES
    return variants_while_ray_starts(
        cfg,
        lambda: compute_variants(
            ctx.spark, cfg, located.variants, base, compute if fresh else None, ctx.commit_info, identity
        ),
    )


def experiment(ctx: RunContext, inputs: SweepInputs) -> SweepResult:
    return sweep_variants(ctx.cfg, inputs)


def _fresh(_: FeaturelakeConfig, values: Mapping[str, Any]) -> bool:
    return values["report"].outcome == Outcome.CONTINUE


def _stale(_: FeaturelakeConfig, values: Mapping[str, Any]) -> bool:
    return values["report"].outcome == Outcome.USE_CACHED_FEATURES


def _experiment(cfg: FeaturelakeConfig, _: Mapping[str, Any]) -> bool:
    return cfg.experiment.enabled


def _rows_written(commit: Commit) -> int:
    return commit.rows_written


FEATURES = Job(
    name="features",
    prepare=prepare,
    run_name=lambda cfg, located: located.pipeline.name,
    label=lambda cfg: cfg.pipeline.name if cfg.pipeline is not None else cfg.job.name,
    stages=(
        Stage("check", check, (PREPARED,), "stored_schemas"),
        Stage(
            "read",
            read,
            (PREPARED, "stored_schemas"),
            "sources",
            rows=lambda s: sum(d.rows for d in s.values()),
            records=lambda _, s: Recorded(metrics={f"rows_read_{n}": d.rows for n, d in s.items()}),
        ),
        Stage("verify", verify, (PREPARED, "sources"), "validated"),
        Stage("gate", gate, ("validated",), "report"),
        Stage("publish_halted", publish_report, ("report",), "published", when=halting, records=published_record),
        Stage("halt", halt, ("published",), when=halting),
        Stage("quarantine", quarantine, ("validated",), "quarantine"),
        Stage(
            "plan_features",
            plan_features,
            (PREPARED, "validated", "sources"),
            "planned",
            when=_fresh,
            records=_schema_recorded,
        ),
        Stage(
            "compute_write",
            compute_write,
            ("planned", PREPARED),
            "commit",
            when=_fresh,
            rows=_rows_written,
            records=_commit_recorded,
        ),
        Stage("ml_checks", ml_checks, ("report", "commit", "planned"), "report", when=_fresh),
        Stage("publish", publish_report, ("report",), "published", records=published_record),
        Stage("serve_cached", serve_cached, ("report",), "commit", when=_stale, records=_served_recorded),
        Stage(
            "variant_features",
            variant_features,
            (PREPARED, "commit", "validated", "report"),
            "variants",
            when=_experiment,
        ),
        Stage(
            "experiment",
            experiment,
            ("variants",),
            "sweep",
            when=_experiment,
            rows=lambda s: len(s.results),
            records=lambda _, sweep: sweep_recorded(sweep),
        ),
    ),
)
