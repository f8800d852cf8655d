"""`job=validate`: read one source, run its checks, gate it, and report; no features.

Use it before any feature job. Passed rows go to `validate.output_path` (when set) as a Delta
version, quarantined rows to the quarantine table; a halting check writes neither.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import mlflow
from pyspark.sql import SparkSession

from engine.config.quality import FileSourceConfig, ValidateConfig, load_checks_file
from engine.config.schema import FeaturelakeConfig, SinkConfig
from engine.errors import ConfigError, ValidationFailed
from engine.pipeline.quality import Published, as_of_time, blocking_message, publish, write_quarantine
from engine.pipeline.stages import StageLog
from engine.quality.validation import validate
from engine.resilience.retry import read_resiliently
from engine.sinks.delta import Commit, write_delta
from engine.sources.files import SourceData, check_source, read_source
from engine.tracking.mlflow_runs import commit_metadata, config_params, tracked_run, write_run_record


@dataclass(frozen=True)
class ValidateResult:
    run_id: str
    stages: StageLog
    published: Published
    passed_rows: int
    quarantine: Commit | None
    output: Commit | None


def check_validate_job(cfg: FeaturelakeConfig) -> ValidateConfig:
    """Before Spark: a source is selected, its paths exist, its schema parses, its options keep every line."""
    if cfg.validate is None:
        raise ConfigError("validate: no source selected (validate=<name>)")
    spec = cfg.validate
    for source in [spec.source, *spec.references]:
        check_source(source)
    if spec.checks_file:
        spec = replace(spec, checks=load_checks_file(spec.checks_file), checks_file="")
    return spec


def run_validate(spark: SparkSession, cfg: FeaturelakeConfig, spec: ValidateConfig) -> ValidateResult:
    """Validate the source inside one MLflow run; raise ValidationFailed (after reporting) when halted."""
    stages = StageLog()

    def read(source: FileSourceConfig) -> SourceData:
        return read_resiliently(lambda: read_source(spark, source), source=source.name, cfg=cfg.resilience)

    with tracked_run(cfg.tracking, run_name=f"validate-{spec.source.name}") as run:
        run_id = run.info.run_id
        mlflow.log_params(config_params(cfg))
        commit_info = commit_metadata(cfg, run_id)
        try:
            source = stages.run("read", lambda: read(spec.source), rows=lambda s: s.rows)
            references = {r.name: read(r).well_formed for r in spec.references}
            validated = stages.run(
                "verify",
                lambda: validate(
                    source,
                    list(spec.checks),
                    cfg.quality,
                    run_id=run_id,
                    as_of=as_of_time(cfg.quality),
                    datasets=references,
                ),
            )
            published = publish(
                spark, validated.report, cfg.quality, commit_info, f"validate-{spec.source.name}-{run_id}"
            )
            record = {"job": cfg.job.name, "run_id": run_id, "validation_report": published.report.to_dict()}
            if validated.report.outcome == "halt":
                mlflow.set_tag("status", "validation_failed")
                write_run_record(cfg.job, run_id, record | {"stages": stages.to_list()})
                raise ValidationFailed(blocking_message(published, "nothing was written"))
            quarantine = stages.run(
                "quarantine", lambda: write_quarantine([validated], cfg.quality, commit_info, run_id)
            )
            output = None
            if spec.output_path:
                sink = SinkConfig(path=spec.output_path, mode="overwrite")
                identity = {"job": "validate", "source": spec.source.name, "run_id": run_id}
                output = stages.run(
                    "write",
                    lambda: write_delta(validated.passed, sink, commit_info, identity),
                    rows=lambda c: c.rows_written,
                )
            write_run_record(cfg.job, run_id, record | {"stages": stages.to_list()})
        finally:
            spark.catalog.clearCache()
    return ValidateResult(run_id, stages, published, validated.passed_rows, quarantine, output)
