"""OpenTelemetry tracing: a span per run and per stage, sampled per run, exported to a file or OTLP.

Sampling is decided once per trace (`ParentBased(TraceIdRatioBased)`), so a sampled run has all its
stage spans and an unsampled one costs nothing. The provider is per run, never the global one,
so two runs in one process (tests, notebooks) keep their own settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span

from engine.config.observability import TracingConfig
from engine.observability.context import current_pipeline


def _one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


class Tracing:
    """A run's tracer provider and the file its console exporter writes to."""

    def __init__(self, cfg: TracingConfig, job: str, pipeline_id: str) -> None:
        resource = Resource.create(
            {"service.name": cfg.service_name, "featurelake.job": job, "featurelake.pipeline_id": pipeline_id}
        )
        self.provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(cfg.sampling_ratio)))
        self._out: IO[str] | None = None
        if cfg.exporter == "console":
            path = Path(cfg.console_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = path.open("a")
            exporter = ConsoleSpanExporter(out=self._out, formatter=_one_line)
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif cfg.exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(endpoint=cfg.otlp_endpoint, timeout=5)
            self.provider.add_span_processor(BatchSpanProcessor(otlp))
        self.tracer = self.provider.get_tracer("featurelake")

    def shutdown(self) -> None:
        """Flush and close; spans still queued for an unreachable collector are dropped after its timeout."""
        self.provider.shutdown()
        if self._out is not None:
            self._out.close()


@contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[Span | None]:
    """A span under the current run's trace; nothing when no run is observed or tracing is off."""
    pipeline = current_pipeline()
    if pipeline is None or pipeline.tracer is None:
        yield None
        return
    with pipeline.tracer.start_as_current_span(name, attributes=attributes) as current:  # records a raised error
        yield current
