"""The quality stage's edges, shared by every job: the as-of time, quarantine writes, publishing the report
(anomalies against the metrics history, the metrics append, JSON and HTML) and what the run records of it,
and the halt gate."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from engine.config.quality import GateAction, QualityConfig
from engine.config.schema import SinkConfig, SinkMode
from engine.errors import ValidationFailed
from engine.pipeline.runner import Recorded, RunContext
from engine.quality.events import announce
from engine.quality.history import anomalies, metric_history, metric_rows, metrics_frame
from engine.quality.report import write_reports
from engine.quality.states import Outcome
from engine.quality.validation import Validated
from engine.quality.verify import ValidationReport
from engine.sinks.delta import Commit
from engine.sinks.sink import DELTA


@dataclass(frozen=True)
class Published:
    report: ValidationReport
    json_path: Path
    html_path: Path


def as_of_time(cfg: QualityConfig) -> datetime:
    """The run's as-of time (UTC, naive as Spark timestamps are): `quality.as_of` (validated with the
    config), or now."""
    if not cfg.as_of:
        return datetime.now(UTC).replace(tzinfo=None)
    parsed = datetime.fromisoformat(cfg.as_of)
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def blocking_message(published: Published, written: str) -> str:
    """The one-line error of a halted run: the halting checks, what was written, where the report is."""
    names = [c.name for c in published.report.checks if c.blocking and c.action == GateAction.HALT_PIPELINE]
    return f"{len(names)} blocking check(s) failed: {', '.join(names)}; {written} (report: {published.html_path})"


def write_quarantine(
    validated: list[Validated], cfg: QualityConfig, commit_info: dict[str, str], run_id: str
) -> Commit | None:
    """Append every dataset's quarantined rows to the quarantine table in one commit (once per run)."""
    frames = [v.quarantine for v in validated if v.quarantine is not None]
    if not frames:
        return None
    rows: DataFrame = reduce(DataFrame.unionByName, frames)
    sink = SinkConfig(path=cfg.quarantine_path, mode=SinkMode.APPEND)
    return DELTA.write(rows, sink, commit_info, {"quarantine_of_run": run_id})


def publish(
    spark: SparkSession, report: ValidationReport, cfg: QualityConfig, commit_info: dict[str, str], stem: str
) -> Published:
    """Add anomalies against the previous run, append this run's metrics, write and log both reports, and
    announce the report's events (quality score, freshness lag, failed checks)."""
    announce(report)
    run_id = commit_info["run_id"]
    current = metric_rows(report, run_id, datetime.now(UTC).replace(tzinfo=None))
    report = replace(
        report,
        anomalies=report.anomalies
        + anomalies(spark, current, metric_history(spark, cfg.metrics_path, run_id), cfg.anomaly),
    )
    metrics_sink = SinkConfig(path=cfg.metrics_path, mode=SinkMode.APPEND)
    DELTA.write(metrics_frame(spark, current), metrics_sink, commit_info, {"metrics_of_run": run_id})
    json_path, html_path = write_reports(report, Path(cfg.report_dir), stem, f"featurelake validation: {stem}")
    return Published(report, json_path, html_path)


def publish_to_run(ctx: RunContext, report: ValidationReport, stem: str) -> Published:
    return publish(ctx.spark, report, ctx.cfg.quality, ctx.commit_info, stem)


def published_record(_: object, published: Published) -> Recorded:
    """The report in the run record with the paths of its JSON and HTML, both logged, and its counts as metrics."""
    report, failed = published.report, published.report.failed
    return Recorded(
        record={
            "validation_report": report.to_dict(),
            "reports": {"json": str(published.json_path), "html": str(published.html_path)},
        },
        metrics={
            "checks_passed": len(report.checks) - len(failed),
            "checks_failed": len(failed),
            "rows_quarantined": sum(report.quarantined.values()),
            "rows_malformed": sum(report.malformed.values()),
            "anomalies": len(report.anomalies),
            "features_drifted": sum(1 for d in report.drift if d.drifted),
            "served_cached_features": int(report.outcome == Outcome.USE_CACHED_FEATURES),
        },
        artifact_files={str(published.json_path): "validation", str(published.html_path): "validation"},
    )


def halt(_: RunContext, published: Published) -> None:
    """The halt gate: a run whose report halts stops here, after its report is published, before any write."""
    if published.report.outcome == Outcome.HALT:
        raise ValidationFailed(blocking_message(published, "nothing was written"))


def halting(_: object, values: dict) -> bool:
    """`Stage.when` of the stages that publish and halt a report that halts (values["report"])."""
    return values["report"].outcome == Outcome.HALT
