"""Prometheus metrics of one run, exported as a textfile, to a push gateway, and to MLflow.

Each run has its own registry: the textfile is the state of the last run of a job, which is what
node_exporter's textfile collector and a push gateway (grouped by job) expect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    push_to_gateway,
    write_to_textfile,
)
from prometheus_client.parser import text_string_to_metric_families

DURATION_BUCKETS = (60.0, 300.0, 900.0, 3600.0)
disable_created_metrics()  # `*_created` timestamps say nothing a run's textfile needs
M = TypeVar("M", Counter, Gauge, Histogram)


@dataclass(frozen=True)
class MetricSpec(Generic[M]):
    """One metric as declared: its kind, name, help text and label names (and a histogram's buckets)."""

    kind: type[M]
    name: str
    text: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    def create(self, registry: CollectorRegistry) -> M:
        """The metric, registered in `registry`."""
        options = {"buckets": self.buckets} if self.buckets else {}
        return self.kind(self.name, self.text, list(self.labels), registry=registry, **options)


SOURCE = ("pipeline", "data_source")
DURATION = MetricSpec(
    Histogram, "pipeline_duration_seconds", "Wall time of a pipeline run", ("pipeline", "status"), DURATION_BUCKETS
)
QUALITY = MetricSpec(Gauge, "data_quality_score", "Share of a source's evaluated checks that passed (0..1)", SOURCE)
FEATURES = MetricSpec(Counter, "features_computed", "Feature rows computed and written", ("pipeline", "feature_table"))
FAILURES = MetricSpec(Counter, "validation_failures", "Data-quality checks that failed", (*SOURCE, "severity"))
FRESHNESS = MetricSpec(
    Gauge, "data_freshness_lag_seconds", "Lag of a source's newest event time behind the run's as-of time", SOURCE
)
RUN_INFO = MetricSpec(Gauge, "pipeline_run_info", "The run these metrics describe", ("pipeline", "pipeline_id"))


class PipelineMetrics:
    """The five pipeline metrics, labelled by job (and data source or feature table where they apply)."""

    def __init__(self, job: str, pipeline_id: str) -> None:
        self.job = job
        self.registry = registry = CollectorRegistry()
        self.duration = DURATION.create(registry)
        self.quality = QUALITY.create(registry)
        self.features = FEATURES.create(registry)
        self.failures = FAILURES.create(registry)
        self.freshness = FRESHNESS.create(registry)
        self.info = RUN_INFO.create(registry)
        self.info.labels(job, pipeline_id).set(1)

    def record(self, event: str, data_source: str | None, record_count: int | None, fields: Mapping) -> None:
        """Update the metrics an event implies."""
        if event == "feature_computed":
            self.features.labels(self.job, str(fields.get("feature_table", data_source))).inc(record_count or 0)
        elif event == "quality_scored":
            self.quality.labels(self.job, data_source or "").set(float(fields["score"]))
            for severity in ("error", "warning"):
                self.failures.labels(self.job, data_source or "", severity).inc(0)
        elif event == "validation_failed":
            self.failures.labels(self.job, data_source or "", str(fields.get("severity", "error"))).inc()
        elif event == "freshness_lag":
            self.freshness.labels(self.job, data_source or "").set(float(fields["lag_seconds"]))

    def observe_duration(self, seconds: float, status: str) -> None:
        self.duration.labels(self.job, status).observe(seconds)

    def samples(self) -> dict[str, float]:
        """Flat name -> value pairs for MLflow (`data_quality_score.flights`); histogram as its sum and count."""
        flat: dict[str, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_bucket") or sample.name == "pipeline_run_info":
                    continue
                keys = [v for k, v in sample.labels.items() if k not in ("pipeline", "status") and v]
                flat[".".join([sample.name, *keys])] = sample.value
        return flat

    def write_textfile(self, directory: Path) -> Path:
        """Write `<directory>/featurelake_<job>.prom` atomically (prometheus_client renames a temp file)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"featurelake_{self.job}.prom"
        write_to_textfile(str(path), self.registry)
        return path

    def push(self, gateway: str, timeout: float) -> None:
        push_to_gateway(gateway, job=f"featurelake_{self.job}", registry=self.registry, timeout=timeout)


def read_textfile(path: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The samples of a textfile by metric name: what a scraper would see."""
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            families.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return families
