"""Observability parts on their own: JSON log lines, sampling per run, the push gateway, exporters that fail."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.config.observability import ObservabilityConfig, TracingConfig
from engine.config.schema import TrackingConfig
from engine.observability.context import current_pipeline
from engine.observability.events import EVENTS, emit
from engine.observability.run import observed_pipeline
from engine.observability.tracing import Tracing, span
from tests.conftest import json_log, log_events


class Gateway(ThreadingHTTPServer):
    """A Prometheus push gateway's receiving end: records each push's method, path and body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GatewayHandler)
        self.pushes: list[tuple[str, str, str]] = []


class _GatewayHandler(BaseHTTPRequestHandler):
    server: Gateway

    def _receive(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.server.pushes.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_PUT = do_POST = _receive

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _config(tmp_path: Path, *, pushgateway: str = "", ratio: float = 1.0) -> ObservabilityConfig:
    cfg = ObservabilityConfig()
    cfg.metrics.textfile_dir = str(tmp_path / "metrics")
    cfg.metrics.pushgateway = pushgateway
    cfg.metrics.log_to_mlflow = False
    cfg.tracing.sampling_ratio = ratio
    cfg.tracing.console_file = str(tmp_path / "traces.jsonl")
    return cfg


def test_events_are_json_lines_with_the_run_ids_and_metrics_are_pushed(tmp_path: Path, gateway: Gateway) -> None:
    cfg = _config(tmp_path, pushgateway=f"127.0.0.1:{gateway.server_address[1]}")
    with json_log(tmp_path / "run.log") as log, observed_pipeline(cfg, TrackingConfig(), "demo") as pipeline:
        emit("feature_computed", "computed", data_source="events", record_count=10, feature_table="t", features=3)
        emit("quality_scored", "scored", data_source="events", record_count=10, score=0.75)
        emit("validation_failed", "failed", data_source="events", severity="warning", level=logging.WARNING)
        emit("freshness_lag", "lag", data_source="events", lag_seconds=42.5)
        logging.getLogger("engine.test").info("a plain line")
    assert current_pipeline() is None  # the run's context ends with it
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {line["pipeline_id"] for line in lines} == {pipeline.pipeline_id}
    plain = next(line for line in lines if line["message"] == "a plain line")
    assert plain["event"] is None and plain["data_source"] is None and plain["logger"] == "engine.test"
    assert [e["event"] for e in log_events(log)] == [
        "feature_computed",
        "quality_scored",
        "validation_failed",
        "freshness_lag",
    ]
    ((method, path, body),) = gateway.pushes
    assert (method, path) == ("PUT", "/metrics/job/featurelake_demo")
    assert 'features_computed_total{feature_table="t",pipeline="demo"} 10.0' in body
    assert 'data_quality_score{data_source="events",pipeline="demo"} 0.75' in body
    assert 'validation_failures_total{data_source="events",pipeline="demo",severity="warning"} 1.0' in body
    assert 'data_freshness_lag_seconds{data_source="events",pipeline="demo"} 42.5' in body
    assert 'pipeline_duration_seconds_bucket{le="60.0",pipeline="demo",status="succeeded"} 1.0' in body
    assert body == (tmp_path / "metrics" / "featurelake_demo.prom").read_text()


def test_an_unreachable_gateway_is_a_warning_and_the_run_error_is_the_one_raised(tmp_path: Path) -> None:
    cfg = _config(tmp_path, pushgateway="127.0.0.1:9")  # discard port: connection refused
    with (
        json_log(tmp_path / "run.log") as log,
        pytest.raises(RuntimeError, match="the job's own error"),
        observed_pipeline(cfg, TrackingConfig(), "demo"),
    ):
        raise RuntimeError("the job's own error")
    warnings = [json.loads(line) for line in log.read_text().splitlines()]
    assert any("push gateway 127.0.0.1:9 unreachable" in w["message"] for w in warnings)
    text = (tmp_path / "metrics" / "featurelake_demo.prom").read_text()
    assert 'pipeline_duration_seconds_count{pipeline="demo",status="failed"} 1.0' in text
    spans = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert [(s["name"], s["status"]["status_code"]) for s in spans] == [("pipeline demo", "ERROR")]


def test_runs_are_sampled_whole_at_the_configured_ratio(tmp_path: Path) -> None:
    cfg = TracingConfig(sampling_ratio=0.15, console_file=str(tmp_path / "traces.jsonl"))
    tracing = Tracing(cfg, "demo", "p")
    runs = 4000
    for _ in range(runs):
        with tracing.tracer.start_as_current_span("pipeline demo"), tracing.tracer.start_as_current_span("stage a"):
            pass
    tracing.shutdown()
    spans = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    roots = sum(s["parent_id"] is None for s in spans)
    assert len(spans) == 2 * roots  # a sampled run keeps its stage span; an unsampled one has none
    sigma = (runs * 0.15 * 0.85) ** 0.5
    assert abs(roots - runs * 0.15) < 5 * sigma, roots


def test_spans_need_an_observed_run_and_every_event_is_known() -> None:
    with span("stage outside a run") as outside:
        assert outside is None
    with pytest.raises(ValueError, match="unknown event 'feature_done'"):
        emit("feature_done", "typo")
    assert set(EVENTS) >= {
        "feature_computed",
        "materialization_done",
        "freshness_lag",
        "schema_drift",
        "source_unavailable",
        "validation_failed",
        "store_write_failed",
    }
