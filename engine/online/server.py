"""The feature server: `POST /features` (a lookup), `GET /health`, `GET /metrics` (Prometheus).

A request body is `{"entities": [{"customer_id": 42}, ...], "features": ["customer:amount_sum_30d"],
"at": "2024-06-01T00:00:00"}` (`at` optional: the time the TTL is measured at, default now). A bad request
is a 4xx with a one-line `error`; a token, when the server has one, is checked on every request. Request
logs carry the method, path, status, time and entity count, never a body or a token.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections import Counter as Counter_
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.config.online import parse_time
from engine.errors import ConfigError, FeaturelakeError
from engine.observability.metrics import SOURCE, MetricSpec
from engine.online.lookup import PRESENT, LookupError_, OnlineClient
from engine.online.store import OnlineStore

log = logging.getLogger("featurelake.serve")
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LATENCY = MetricSpec(
    Histogram, "feature_request_seconds", "Time to answer a feature request", ("status",), LATENCY_BUCKETS
)
LOOKUPS = MetricSpec(Counter, "feature_lookups", "Entity-feature values looked up", ("group",))
MISSES = MetricSpec(
    Counter, "feature_misses", "Values not present (unknown entity, expired or null)", ("group", "status")
)
FRESHNESS = MetricSpec(
    Gauge, "data_freshness_lag_seconds", "Lag of a group's materialized as-of time behind now", SOURCE
)


@dataclass(frozen=True)
class Limits:
    """What one request may ask: bytes of body, entity rows, features."""

    max_body_bytes: int = 1_000_000
    max_entities: int = 1_000
    max_features: int = 1_000


class ServerMetrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.latency = LATENCY.create(registry)
        self.lookups = LOOKUPS.create(registry)
        self.misses = MISSES.create(registry)
        self.freshness = FRESHNESS.create(registry)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _body(raw: bytes) -> tuple[list[dict], list[str], datetime | None]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise LookupError_("the body is not JSON") from None
    if not isinstance(body, dict):
        raise LookupError_("the body is not a JSON object")
    entities, features = body.get("entities"), body.get("features")
    if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
        raise LookupError_("'entities' is not a list of objects")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features) or not features:
        raise LookupError_("'features' is not a non-empty list of names")
    at = body.get("at")
    if at is not None and not isinstance(at, str):
        raise LookupError_("'at' is not an ISO time")
    try:
        when = parse_time(at, "at") if at else None
    except ConfigError as error:
        raise LookupError_(str(error)) from None
    return entities, features, when


def create_app(store: OnlineStore, limits: Limits = Limits(), token: str | None = None) -> Starlette:
    """The server's ASGI app over one store."""
    client = OnlineClient(store)
    metrics = ServerMetrics()

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def features(request: Request) -> Response:
        started = time.perf_counter()
        response, entities = await _answer(request)
        seconds = time.perf_counter() - started
        metrics.latency.labels(str(response.status_code)).observe(seconds)
        log.info(
            "request",
            extra={
                "event": "feature_request",
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "seconds": round(seconds, 6),
                "record_count": entities,
            },
        )
        return response

    async def _answer(request: Request) -> tuple[Response, int]:
        if not authorized(request):
            return _error(401, "missing or wrong token (Authorization: Bearer <token>)"), 0
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return _error(413, f"the body is over {limits.max_body_bytes:,} bytes"), 0
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limits.max_body_bytes:
                return _error(413, f"the body is over {limits.max_body_bytes:,} bytes"), 0
        try:
            entities, names, at = _body(bytes(raw))
            if len(entities) > limits.max_entities or len(names) > limits.max_features:
                return _error(
                    413, f"at most {limits.max_entities:,} entities and {limits.max_features:,} features a request"
                ), len(entities)
            answer = client.get_online_features(entities, names, at)
        except LookupError_ as error:
            return _error(400, str(error)), 0
        except FeaturelakeError as error:  # the store cannot be reached
            return _error(503, str(error)), 0
        _count(answer, metrics)
        return JSONResponse(answer.to_dict()), len(entities)

    async def health(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "missing or wrong token (Authorization: Bearer <token>)")
        try:
            groups = {g.group: {"table": g.table, "version": g.version, "as_of": g.as_of} for g in store.states()}
        except FeaturelakeError as error:
            return _error(503, str(error))
        return JSONResponse({"status": "ok", "groups": groups})

    async def metrics_page(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "missing or wrong token (Authorization: Bearer <token>)")
        now = datetime.now(UTC)
        for state in store.states():
            metrics.freshness.labels("online", state.group).set((now - state.as_of_time).total_seconds())
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/features", features, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
        ]
    )


def _count(answer: Any, metrics: ServerMetrics) -> None:
    """Lookups and misses by group, counted here and added to the metrics once per label set."""
    counted = Counter_(
        (name.partition(":")[0], status) for statuses in answer.statuses for name, status in statuses.items()
    )
    for (group, status), n in counted.items():
        metrics.lookups.labels(group).inc(n)
        if status != PRESENT:
            metrics.misses.labels(group, status).inc(n)
