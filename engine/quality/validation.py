"""One dataset through the quality stage: verify in layers, then gate (tag, count, split).

Returns the report, the rows that continue and the rows for quarantine; writing them is the
caller's edge. Checks run on well-formed rows only; malformed lines go straight to quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from pyspark.sql import DataFrame

from engine.config.quality import CheckConfig, QualityConfig
from engine.quality.gates import count_failures, gates, passed_rows, quarantine_rows, tag_failures
from engine.quality.verify import ValidationReport, verify, with_quarantined
from engine.sources.files import SourceData


@dataclass(frozen=True)
class Validated:
    """A dataset after its checks and gates."""

    report: ValidationReport
    passed: DataFrame
    quarantine: DataFrame | None
    passed_rows: int


def validate(
    source: SourceData,
    checks: list[CheckConfig],
    cfg: QualityConfig,
    *,
    run_id: str,
    as_of: datetime,
    datasets: dict[str, DataFrame] | None = None,
) -> Validated:
    """Verify `source` and apply the quarantine gate; halting and stale gates are the job's to act on."""
    report = verify(
        source.well_formed,
        source.name,
        checks,
        cfg,
        rows=source.rows - source.malformed,
        as_of=as_of,
        stored_schema=source.stored_schema,
        datasets=datasets,
    )
    gated = gates(report)
    report = replace(report, malformed={source.name: source.malformed}, outcome=gated.outcome)
    if report.outcome == "halt":
        return Validated(report, source.well_formed, None, 0)
    failed = {c.name for c in gated.quarantine}
    quarantine_checks = [c for c in checks if c.name in failed]
    if not quarantine_checks and not source.malformed:
        return Validated(report, source.well_formed, None, source.rows)
    tagged = tag_failures(source.df, quarantine_checks)
    kept, quarantined, per_check = count_failures(tagged, sorted(failed))
    report = with_quarantined(report, source.name, per_check, quarantined)
    return Validated(report, passed_rows(tagged), quarantine_rows(tagged, source.name, run_id), kept)
