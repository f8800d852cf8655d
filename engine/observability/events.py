"""Structured events: one JSON log line each, carrying the pipeline id, data source and record count.

The metrics of a run follow from its events (see `PipelineMetrics.record`), so a number on a
dashboard and a line in the log can never disagree.
"""

from __future__ import annotations

import logging

from engine.observability.context import current_pipeline

EVENTS = (
    "feature_computed",
    "materialization_done",
    "freshness_lag",
    "schema_drift",
    "source_unavailable",
    "validation_failed",
    "store_write_failed",
    "quality_scored",
)
EVENT_LOGGER = "engine.events"
log = logging.getLogger(EVENT_LOGGER)


def emit(
    event: str,
    message: str,
    *,
    data_source: str | None = None,
    record_count: int | None = None,
    level: int = logging.INFO,
    **fields: object,
) -> None:
    """Log `event` with its fields and update the current run's metrics from it."""
    if event not in EVENTS:
        raise ValueError(f"unknown event '{event}'; known: {', '.join(EVENTS)}")
    log.log(level, message, extra={"event": event, "data_source": data_source, "record_count": record_count, **fields})
    pipeline = current_pipeline()
    if pipeline is not None:
        pipeline.metrics.record(event, data_source, record_count, fields)
