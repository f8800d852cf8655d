"""Retries with exponential backoff, for transient source errors only, guarded by the source's circuit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.config.resilience import ResilienceConfig, RetryConfig
from engine.errors import SourceError, describe
from engine.observability.events import emit
from engine.resilience.circuit import CircuitBreaker
from engine.resilience.errors import TransientSourceError, transient_reason

T = TypeVar("T")


class SourceUnavailable(SourceError):
    """A source stayed unavailable through every attempt, or its circuit opened."""


def backoff(policy: RetryConfig, attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based); a server's Retry-After is honoured up to the cap."""
    delay = policy.first_delay_seconds * policy.multiplier ** (attempt - 1)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, policy.max_delay_seconds)


def retry_on(
    call: Callable[[], T],
    *,
    retryable: Callable[[Exception], bool],
    policy: RetryConfig,
    on_retry: Callable[[int, Exception, float], None],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `call`, retrying the errors `retryable` accepts with the policy's backoff (no circuit: for
    a store's optimistic commits, whose conflicts are not outages); `on_retry(attempt, error, delay)`
    reports each retry. The last attempt's error is raised."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as err:
            if attempt == policy.attempts or not retryable(err):
                raise
            delay = backoff(policy, attempt)
            on_retry(attempt, err, delay)
            sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def call_with_retry(
    read: Callable[[], T],
    *,
    source: str,
    policy: RetryConfig,
    breaker: CircuitBreaker,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `read`, retrying transient errors; any other error is raised at once, unretried.

    Every transient failure is a `source_unavailable` event and counts against the source's circuit;
    an open circuit fails the call without calling the source.
    """
    for attempt in range(1, policy.attempts + 1):
        breaker.before_call(source)
        try:
            result = read()
        except Exception as err:
            reason = transient_reason(err)
            if reason is None:
                raise
            opened = breaker.record_failure(source, describe(err))
            last = attempt == policy.attempts or opened
            retry_after = err.retry_after if isinstance(err, TransientSourceError) else None
            delay = None if last else backoff(policy, attempt, retry_after)
            emit(
                "source_unavailable",
                f"source {source} {reason.replace('_', ' ')} (attempt {attempt}/{policy.attempts}): "
                f"{describe(err)}" + (f"; retrying in {delay:g} s" if delay is not None else ""),
                data_source=source,
                level=logging.WARNING,
                reason=reason,
                attempt=attempt,
                attempts=policy.attempts,
                retry_in_seconds=delay,
                circuit="open" if opened else "closed",
            )
            if opened:
                raise SourceUnavailable(
                    f"source {source}: {reason.replace('_', ' ')} on {attempt} attempts in a row, circuit opened "
                    f"for {breaker.cfg.reset_seconds:g} s (last: {describe(err)})"
                ) from err
            if last:
                raise SourceUnavailable(
                    f"source {source}: {reason.replace('_', ' ')} on all {attempt} attempts (last: {describe(err)})"
                ) from err
            sleep(delay)
        else:
            breaker.record_success(source)
            return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def read_resiliently(read: Callable[[], T], *, source: str, cfg: ResilienceConfig) -> T:
    """`call_with_retry` with the configured policy and the source's circuit (kept in `cfg.state_dir`)."""
    breaker = CircuitBreaker(cfg.circuit, Path(cfg.state_dir))
    return call_with_retry(read, source=source, policy=cfg.retry, breaker=breaker)
