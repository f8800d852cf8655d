"""`job=validate`: read one source, run its checks, gate it, and report; no features.

Use it before any feature job. Passed rows go to `validate.output_path` (when set) as a Delta
version, quarantined rows to the quarantine table; a halting check writes neither.
"""

from __future__ import annotations

from dataclasses import replace

from engine.config.quality import FileSourceConfig, ValidateConfig, load_checks_file
from engine.config.schema import FeaturelakeConfig, SinkConfig, SinkMode
from engine.errors import ConfigError
from engine.pipeline.quality import Published, as_of_time, halt, publish_to_run, published_record, write_quarantine
from engine.pipeline.runner import PREPARED, Job, Recorded, RunContext, Stage
from engine.quality.validation import Validated, validate
from engine.runtime.datasets import SourceData
from engine.sinks.delta import Commit
from engine.sinks.sink import DELTA
from engine.sources.files import check_source, read_source_resiliently


def prepare(cfg: FeaturelakeConfig) -> ValidateConfig:
    """Before Spark: a source is selected, its paths exist, its schema parses, its options keep every line."""
    if cfg.validate is None:
        raise ConfigError("validate: no source selected (validate=<name>)")
    spec = cfg.validate
    for source in [spec.source, *spec.references]:
        check_source(source)
    if spec.checks_file:
        spec = replace(spec, checks=load_checks_file(spec.checks_file), checks_file="")
    return spec


def _read(ctx: RunContext, source: FileSourceConfig) -> SourceData:
    """The source uncached: a Parquet or Delta source is counted from its footers and read only by the checks
    that need it (the sample's row groups, the full-data pass's columns)."""
    return read_source_resiliently(ctx.spark, source, ctx.cfg.resilience, allow_empty=source.allow_empty, cached=False)


def read(ctx: RunContext, spec: ValidateConfig) -> SourceData:
    return _read(ctx, spec.source)


def verify(ctx: RunContext, spec: ValidateConfig, source: SourceData) -> Validated:
    """The source's checks; the reference sources serve its referential checks."""
    references = {r.name: _read(ctx, r).well_formed for r in spec.references}
    as_of = as_of_time(ctx.cfg.quality)
    origin = spec.source.path + (f" @ version {spec.source.version}" if spec.source.version is not None else "")
    return validate(
        source,
        list(spec.checks),
        ctx.cfg.quality,
        run_id=ctx.run_id,
        as_of=as_of,
        datasets=references,
        origin=f"{spec.source.format} {origin}",
    )


def publish_report(ctx: RunContext, spec: ValidateConfig, validated: Validated) -> Published:
    return publish_to_run(ctx, validated.report, f"validate-{spec.source.name}-{ctx.run_id}")


def gate(ctx: RunContext, validated: Validated, published: Published) -> Validated:
    """Stop the run before any write when a blocking check failed (the report is published)."""
    halt(ctx, published)
    return validated


def quarantine(ctx: RunContext, validated: Validated) -> Commit | None:
    return write_quarantine([validated], ctx.cfg.quality, ctx.commit_info, ctx.run_id)


def write(ctx: RunContext, spec: ValidateConfig, validated: Validated) -> Commit:
    """The passed rows as a new version of `validate.output_path`."""
    sink = SinkConfig(path=spec.output_path, mode=SinkMode.OVERWRITE)
    identity = {"job": "validate", "source": spec.source.name, "run_id": ctx.run_id}
    return DELTA.write(validated.passed, sink, ctx.commit_info, identity)


VALIDATE = Job(
    name="validate",
    prepare=prepare,
    run_name=lambda _, spec: f"validate-{spec.source.name}",
    stages=(
        Stage(
            "read",
            read,
            (PREPARED,),
            "source",
            rows=lambda s: s.rows,
            records=lambda _, s: Recorded(metrics={f"rows_read_{s.name}": s.rows}),
        ),
        Stage("verify", verify, (PREPARED, "source"), "validated"),
        Stage("publish", publish_report, (PREPARED, "validated"), "published", records=published_record),
        Stage("gate", gate, ("validated", "published"), "passed"),
        Stage("quarantine", quarantine, ("passed",), "quarantine"),
        Stage(
            "write",
            write,
            (PREPARED, "passed"),
            "output",
            when=lambda _, values: bool(values[PREPARED].output_path),
            rows=lambda c: c.rows_written,
        ),
    ),
)
