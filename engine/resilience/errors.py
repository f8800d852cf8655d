"""Which errors are worth retrying: timeouts, an unavailable source, a rate limit. Nothing else.

A failed check, a bad config or a missing file fails the same way on every attempt, so it is
raised at once and does not count against the source's circuit.
"""

from __future__ import annotations

import socket
from urllib.error import HTTPError, URLError

from py4j.protocol import Py4JJavaError

from engine.errors import FeaturelakeError, SourceError

TIMEOUT, UNAVAILABLE, RATE_LIMITED = "timeout", "unavailable", "rate_limited"
HTTP_REASONS = {429: RATE_LIMITED, 502: UNAVAILABLE, 503: UNAVAILABLE, 504: TIMEOUT}
_JVM_MARKERS = {
    "java.net.SocketTimeoutException": TIMEOUT,
    "java.net.ConnectException": UNAVAILABLE,
    "java.net.UnknownHostException": UNAVAILABLE,
    "503 Service Unavailable": UNAVAILABLE,
    "SlowDown": RATE_LIMITED,
    "429 Too Many Requests": RATE_LIMITED,
}


class TransientSourceError(SourceError):
    """A source failed in a way that may pass: `reason` is timeout, unavailable or rate_limited."""

    def __init__(self, message: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


def transient_reason(err: BaseException) -> str | None:
    """The retryable reason of an error, or None when retrying cannot help."""
    if isinstance(err, TransientSourceError):
        return err.reason
    if isinstance(err, FeaturelakeError):  # checks, configs, missing files: deterministic
        return None
    if isinstance(err, HTTPError):
        return HTTP_REASONS.get(err.code)
    if isinstance(err, socket.timeout | TimeoutError):
        return TIMEOUT
    if isinstance(err, URLError):
        return TIMEOUT if isinstance(err.reason, socket.timeout | TimeoutError) else UNAVAILABLE
    if isinstance(err, ConnectionError):
        return UNAVAILABLE
    if isinstance(err, Py4JJavaError):
        text = str(err.java_exception)
        return next((reason for marker, reason in _JVM_MARKERS.items() if marker in text), None)
    return None
