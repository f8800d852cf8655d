"""An observed pipeline run: a pipeline id, a root span, and the run's metrics exported when it ends.

Exporting is best effort: an unreachable push gateway or tracking store is a warning, never the
reason a feature job fails, and never hides the job's own error.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.config.observability import ObservabilityConfig
from engine.config.schema import TrackingConfig
from engine.observability.context import Pipeline, reset_pipeline, set_pipeline
from engine.observability.metrics import PipelineMetrics
from engine.observability.tracing import Tracing, span

log = logging.getLogger("engine.observability")
file_log = logging.getLogger("featurelake.observability")  # not a console logger


def _log_to_mlflow(pipeline: Pipeline, tracking: TrackingConfig, textfile: Path | None) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.uri)
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, 0) for key, value in sorted(pipeline.metrics.samples().items())]
    for run_id in pipeline.mlflow_run_ids:
        client.log_batch(run_id, metrics=metrics)
        if textfile is not None:
            client.log_artifact(run_id, str(textfile), artifact_path="metrics")


def export_metrics(pipeline: Pipeline, cfg: ObservabilityConfig, tracking: TrackingConfig) -> Path | None:
    """Write the textfile, push to the gateway, log to the job's MLflow run; return the textfile."""
    textfile = None
    if cfg.metrics.textfile_dir:
        try:
            textfile = pipeline.metrics.write_textfile(Path(cfg.metrics.textfile_dir))
            file_log.info("metrics written to %s", textfile)
        except OSError as err:
            log.warning("metrics: cannot write the textfile in %s: %s", cfg.metrics.textfile_dir, err)
    if cfg.metrics.pushgateway:
        try:
            pipeline.metrics.push(cfg.metrics.pushgateway, cfg.metrics.push_timeout_seconds)
        except OSError as err:
            log.warning("metrics: push gateway %s unreachable: %s", cfg.metrics.pushgateway, err)
    if cfg.metrics.log_to_mlflow and pipeline.mlflow_run_ids:
        try:
            _log_to_mlflow(pipeline, tracking, textfile)
        except Exception as err:  # the tracking store's own errors vary by backend
            log.warning("metrics: cannot log to MLflow: %s: %s", type(err).__name__, err)
    return textfile


@contextmanager
def observed_pipeline(cfg: ObservabilityConfig, tracking: TrackingConfig, job: str) -> Iterator[Pipeline]:
    """Run the body as pipeline `job`: events and spans carry its id; metrics are exported at the end."""
    pipeline_id = uuid.uuid4().hex
    tracing = Tracing(cfg.tracing, job, pipeline_id) if cfg.tracing.enabled and cfg.tracing.exporter != "none" else None
    pipeline = Pipeline(pipeline_id, job, PipelineMetrics(job, pipeline_id), tracing.tracer if tracing else None)
    token = set_pipeline(pipeline)
    started = time.perf_counter()
    status = "failed"
    try:
        with span(f"pipeline {job}", pipeline_id=pipeline_id):
            yield pipeline
        status = "succeeded"
    finally:
        pipeline.metrics.observe_duration(time.perf_counter() - started, status)
        export_metrics(pipeline, cfg, tracking)
        if tracing is not None:
            tracing.shutdown()
        reset_pipeline(token)
