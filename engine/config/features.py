"""Structured configs for declarative features: groups of windowed aggregations, lags, time parts, derived.

YAML under conf/features/ declares what to compute; these dataclasses validate it before Spark starts
and `engine.features.compile` turns it into column expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.config.choices import enum_of
from engine.config.durations import duration_seconds
from engine.errors import ConfigError

LIFETIME = "lifetime"


class Closed(StrEnum):
    """Which end of a window holds the row's time t: right (t-w, t] or left [t-w, t)."""

    LEFT = "left"
    RIGHT = "right"


class Granularity(StrEnum):
    """Features as of each event, or one row per entity per cadence boundary."""

    EVENT = "event"
    SNAPSHOT = "snapshot"


class Plan(StrEnum):
    """How a group's windows are computed (`engine.features.plans`); `auto` chooses per group."""

    AUTO = "auto"
    SLIDING = "sliding"
    VECTORIZED = "vectorized"
    RUNNING = "running"


CADENCES = {"hourly": 3600, "daily": 86400}
TIME_PARTS = ("hour", "day_of_week", "month", "quarter", "is_weekend")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def window_seconds(window: str, key: str) -> int | None:
    """Seconds of a window such as `7d`; None for `lifetime` (all history)."""
    return None if window == LIFETIME else duration_seconds(window, key)


def _is_date(text: str) -> bool:
    try:
        return re.match(r"^\d{4}-\d{2}-\d{2}$", text) is not None and date.fromisoformat(text) is not None
    except ValueError:
        return False


def check_windows(windows: list[str], key: str) -> None:
    if len(set(windows)) != len(windows):
        raise ConfigError(f"{key}: {windows} has repeats")
    for j, window in enumerate(windows):
        window_seconds(window, f"{key}[{j}]")


def check_name(name: str, key: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(f"{key}: '{name}' is not a lower_snake_case name")


@dataclass
class AggregationConfig:
    """Aggregation functions of one column (or of rows, for count without a column) over windows.

    Function names, and whether a function needs a column, takes a filter or `n`, are checked against
    the function registry when the features compile (`engine.features.compile`), before Spark starts."""

    functions: list[str] = field(default_factory=list)
    column: str | None = None
    windows: list[str] | None = None
    filter: str | None = None
    filter_name: str | None = None
    n: int = 3

    def validate(self, key: str) -> None:
        if self.filter is not None and self.filter_name is None:
            raise ConfigError(f"{key}.filter_name: required with a filter, it names the filtered features")
        if self.filter_name is not None:
            check_name(self.filter_name, f"{key}.filter_name")


@dataclass
class LagConfig:
    """Values of the k-th previous events of a column (strictly before the row's time, within the TTL)."""

    column: str = ""
    k: list[int] = field(default_factory=lambda: [1])


@dataclass
class GroupConfig:
    """Features of one entity: its key columns, TTL, default windows and closed end, and what to aggregate."""

    name: str = ""
    keys: list[str] = field(default_factory=list)
    ttl: str = "7d"
    windows: list[str] = field(default_factory=list)
    closed: str = "right"
    aggregations: list[AggregationConfig] = field(default_factory=list)
    lags: list[LagConfig] = field(default_factory=list)

    def validate(self, key: str) -> None:
        check_name(self.name, f"{key}.name")
        if not self.keys:
            raise ConfigError(f"{key}.keys: at least one key column is required")
        duration_seconds(self.ttl, f"{key}.ttl")
        check_windows(self.windows, f"{key}.windows")
        if self.closed not in tuple(Closed):
            raise ConfigError(f"{key}.closed: '{self.closed}' is not left ([t-w, t)) or right ((t-w, t])")
        self.closed = Closed(self.closed)
        for i, agg in enumerate(self.aggregations):
            agg.validate(f"{key}.aggregations[{i}]")
            if not self.windows_of(agg):
                raise ConfigError(f"{key}.aggregations[{i}].windows: no windows (set the group's windows)")
            if agg.windows is not None:
                check_windows(agg.windows, f"{key}.aggregations[{i}].windows")
        for i, lag in enumerate(self.lags):
            if not lag.column or not lag.k or min(lag.k) < 1 or max(lag.k) > 100:
                raise ConfigError(f"{key}.lags[{i}]: needs a column and k values in 1..100")

    def windows_of(self, agg: AggregationConfig) -> list[str]:
        return list(self.windows if agg.windows is None else agg.windows)


@dataclass
class TimeFeaturesConfig:
    """Calendar parts of the row's time in a named time zone (so daylight-saving changes are honoured)."""

    timezone: str = "UTC"
    parts: list[str] = field(default_factory=list)
    prefix: str = "time"

    def validate(self, key: str) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{key}.timezone: '{self.timezone}' is not an IANA time zone") from None
        unknown = sorted(set(self.parts) - set(TIME_PARTS))
        if unknown:
            raise ConfigError(f"{key}.parts: {unknown} are not among {', '.join(TIME_PARTS)}")
        check_name(self.prefix, f"{key}.prefix")


@dataclass
class DerivedConfig:
    """A feature computed by a Spark SQL expression over other features (a ratio, a difference)."""

    name: str = ""
    expr: str = ""
    description: str = ""


@dataclass
class FeaturesConfig:
    """What to compute, for which rows, over which time range.

    Rows enter windows at `known_at` (when their value became available; defaults to `timestamp`).
    `granularity: event` gives features as of each row's `timestamp`; `snapshot` gives one row per
    entity per `cadence` boundary while the entity is within its TTL. `start`/`end` (ISO dates,
    end exclusive) limit the output range for backfills and incremental runs.
    """

    timestamp: str = "event_ts"
    known_at: str | None = None
    granularity: str = "event"
    cadence: str = "daily"
    start: str | None = None
    end: str | None = None
    skew_split: int = 4
    plan: str = "auto"
    groups: list[GroupConfig] = field(default_factory=list)
    time_features: TimeFeaturesConfig | None = None
    derived: list[DerivedConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.granularity = enum_of("features.granularity", self.granularity, Granularity)
        if self.cadence not in CADENCES:
            raise ConfigError(f"features.cadence: '{self.cadence}' is not hourly or daily")
        self.plan = enum_of("features.plan", self.plan, Plan)
        if self.skew_split < 0:
            raise ConfigError(f"features.skew_split: {self.skew_split} must be 0 (off) or more")
        for key in ("start", "end"):
            value = getattr(self, key)
            if value is not None and not _is_date(value):
                raise ConfigError(f"features.{key}: '{value}' is not an ISO date like 2013-06-01")
        if self.start and self.end and self.start >= self.end:
            raise ConfigError(f"features.start: {self.start} is not before features.end {self.end}")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ConfigError(f"features.groups: names {names} have repeats")
        for i, group in enumerate(self.groups):
            group.validate(f"features.groups[{i}]")
        if self.time_features is not None:
            self.time_features.validate("features.time_features")
        for i, derived in enumerate(self.derived):
            check_name(derived.name, f"features.derived[{i}].name")
            if not derived.expr.strip():
                raise ConfigError(f"features.derived[{i}].expr: empty expression")
