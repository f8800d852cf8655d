"""Observability config: log level and format, Prometheus metrics, OpenTelemetry tracing."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine.config.choices import one_of, require
from engine.errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SPAN_EXPORTERS = ("console", "otlp", "none")


@dataclass
class MetricsConfig:
    """Where a run's metrics go: a Prometheus textfile (node_exporter's textfile collector reads it), a push
    gateway, or both. An empty value turns that exporter off."""

    textfile_dir: str = "output/metrics"
    pushgateway: str = ""
    push_timeout_seconds: float = 5.0
    log_to_mlflow: bool = True

    def __post_init__(self) -> None:
        if self.push_timeout_seconds <= 0:
            raise ConfigError(f"observability.metrics.push_timeout_seconds: {self.push_timeout_seconds} must be > 0")


@dataclass
class TracingConfig:
    """OpenTelemetry spans, one per stage; `sampling_ratio` of runs are traced (all stages of a run together)."""

    enabled: bool = True
    sampling_ratio: float = 0.15
    exporter: str = "console"
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    console_file: str = "output/logs/traces.jsonl"
    service_name: str = "featurelake"

    def __post_init__(self) -> None:
        ratio = self.sampling_ratio
        require("observability.tracing.sampling_ratio", ratio, 0.0 <= ratio <= 1.0, "is not in [0, 1]")
        one_of("observability.tracing.exporter", self.exporter, SPAN_EXPORTERS)
        if self.exporter == "otlp" and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"observability.tracing.otlp_endpoint: '{self.otlp_endpoint}' is not an http(s) URL")


@dataclass
class ObservabilityConfig:
    """Logs: JSON lines in `job.log_dir/featurelake.log` at `log_level`; the console stays human."""

    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        self.log_level = self.log_level.upper()
        one_of("observability.log_level", self.log_level, LOG_LEVELS)

    @property
    def level(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]
