"""A validation report as events: a quality score per source, its freshness lag, each failed check.

The score is the share of a source's evaluated checks (not skipped) that passed. A failed schema
check is also `schema_drift`: the source's stored columns no longer match what the checks expect.
"""

from __future__ import annotations

import logging

from engine.config.check_kinds import CHECK_KINDS, Bound, Evaluator
from engine.observability.events import emit
from engine.quality.states import CheckStatus
from engine.quality.verify import ValidationReport


def announce(report: ValidationReport) -> None:
    """Emit the report's events, which also set the run's quality, freshness and failure metrics."""
    for source in sorted({c.dataset for c in report.checks}):
        checks = [c for c in report.checks if c.dataset == source]
        evaluated = [c for c in checks if c.status != CheckStatus.SKIPPED]
        passed = sum(c.passed for c in evaluated)
        emit(
            "quality_scored",
            f"{source}: {passed} of {len(evaluated)} checks passed",
            data_source=source,
            record_count=report.rows.get(source),
            score=passed / len(evaluated) if evaluated else 1.0,
            checks=len(evaluated),
        )
        for check in checks:
            kind = CHECK_KINDS.find(check.kind)  # None for the engine's own checks (malformed lines)
            if kind is not None and kind.bound == Bound.LAG and check.metric is not None:
                emit(
                    "freshness_lag",
                    f"{source}: newest {check.columns[0]} is {check.metric:,.0f} s behind the as-of time",
                    data_source=source,
                    record_count=report.rows.get(source),
                    lag_seconds=check.metric,
                    check=check.name,
                    expected=check.expected,
                )
            if check.status != CheckStatus.FAILED:
                continue
            if kind is not None and kind.evaluator == Evaluator.SCHEMA:
                emit(
                    "schema_drift",
                    f"{source}: stored schema differs from check {check.name}: {check.detail}",
                    data_source=source,
                    level=logging.WARNING,
                    check=check.name,
                    detail=check.detail,
                )
            emit(
                "validation_failed",
                f"{source}: check {check.name} failed ({check.severity}, {check.action}): "
                f"{check.metric if check.metric is not None else check.detail} vs {check.expected}",
                data_source=source,
                record_count=report.rows.get(source),
                level=logging.WARNING if check.blocking else logging.INFO,
                check=check.name,
                kind=check.kind,
                severity=check.severity,
                action=check.action,
                metric=check.metric,
                expected=check.expected,
            )
