"""The job runner: a job is a declared list of stages, and one run context serves every job.

A `Job` names its checks that need no Spark (`prepare`) and its stages. Each `Stage` reads named
values and writes one: `func(ctx, *values)`. The declared list is what runs, in order (a stage whose
`when(cfg, values)` is false is skipped), and the run record's `pipeline_definition` is produced from it. The
runner gives every job the same edges: the MLflow run with the config as params, commit metadata,
the typed run record (written on failure too), stage timings, spans and metrics, and the cache
cleared at the end. Stages return values and never touch the record: a stage's `records` says what of its
value the runner puts in the run record and logs to MLflow (`Recorded`). A stage that needs another's output
reads it as a value. A finished run's values are read as a dataclass of named fields (`JobResult.typed`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import mlflow

from engine.config.paths import check_table_paths, tables_written
from engine.config.schema import FeaturelakeConfig, SparkMode
from engine.errors import ValidationFailed, describe
from engine.pipeline.stages import StageLog, StageRun
from engine.runtime.io_metrics import spark_input_bytes
from engine.tracking.mlflow_runs import (
    commit_metadata,
    config_params,
    log_delta_input,
    tracked_run,
    write_json,
    write_run_record,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("engine.pipeline")
failures = logging.getLogger("featurelake.failures")  # not a console logger: traces stay in the file
PREPARED = "prepared"  # the value `Job.prepare` returns, readable by every stage
R = TypeVar("R")


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class DeltaInput:
    """A Delta table version the run read or wrote, logged as an MLflow dataset input (lineage)."""

    path: str
    version: int
    name: str
    role: str


@dataclass(frozen=True)
class Recorded:
    """What the runner records of a stage's value: run-record fields, MLflow params, metrics and tags, JSON
    artifacts logged to MLflow (name -> content), and JSON files written beside the run records."""

    record: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    artifacts: Mapping[str, dict] = field(default_factory=dict)
    artifact_files: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, dict] = field(default_factory=dict)
    inputs: tuple[DeltaInput, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One step: `func(ctx, *[values[name] for name in reads])`, stored as `values[writes]`; `records(cfg,
    value)` says what of the value goes to the run record and MLflow."""

    name: str
    func: Callable[..., Any]
    reads: tuple[str, ...] = ()
    writes: str | None = None
    when: Callable[[FeaturelakeConfig, Mapping[str, Any]], bool] | None = None
    rows: Callable[[Any], int | None] | None = None
    records: Callable[[FeaturelakeConfig, Any], Recorded] | None = None

    def definition(self) -> dict:
        return {"stage": self.name, "reads": list(self.reads), "writes": self.writes}


@dataclass(frozen=True)
class Job:
    """A job's declaration: what to check before Spark, its MLflow run name, its label (naming the run's
    metrics, log context and record file), and its stages."""

    name: str
    prepare: Callable[[FeaturelakeConfig], Any]
    stages: tuple[Stage, ...]
    run_name: Callable[[FeaturelakeConfig, Any], str] = lambda cfg, _: cfg.job.name
    label: Callable[[FeaturelakeConfig], str] = lambda cfg: cfg.job.name

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"job {self.name}: stage names repeat: {names}")
        known = {PREPARED}
        for stage in self.stages:
            missing = [r for r in stage.reads if r not in known]
            if missing:
                raise ValueError(f"job {self.name}: stage {stage.name} reads {missing} before any stage writes them")
            if stage.writes:
                known.add(stage.writes)

    def definition(self) -> list[dict]:
        return [s.definition() for s in self.stages]


@dataclass
class RunRecord:
    """The JSON record of one run, written under `job.run_record_dir` and to MLflow, whatever the outcome."""

    job: str
    run_id: str
    pipeline_definition: list[dict]
    status: RunStatus = RunStatus.RUNNING
    error: str | None = None
    stages: list[StageRun] = field(default_factory=list)
    validation_report: dict | None = None
    reports: dict[str, str] | None = None
    feature_schema: dict | None = None
    delta: dict | None = None
    inputs: list[dict] | None = None
    features: list[str] | None = None
    skew: list[dict] | None = None
    experiment: dict | None = None
    result: dict | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def update(self, values: Mapping[str, Any]) -> None:
        """Set the named fields (a stage's `Recorded.record`): a name the record lacks is a declaration error."""
        for name, value in values.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"the run record has no field {name}")
            setattr(self, name, value)


def log_recorded(recorded: Recorded, record_dir: Path) -> None:
    """The rest of what a stage's value records: MLflow params, metrics, tags, artifacts and dataset inputs of
    the active run, and JSON files in `record_dir`."""
    if recorded.params:
        mlflow.log_params(dict(recorded.params))
    if recorded.metrics:
        mlflow.log_metrics(dict(recorded.metrics))
    if recorded.tags:
        mlflow.set_tags(dict(recorded.tags))
    for name, content in recorded.artifacts.items():
        mlflow.log_dict(content, name)
    for path, folder in recorded.artifact_files.items():
        mlflow.log_artifact(path, artifact_path=folder)
    for item in recorded.inputs:
        log_delta_input(item.path, item.version, item.name, item.role)
    for name, content in recorded.files.items():
        write_json(record_dir / name, content)


@dataclass(frozen=True)
class RunContext:
    """What every stage may use: the session, the config, the MLflow run and its commit metadata."""

    spark: SparkSession
    cfg: FeaturelakeConfig
    run_id: str
    commit_info: dict[str, str]


@dataclass(frozen=True)
class JobResult:
    """A finished run: its MLflow run, stage timings, record, and every value its stages wrote."""

    job: str
    run_id: str
    stages: StageLog
    record_path: Path
    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def typed(self, kind: type[R]) -> R:
        """The values as the dataclass `kind`, a field per value by name, so readers use named, typed fields: a
        field with a default is a value a skipped stage may not have written; one without must be there."""
        return kind(**{f.name: self.values[f.name] for f in fields(kind) if f.name in self.values})


def run_job(job: Job, spark: SparkSession, cfg: FeaturelakeConfig, prepared: Any) -> JobResult:
    """Run the job's stages inside one MLflow run; the record is written on every outcome."""
    stages = StageLog(input_bytes=lambda: spark_input_bytes(spark))
    values: dict[str, Any] = {PREPARED: prepared}
    with tracked_run(cfg.tracking, run_name=job.run_name(cfg, prepared)) as run:
        run_id = run.info.run_id
        mlflow.log_params(config_params(cfg))
        record = RunRecord(cfg.job.name, run_id, job.definition())
        ctx = RunContext(spark, cfg, run_id, commit_metadata(cfg, run_id))
        try:
            for stage in job.stages:
                if stage.when is not None and not stage.when(cfg, values):
                    continue
                inputs = [values[name] for name in stage.reads]
                output = stages.run(stage.name, lambda s=stage, i=inputs: s.func(ctx, *i), rows=stage.rows)
                if stage.records is not None:
                    recorded = stage.records(cfg, output)
                    record.update(recorded.record)
                    log_recorded(recorded, Path(cfg.job.run_record_dir))
                if stage.writes:
                    values[stage.writes] = output
            record.status = RunStatus.SUCCEEDED
        except BaseException as err:
            record.status, record.error = RunStatus.FAILED, describe(err)
            if isinstance(err, ValidationFailed):
                mlflow.set_tag("status", "validation_failed")
            raise
        finally:
            record.stages = stages.runs
            try:
                mlflow.log_metrics({f"stage_seconds_{s.name}": s.seconds for s in stages.runs})
                record_path = write_run_record(cfg.job, run_id, record.to_dict(), job.label(cfg))
            except Exception:
                if record.status is not RunStatus.FAILED:
                    raise
                log.warning("could not write the run record of failed run %s", run_id, exc_info=True)
            try:
                spark.catalog.clearCache()
            except Exception:  # a dead session must not hide the run's own error
                log.warning("could not clear the cache after run %s", run_id, exc_info=True)
    return JobResult(job.name, run_id, stages, record_path, values)


def execute(job: Job, cfg: FeaturelakeConfig, spark: SparkSession | None = None) -> JobResult:
    """Run a job as one observed pipeline: its checks that need no Spark first, then its stages.

    Without `spark`, the session the config asks for is started (and a local one stopped at the end);
    a caller that passes its own session keeps it. A failure's trace is logged inside the run, so it
    carries the run's pipeline id.
    """
    from engine.observability.run import observed_pipeline

    check_table_paths(tables_written(cfg))
    with observed_pipeline(cfg.observability, cfg.tracking, job.label(cfg)):
        try:
            prepared = job.prepare(cfg)
            if spark is not None:
                return run_job(job, spark, cfg, prepared)
            from engine.runtime.py4j_bridge import stop_callbacks
            from engine.runtime.session import build_session

            session = build_session(cfg.spark, Path(cfg.job.log_dir))
            try:
                return run_job(job, session, cfg, prepared)
            finally:
                stop_callbacks(session)  # once, before Spark stops: a live callback server blocks the exit
                if cfg.spark.mode == SparkMode.LOCAL:
                    session.stop()
        except Exception:
            failures.error("run failed", exc_info=True)
            raise
