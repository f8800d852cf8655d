"""Compile a feature group's config into a flat plan: one entry per output feature column.

Names follow `<group>_<column>[_<filter_name>]_<function>_<window>`, `<group>_rows_count_<window>`
for row counts and `<group>_<column>_lag_<k>` for lags, so a name says what the column holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.durations import duration_seconds
from engine.config.features import LIFETIME, GroupConfig, window_seconds

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
    function: str
    input: Input
    window: str
    micros: int | None
    closed: str
    n: int
    description: str


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
        return max([lag.k for lag in self.lags] + [f.n for f in self.windowed if f.function == "last_n"], default=0)


_TEXT = {
    "count": "number of {what}",
    "sum": "sum of {what}",
    "mean": "mean of {what}",
    "min": "minimum of {what}",
    "max": "maximum of {what}",
    "stddev": "sample standard deviation of {what}",
    "variance": "sample variance of {what}",
    "count_distinct": "number of distinct values of {what}",
    "approx_count_distinct": "number of distinct values of {what} (computed exactly)",
    "first": "earliest non-null value of {what}",
    "last": "latest non-null value of {what}",
    "last_n": "values of the last {n} events' {what}, oldest first",
}


def _window_text(window: str, closed: str) -> str:
    if window == LIFETIME:
        return "over all earlier history" + (" (strictly before the row's time)" if closed == "left" else "")
    return f"over [t-{window}, t)" if closed == "left" else f"over (t-{window}, t]"


def compile_group(group: GroupConfig) -> GroupPlan:
    """Flatten a validated group into named features sharing de-duplicated inputs."""
    inputs: dict[tuple[str | None, str | None], Input] = {}

    def input_of(column: str | None, filter_: str | None) -> Input:
        key = (column, filter_)
        if key not in inputs:
            inputs[key] = Input(f"_fl_in{len(inputs)}", column, filter_)
        return inputs[key]

    windowed = []
    for agg in group.aggregations:
        for function in agg.functions:
            column = agg.column if function != "count" or agg.column else None
            source = input_of(column, agg.filter)
            stem = "_".join(p for p in (group.name, column or "rows", agg.filter_name) if p)
            what = f"{column or 'events'}" + (f" where {agg.filter}" if agg.filter else "")
            for window in group.windows_of(agg):
                label = f"last_{agg.n}" if function == "last_n" else function
                seconds = window_seconds(window, f"features.groups.{group.name}")
                windowed.append(
                    Windowed(
                        name=f"{stem}_{label}_{window}",
                        function=function,
                        input=source,
                        window=window,
                        micros=None if seconds is None else seconds * MICROS,
                        closed=group.closed,
                        n=agg.n,
                        description=f"{_TEXT[function].format(what=what, n=agg.n)} per {group.name} "
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
