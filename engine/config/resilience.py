"""Resilience config: retries for transient source errors, a circuit breaker per source, a read cache."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config.choices import require
from engine.errors import ConfigError


@dataclass
class RetryConfig:
    """Exponential backoff: attempt n waits `first_delay_seconds * multiplier**(n-1)`, at most `max_delay_seconds`."""

    attempts: int = 3
    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        require("resilience.retry.attempts", self.attempts, self.attempts >= 1, "must be at least 1")
        if self.first_delay_seconds < 0 or self.max_delay_seconds < self.first_delay_seconds:
            raise ConfigError(
                f"resilience.retry: delays must satisfy 0 <= first_delay_seconds ({self.first_delay_seconds}) "
                f"<= max_delay_seconds ({self.max_delay_seconds})"
            )
        require("resilience.retry.multiplier", self.multiplier, self.multiplier >= 1, "must be at least 1")


@dataclass
class CircuitConfig:
    """Per data source: open after `failure_threshold` failures in a row, try again after `reset_seconds`."""

    failure_threshold: int = 3
    reset_seconds: float = 60.0

    def __post_init__(self) -> None:
        key = "resilience.circuit"
        require(f"{key}.failure_threshold", self.failure_threshold, self.failure_threshold >= 1, "must be at least 1")
        require(f"{key}.reset_seconds", self.reset_seconds, self.reset_seconds > 0, "must be > 0")


@dataclass
class ResilienceConfig:
    """`state_dir` keeps the circuit states across runs, so a rerun against a dead source fails fast.

    Remote source files are cached by (data source, task) for `cache_ttl_seconds` (0 turns the cache off).
    """

    retry: RetryConfig = field(default_factory=RetryConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    state_dir: str = "output/state"
    cache_ttl_seconds: float = 7200.0
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        require(
            "resilience.cache_ttl_seconds", self.cache_ttl_seconds, self.cache_ttl_seconds >= 0, "must be 0 or more"
        )
        require("resilience.timeout_seconds", self.timeout_seconds, self.timeout_seconds > 0, "must be > 0")
