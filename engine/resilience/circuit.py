"""A circuit breaker per data source, its state kept in a file so that a rerun also fails fast.

Closed: calls go through; `failure_threshold` failures in a row open it. Open: calls fail at once,
naming the source and when it will be tried again. After `reset_seconds` one call is let through
(half-open): a success closes the circuit, a failure opens it again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.config.resilience import CircuitConfig
from engine.errors import SourceError

STATE_FILE = "circuits.json"


class CircuitOpen(SourceError):
    """A source's circuit is open: it failed too often just now, so it is not called."""


@dataclass
class CircuitState:
    failures: int = 0
    opened_at: float | None = None
    last_error: str = ""


class CircuitBreaker:
    """The circuits of all sources, in `state_dir/circuits.json` (written atomically)."""

    def __init__(self, cfg: CircuitConfig, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.path = state_dir / STATE_FILE
        self.clock = clock

    def _load(self) -> dict[str, CircuitState]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {source: CircuitState(**state) for source, state in raw.items()}

    def _save(self, states: dict[str, CircuitState]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(f".partial-{os.getpid()}")
        partial.write_text(json.dumps({s: asdict(c) for s, c in states.items()}, indent=2))
        partial.replace(self.path)

    def state(self, source: str) -> CircuitState:
        return self._load().get(source, CircuitState())

    def before_call(self, source: str) -> None:
        """Raise CircuitOpen while the source's circuit is open and its reset time has not come."""
        state = self.state(source)
        if state.opened_at is None:
            return
        retry_at = state.opened_at + self.cfg.reset_seconds
        if self.clock() < retry_at:
            when = datetime.fromtimestamp(retry_at, UTC).strftime("%H:%M:%S UTC")
            raise CircuitOpen(
                f"source {source}: circuit open after {state.failures} failures in a row "
                f"(last: {state.last_error}); not called again before {when}"
            )

    def record_failure(self, source: str, error: str) -> bool:
        """Count a failure; return True when this failure opens (or reopens) the circuit."""
        states = self._load()
        state = states.setdefault(source, CircuitState())
        half_open = state.opened_at is not None
        state.failures += 1
        state.last_error = error[:300]
        opens = half_open or state.failures >= self.cfg.failure_threshold
        if opens:
            state.opened_at = self.clock()
        self._save(states)
        return opens

    def record_success(self, source: str) -> None:
        states = self._load()
        if source in states:
            del states[source]
            self._save(states)
