"""`job=suggest_checks`: profile a source with Deequ and write a starter checks YAML for `job=validate`.

Deequ's column profiler and constraint suggestion propose the checks; each is then verified on
the same data (with Deequ), and one that does not hold there (an approximately unique key that is
not unique) is left out, so the file passes on the data it came from. The file holds the source and
its checks; run it with
`scripts/run job=validate validate.checks_file=<file>` (same source), or copy it under conf/validate/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from engine.config.quality import CheckConfig, SuggestConfig
from engine.config.schema import FeaturelakeConfig
from engine.errors import ConfigError
from engine.pipeline.quality import as_of_time
from engine.pipeline.runner import PREPARED, Job, Recorded, RunContext, Stage
from engine.quality.profile import ColumnProfile, Suggestion, baseline, run_suggestions
from engine.quality.verify import verify
from engine.runtime.datasets import SourceData
from engine.sources.files import check_source, read_source_resiliently


@dataclass(frozen=True)
class Suggested:
    """The profiled rows, each column's profile, Deequ's suggestions, and the checks that hold."""

    rows: int
    profiles: list[ColumnProfile]
    suggestions: list[Suggestion]
    checks: list[dict]
    left_out: list[str]


def prepare(cfg: FeaturelakeConfig) -> SuggestConfig:
    if cfg.suggest is None:
        raise ConfigError("suggest: no source selected (suggest=<name>)")
    check_source(cfg.suggest.source)
    return cfg.suggest


def read(ctx: RunContext, spec: SuggestConfig) -> SourceData:
    source = spec.source
    return read_source_resiliently(ctx.spark, source, ctx.cfg.resilience)


def profile_source(ctx: RunContext, spec: SuggestConfig, source: SourceData) -> Suggested:
    """Profile the well-formed rows with Deequ, turn its suggestions into checks, keep those that hold."""
    rows = source.rows - source.malformed
    profiles, suggestions, _ = run_suggestions(source.well_formed)
    proposed: dict[str, dict] = {}
    for check in [*baseline(profiles, spec.source.name), *(s.check for s in suggestions if s.check)]:
        too_many = check["kind"] == "allowed_values" and len(check["values"]) > spec.max_allowed_values
        if not too_many:
            proposed.setdefault(check["name"], check)
    configs = [CheckConfig(**check) for check in proposed.values()]
    report = verify(
        source.well_formed, spec.source.name, configs, ctx.cfg.quality, rows=rows, as_of=as_of_time(ctx.cfg.quality)
    )
    failed = {c.name for c in report.failed}
    kept = [c for name, c in proposed.items() if name not in failed]
    return Suggested(rows, profiles, suggestions, kept, sorted(failed))


@dataclass(frozen=True)
class ChecksFile:
    """The checks YAML written, and what it holds."""

    path: Path
    suggested: Suggested


def write_checks(ctx: RunContext, spec: SuggestConfig, suggested: Suggested) -> ChecksFile:
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
    return ChecksFile(path, suggested)


def _written_recorded(_: FeaturelakeConfig, written: ChecksFile) -> Recorded:
    suggested = written.suggested
    result = {
        "checks_file": str(written.path),
        "checks": len(suggested.checks),
        "deequ_suggestions": len(suggested.suggestions),
        "left_out": suggested.left_out,
    }
    return Recorded(record={"result": result})


SUGGEST_CHECKS = Job(
    name="suggest_checks",
    prepare=prepare,
    run_name=lambda _, spec: f"suggest-{spec.source.name}",
    stages=(
        Stage("read", read, (PREPARED,), "source", rows=lambda s: s.rows),
        Stage("profile", profile_source, (PREPARED, "source"), "suggested", rows=lambda s: s.rows),
        Stage("write_checks", write_checks, (PREPARED, "suggested"), "written", records=_written_recorded),
    ),
)
