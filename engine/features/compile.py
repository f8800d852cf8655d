"""Compile a feature group's config into a flat plan: one entry per output feature column.

Names follow `<group>_<column>[_<filter_name>]_<function>_<window>`, `<group>_rows_count_<window>`
for row counts and `<group>_<column>_lag_<k>` for lags, so a name says what the column holds.
Function names resolve in the registry (`engine.features.functions`); compiling is what checks them,
before Spark starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.durations import duration_seconds
from engine.config.features import LIFETIME, AggregationConfig, Closed, GroupConfig, window_seconds
from engine.errors import ConfigError
from engine.features.functions import AGGREGATIONS, Aggregation

MICROS = 1_000_000


@dataclass(frozen=True)
class Input:
    """A value stream: a column (or a constant 1 for row counts), optionally filtered, as column `ref`."""

    ref: str
    column: str | None
    filter: str | None


@dataclass(frozen=True)
class Windowed:
    """One windowed feature: `function` of `input` over the `window` before the row's time."""

    name: str
    aggregation: Aggregation
    input: Input
    window: str
    micros: int | None
    closed: Closed
    n: int
    description: str

    @property
    def function(self) -> str:
        return self.aggregation.name


@dataclass(frozen=True)
class Lag:
    """The value of the k-th previous event of `input`, strictly before the row's time."""

    name: str
    input: Input
    k: int
    description: str


@dataclass(frozen=True)
class GroupPlan:
    group: GroupConfig
    inputs: list[Input]
    windowed: list[Windowed]
    lags: list[Lag]
    ttl_micros: int

    @property
    def features(self) -> list[str]:
        return [f.name for f in self.windowed] + [lag.name for lag in self.lags]

    @property
    def lifetime(self) -> bool:
        return any(f.micros is None for f in self.windowed)

    @property
    def horizon_micros(self) -> int:
        """How far back any feature of the group looks (lags look back as far as the TTL)."""
        spans = [f.micros for f in self.windowed if f.micros is not None]
        if self.lags:
            spans.append(self.ttl_micros)
        return max(spans, default=self.ttl_micros)

    @property
    def history_depth(self) -> int:
        """Events each row keeps for lags and last-N values."""
        kept = [f.n for f in self.windowed if f.aggregation.takes_n]
        return max([lag.k for lag in self.lags] + kept, default=0)


def _aggregations(agg: AggregationConfig, key: str) -> list[Aggregation]:
    """The registry entries of an aggregation's functions, checked against what each takes."""
    if not agg.functions:
        raise ConfigError(f"{key}.functions: [] must name at least one of {', '.join(AGGREGATIONS.names())}")
    entries = [AGGREGATIONS.get(name, f"{key}.functions") for name in agg.functions]
    needing = [a.name for a in entries if a.needs_column]
    if agg.column is None and needing:
        raise ConfigError(f"{key}.column: required for {sorted(needing)}")
    for a in entries:
        if agg.filter is not None and not a.takes_filter:
            raise ConfigError(f"{key}.filter: {a.name} keeps the events as they are and takes no filter")
        if a.takes_n and not 1 <= agg.n <= 100:
            raise ConfigError(f"{key}.n: {agg.n} must be 1..100")
    return entries


def _window_text(window: str, closed: str) -> str:
    if window == LIFETIME:
        return "over all earlier history" + (" (strictly before the row's time)" if closed == "left" else "")
    return f"over [t-{window}, t)" if closed == "left" else f"over (t-{window}, t]"


def compile_group(group: GroupConfig, key: str | None = None) -> GroupPlan:
    """Flatten a validated group into named features sharing de-duplicated inputs; an unknown function, or
    one given what it does not take, is a ConfigError naming `key` (the group's config key)."""
    key = key or f"features.groups.{group.name}"
    inputs: dict[tuple[str | None, str | None], Input] = {}

    def input_of(column: str | None, filter_: str | None) -> Input:
        key = (column, filter_)
        if key not in inputs:
            inputs[key] = Input(f"_fl_in{len(inputs)}", column, filter_)
        return inputs[key]

    windowed = []
    for i, agg in enumerate(group.aggregations):
        for aggregation in _aggregations(agg, f"{key}.aggregations[{i}]"):
            column = agg.column if aggregation.needs_column or agg.column else None
            source = input_of(column, agg.filter)
            stem = "_".join(p for p in (group.name, column or "rows", agg.filter_name) if p)
            what = f"{column or 'events'}" + (f" where {agg.filter}" if agg.filter else "")
            for window in group.windows_of(agg):
                label = aggregation.label_for(agg.n)
                seconds = window_seconds(window, f"features.groups.{group.name}")
                windowed.append(
                    Windowed(
                        name=f"{stem}_{label}_{window}",
                        aggregation=aggregation,
                        input=source,
                        window=window,
                        micros=None if seconds is None else seconds * MICROS,
                        closed=group.closed,
                        n=agg.n,
                        description=f"{aggregation.describes.format(what=what, n=agg.n)} per {group.name} "
                        f"{_window_text(window, group.closed)}",
                    )
                )
    lags = [
        Lag(
            name=f"{group.name}_{lag.column}_lag_{k}",
            input=input_of(lag.column, None),
            k=k,
            description=f"{lag.column} of the {k}-th previous event of the same {group.name} (within the TTL)",
        )
        for lag in group.lags
        for k in lag.k
    ]
    ttl = duration_seconds(group.ttl, f"features.groups.{group.name}.ttl") * MICROS
    return GroupPlan(group, list(inputs.values()), windowed, lags, ttl)
