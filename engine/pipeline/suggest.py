"""`job=suggest_checks`: profile a source and write a starter checks YAML for `job=validate`.

The file holds the source and its suggested checks; run it with
`scripts/run job=validate validate.checks_file=<file>` (same source), or copy it under conf/validate/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from engine.config.quality import SuggestConfig
from engine.config.schema import FeaturelakeConfig
from engine.errors import ConfigError
from engine.pipeline.runner import PREPARED, Job, RunContext, Stage
from engine.quality.inputs import SourceData
from engine.quality.profile import ColumnProfile, profile, suggest
from engine.resilience.retry import read_resiliently
from engine.sources.files import check_source, read_source


@dataclass(frozen=True)
class Suggested:
    """The profiled rows, each column's profile, and the checks suggested from them."""

    rows: int
    profiles: list[ColumnProfile]
    checks: list[dict]


def prepare(cfg: FeaturelakeConfig) -> SuggestConfig:
    if cfg.suggest is None:
        raise ConfigError("suggest: no source selected (suggest=<name>)")
    check_source(cfg.suggest.source)
    return cfg.suggest


def read(ctx: RunContext, spec: SuggestConfig) -> SourceData:
    source = spec.source
    return read_resiliently(lambda: read_source(ctx.spark, source), source=source.name, cfg=ctx.cfg.resilience)


def profile_source(ctx: RunContext, spec: SuggestConfig, source: SourceData) -> Suggested:
    """Profile the well-formed rows and suggest a check per column property that holds."""
    rows = source.rows - source.malformed
    profiles = profile(source.well_formed, rows, spec.max_allowed_values)
    return Suggested(rows, profiles, suggest(profiles, rows, spec.source.name))


def write_checks(ctx: RunContext, spec: SuggestConfig, suggested: Suggested) -> Path:
    """`{source, checks}` as YAML, written atomically."""
    path = Path(spec.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"source": asdict(spec.source), "checks": suggested.checks}
    partial = path.with_suffix(".partial")
    partial.write_text(
        f"# Suggested from {suggested.rows:,} rows of {spec.source.path}; review before use.\n"
        + yaml.safe_dump(content, sort_keys=False, width=120)
    )
    partial.replace(path)
    ctx.record.result = {"checks_file": str(path), "checks": len(suggested.checks)}
    return path


SUGGEST_CHECKS = Job(
    name="suggest_checks",
    prepare=prepare,
    run_name=lambda _, spec: f"suggest-{spec.source.name}",
    stages=(
        Stage("read", read, (PREPARED,), "source", rows=lambda s: s.rows),
        Stage("profile", profile_source, (PREPARED, "source"), "suggested", rows=lambda s: s.rows),
        Stage("write_checks", write_checks, (PREPARED, "suggested"), "path"),
    ),
)
