"""One dataset through the quality stage: verify in layers, then gate (tag, count, split).

Returns the report, the rows that continue and the rows for quarantine; writing them is the
caller's edge. Checks run on well-formed rows only; malformed lines go straight to quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from pyspark.sql import DataFrame

from engine.config.check_kinds import Layer, Severity
from engine.config.quality import CheckConfig, GateAction, QualityConfig
from engine.quality.gates import count_failures, gates, passed_rows, quarantine_rows, tag_failures
from engine.quality.states import CheckStatus, Outcome
from engine.quality.verify import CheckResult, ValidationReport, verify, with_quarantined
from engine.runtime.datasets import SourceData


@dataclass(frozen=True)
class Validated:
    """A dataset after its checks and gates."""

    report: ValidationReport
    passed: DataFrame
    quarantine: DataFrame | None
    passed_rows: int


def malformed_lines(source: SourceData, limit: float) -> CheckResult:
    """The source's share of malformed lines as a check: within the limit they are quarantined, above it
    the source is not trusted and the run halts."""
    share = source.malformed / source.rows
    return CheckResult(
        dataset=source.name,
        name=f"{source.name}_malformed_lines",
        kind="malformed_lines",
        layer=Layer.SCHEMA,
        severity=Severity.ERROR,
        action=GateAction.HALT_PIPELINE,
        columns=[],
        expected=f"at most {limit:.2%} of lines malformed",
        status=CheckStatus.FAILED if share > limit else CheckStatus.PASSED,
        max=limit,
        metric=share,
        detail=f"{source.malformed:,} of {source.rows:,} lines malformed (quality.max_malformed_share={limit:g})",
    )


def validate(
    source: SourceData,
    checks: list[CheckConfig],
    cfg: QualityConfig,
    *,
    run_id: str,
    as_of: datetime,
    datasets: dict[str, DataFrame] | None = None,
    origin: str = "",
) -> Validated:
    """Verify `source` (read from `origin`: a path, and version) and apply the quarantine gate; halting and
    stale gates are the job's to act on."""
    report = verify(
        source.well_formed,
        source.name,
        checks,
        cfg,
        rows=source.rows - source.malformed,
        as_of=as_of,
        stored_schema=source.stored_schema,
        datasets=datasets,
        row_groups=source.row_groups,
    )
    if source.malformed:
        report = replace(report, checks=[*report.checks, malformed_lines(source, cfg.max_malformed_share)])
    gated = gates(report)
    report = replace(
        report,
        malformed={source.name: source.malformed},
        outcome=gated.outcome,
        sources={source.name: origin} if origin else {},
        run_id=run_id,
    )
    if report.outcome == Outcome.HALT:
        return Validated(report, source.well_formed, None, 0)
    failed = {c.name for c in gated.quarantine}
    quarantine_checks = [c for c in checks if c.name in failed]
    if not quarantine_checks and not source.malformed:
        return Validated(report, source.well_formed, None, source.rows)
    tagged = tag_failures(source.df, quarantine_checks, as_of)
    kept, quarantined, per_check = count_failures(tagged, sorted(failed))
    report = with_quarantined(report, source.name, per_check, quarantined)
    return Validated(report, passed_rows(tagged), quarantine_rows(tagged, source.name, run_id), kept)
