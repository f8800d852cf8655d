"""`job=suggest_checks`: profile a source and write a starter checks YAML for `job=validate`.

The file holds the source and its suggested checks; run it with
`scripts/run job=validate validate.checks_file=<file>` (same source), or copy it under conf/validate/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from pyspark.sql import SparkSession

from engine.config.quality import SuggestConfig
from engine.config.schema import FeaturelakeConfig
from engine.errors import ConfigError
from engine.quality.profile import ColumnProfile, profile, suggest
from engine.resilience.retry import read_resiliently
from engine.sources.files import check_source, read_source


@dataclass(frozen=True)
class SuggestResult:
    source: str
    rows: int
    profiles: list[ColumnProfile]
    checks: list[dict]
    path: Path


def check_suggest_job(cfg: FeaturelakeConfig) -> SuggestConfig:
    if cfg.suggest is None:
        raise ConfigError("suggest: no source selected (suggest=<name>)")
    check_source(cfg.suggest.source)
    return cfg.suggest


def run_suggest(spark: SparkSession, cfg: FeaturelakeConfig, spec: SuggestConfig) -> SuggestResult:
    """Profile the well-formed rows of the source and write `{source, checks}` as YAML, atomically."""
    source = read_resiliently(lambda: read_source(spark, spec.source), source=spec.source.name, cfg=cfg.resilience)
    rows = source.rows - source.malformed
    try:
        profiles = profile(source.well_formed, rows, spec.max_allowed_values)
    finally:
        source.df.unpersist()
    checks = suggest(profiles, rows, spec.source.name)
    path = Path(spec.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"source": asdict(spec.source), "checks": checks}
    partial = path.with_suffix(".partial")
    partial.write_text(
        f"# Suggested from {rows:,} rows of {spec.source.path}; review before use.\n"
        + yaml.safe_dump(content, sort_keys=False, width=120)
    )
    partial.replace(path)
    return SuggestResult(spec.source.name, rows, profiles, checks, path)
