"""The kinds of data-quality check a YAML check may name: one registry entry each.

An entry says everything the engine needs of a kind, in plain Python (config validation reads it while
the config loads, before Spark):

- how it is bounded (`bound`: a share of complying rows, a metric within [min, max], or a lag) and
  which columns it takes;
- its default layer and action;
- `row_condition`: the SQL predicate a row complies with, which Deequ counts and quarantine applies
  (None: not a row-level check, so it cannot quarantine rows);
- `constraint`: the Deequ constraint it compiles to, added to a pydeequ `Check`;
- `sample`: the interval a sample gives its metric, when a sample may decide it (None: only the full
  data decides);
- where it runs (`evaluator`): Deequ's suite on the data, the stored schema, or Deequ's referential
  integrity.

Adding a kind is one `CHECK_KINDS.register(CheckKind(...))` plus its test; docs/data-quality.md lists
the kinds from `reference_table()`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from engine.config.durations import duration_seconds
from engine.config.registry import Registry, markdown_table
from engine.errors import ConfigError
from engine.sql import quote_identifier, string_literal

if TYPE_CHECKING:
    from engine.config.quality import CheckConfig

Constraint = Callable[[Any, "CheckConfig", datetime], Any]  # (pydeequ Check, the check, as-of) -> Check


class Layer(StrEnum):
    """Where a check runs in the layered verification, cheapest first."""

    SCHEMA = "schema"
    STATISTICAL = "statistical"
    BUSINESS = "business"
    ML = "ml"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class GateAction(StrEnum):
    """What a failed error-severity check does to the run (a warning-severity check can only warn)."""

    HALT_PIPELINE = "halt_pipeline"
    QUARANTINE_DATA = "quarantine_data"
    USE_CACHED_FEATURES = "use_cached_features"
    WARN = "warn"


class Bound(StrEnum):
    """What a kind's metric is held to."""

    RATIO = "share of complying rows >= threshold"
    RANGE = "metric within [min, max]"
    LAG = "lag of the newest time <= max_lag"


class Columns(StrEnum):
    ONE = "exactly one"
    SOME = "at least one"
    OPTIONAL = "any"


class Interval(StrEnum):
    """The interval a sample gives a kind's metric (`engine.quality.intervals`)."""

    PROPORTION = "proportion"
    MEAN = "mean"
    STDDEV = "stddev"
    QUANTILE = "quantile"


class Evaluator(StrEnum):
    """What evaluates a kind: Deequ's VerificationSuite, the stored schema, Deequ's referential integrity."""

    DEEQU = "deequ"
    SCHEMA = "schema"
    REFERENCES = "references"


@dataclass(frozen=True)
class CheckKind:
    """One kind of check (see the module docstring). `passes`, `deequ` and `keys` are what the docs say of it:
    when it passes, what Deequ runs, the config keys it reads. `needs` names the column type Deequ requires
    ("number" or "string"); `validate` adds the kind's own config rules; `metric` turns Deequ's metric into
    the reported one; `derived` is a column (name, SQL) the constraint reads, added to the data first."""

    name: str
    passes: str
    bound: Bound
    columns: Columns
    constraint: Constraint | None = None
    row_condition: Callable[[CheckConfig, datetime], str] | None = None
    sample: Interval | None = None
    layer: Layer = Layer.STATISTICAL
    action: GateAction = GateAction.HALT_PIPELINE
    threshold: float = 1.0
    needs: str | None = None
    evaluator: Evaluator = Evaluator.DEEQU
    validate: Callable[[CheckConfig, str], None] | None = None
    metric: Callable[[float, CheckConfig, datetime], float] | None = None
    derived: Callable[[CheckConfig], tuple[str, str]] | None = None
    deequ: str = ""
    keys: str = ""

    @property
    def row_level(self) -> bool:
        return self.row_condition is not None


CHECK_KINDS: Registry[CheckKind] = Registry("check kind")


def at_least(check: CheckConfig) -> Callable[[float], bool]:
    """Deequ's assertion of a ratio kind: the share is at least the threshold."""
    threshold = check.threshold
    return lambda value: value >= threshold


def within(check: CheckConfig) -> Callable[[float], bool]:
    """Deequ's assertion of a range kind: the metric is within [min, max]."""
    low, high = check.min, check.max
    return lambda value: (low is None or value >= low) and (high is None or value <= high)


def as_of_seconds(as_of: datetime) -> float:
    """Epoch seconds of a naive UTC time, as Spark's unix_micros reads a timestamp in UTC."""
    return (as_of - datetime(1970, 1, 1)).total_seconds()


def _column(check: CheckConfig) -> str:
    return quote_identifier(check.columns[0])


def _completeness(check: CheckConfig, _: datetime) -> str:
    return " AND ".join(f"{quote_identifier(c)} IS NOT NULL" for c in check.columns)


def _allowed(check: CheckConfig, _: datetime) -> str:
    column = _column(check)
    return f"{column} IS NULL OR {column} IN ({', '.join(string_literal(v) for v in check.values)})"


def _range(check: CheckConfig, _: datetime) -> str:
    column = _column(check)
    bounds = [f"{column} >= {check.min!r}"] if check.min is not None else []
    bounds += [f"{column} <= {check.max!r}"] if check.max is not None else []
    return f"{column} IS NULL OR ({' AND '.join(bounds)})"


def _not_in_future(check: CheckConfig, as_of: datetime) -> str:
    column = _column(check)
    return f"{column} IS NULL OR {column} <= TIMESTAMP {string_literal(as_of.isoformat(sep=' '))}"


def _pattern(check: CheckConfig, _: datetime) -> str:
    """Deequ's hasPattern: a row complies when the pattern matches part of the value (null does not)."""
    return f"regexp_extract({_column(check)}, {string_literal(check.pattern)}, 0) != ''"


def _satisfied(check: Any, spec: CheckConfig, as_of: datetime) -> Any:
    """Deequ's Compliance over the kind's row condition: what Deequ counts is what quarantine removes."""
    return check.satisfies(CHECK_KINDS.get(spec.kind, "kind").row_condition(spec, as_of), spec.name, at_least(spec))


def _requires(field: str, what: str) -> Callable[[CheckConfig, str], None]:
    def validate(check: CheckConfig, key: str) -> None:
        value = getattr(check, field)
        if not (value.strip() if isinstance(value, str) else value):
            raise ConfigError(f"{key}.{field}: a {check.kind} check needs {what}")

    return validate


def _valid_pattern(check: CheckConfig, key: str) -> None:
    try:
        re.compile(check.pattern or "(")
    except re.error as err:
        raise ConfigError(f"{key}.pattern: '{check.pattern}' is not a regular expression ({err})") from err


def _valid_quantile(check: CheckConfig, key: str) -> None:
    if not 0.0 < check.quantile < 1.0:
        raise ConfigError(f"{key}.quantile: {check.quantile} is not within (0, 1)")


def _valid_reference(check: CheckConfig, key: str) -> None:
    if not check.reference:
        raise ConfigError(f"{key}.reference: a references check names the dataset it refers to")
    if check.reference_columns and len(check.reference_columns) != len(check.columns):
        raise ConfigError(f"{key}.reference_columns: give one per column ({len(check.columns)})")


def _valid_schema(check: CheckConfig, key: str) -> None:
    if not check.columns and not check.types:
        raise ConfigError(f"{key}.columns: at least one column is required")


def seconds_column(check: CheckConfig) -> str:
    """The column holding a freshness check's time in epoch seconds (Deequ's Maximum takes numbers)."""
    return f"__featurelake_seconds_{check.columns[0]}"


def _complete(check: Any, spec: CheckConfig, _: datetime) -> Any:
    if len(spec.columns) == 1:
        return check.hasCompleteness(spec.columns[0], at_least(spec))
    return check.haveCompleteness(list(spec.columns), at_least(spec))


def _freshness(check: Any, spec: CheckConfig, as_of: datetime) -> Any:
    newest_allowed = as_of_seconds(as_of) - spec.max_lag_seconds
    return check.hasMax(seconds_column(spec), lambda newest: newest >= newest_allowed)


for _kind in (
    CheckKind(
        "schema",
        "the columns (and `types`) are as stored",
        Bound.RATIO,
        Columns.OPTIONAL,
        layer=Layer.SCHEMA,
        evaluator=Evaluator.SCHEMA,
        validate=_valid_schema,
        deequ="(the engine's own)",
        keys="`columns`, `types`",
    ),
    CheckKind(
        "unique",
        "the share of rows whose key occurs once is at least `threshold` (default 1)",
        Bound.RATIO,
        Columns.SOME,
        lambda c, s, _: c.hasUniqueness(list(s.columns), at_least(s)),
        layer=Layer.SCHEMA,
        deequ="`hasUniqueness`",
        keys="`columns`",
    ),
    CheckKind(
        "completeness",
        "the share of rows with every column non-null is at least `threshold` (default 0.95)",
        Bound.RATIO,
        Columns.SOME,
        _complete,
        _completeness,
        Interval.PROPORTION,
        action=GateAction.QUARANTINE_DATA,
        threshold=0.95,
        deequ="`hasCompleteness`, `haveCompleteness`",
        keys="`columns`",
    ),
    CheckKind(
        "allowed_values",
        "the share of rows null or in `values` is at least `threshold`",
        Bound.RATIO,
        Columns.ONE,
        _satisfied,
        _allowed,
        Interval.PROPORTION,
        validate=_requires("values", "values"),
        deequ="`satisfies` (the row condition)",
        keys="`columns` (one), `values`",
    ),
    CheckKind(
        "range",
        "the share of rows null or within [`min`, `max`] is at least `threshold`",
        Bound.RATIO,
        Columns.ONE,
        _satisfied,
        _range,
        Interval.PROPORTION,
        deequ="`satisfies` (the row condition)",
        keys="`columns` (one), `min`, `max`",
    ),
    CheckKind(
        "non_negative",
        "the share of rows null or ≥ 0 is at least `threshold`",
        Bound.RATIO,
        Columns.ONE,
        lambda c, s, _: c.isNonNegative(s.columns[0], at_least(s)),
        lambda s, _: f"COALESCE(CAST({_column(s)} AS DOUBLE), 0.0) >= 0",
        Interval.PROPORTION,
        deequ="`isNonNegative`",
        keys="`columns` (one)",
    ),
    CheckKind(
        "pattern",
        "the share of rows matching the regex (a null does not) is at least `threshold`",
        Bound.RATIO,
        Columns.ONE,
        lambda c, s, _: c.hasPattern(s.columns[0], s.pattern, at_least(s), name=s.name),
        _pattern,
        Interval.PROPORTION,
        needs="string",
        validate=_valid_pattern,
        deequ="`hasPattern`",
        keys="`columns` (one), `pattern`",
    ),
    CheckKind(
        "satisfies",
        "the share of rows where a SQL predicate is true (null is not) is at least `threshold`",
        Bound.RATIO,
        Columns.OPTIONAL,
        _satisfied,
        lambda s, _: s.predicate,
        layer=Layer.BUSINESS,
        validate=_requires("predicate", "a SQL predicate"),
        deequ="`satisfies`",
        keys="`predicate`",
    ),
    CheckKind(
        "references",
        "1 - (distinct keys not in another dataset) / (rows with a key) is at least `threshold`",
        Bound.RATIO,
        Columns.SOME,
        layer=Layer.BUSINESS,
        evaluator=Evaluator.REFERENCES,
        validate=_valid_reference,
        deequ="`ReferentialIntegrity.subsetCheck`",
        keys="`columns`, `reference`, `reference_columns`",
    ),
    CheckKind(
        "not_in_future",
        "the share of rows null or at or before `quality.as_of` (or now) is at least `threshold`",
        Bound.RATIO,
        Columns.ONE,
        _satisfied,
        _not_in_future,
        layer=Layer.BUSINESS,
        action=GateAction.QUARANTINE_DATA,
        deequ="`satisfies` (the row condition)",
        keys="`columns` (one)",
    ),
    CheckKind(
        "size",
        "the row count is within [`min`, `max`]",
        Bound.RANGE,
        Columns.OPTIONAL,
        lambda c, s, _: c.hasSize(within(s)),
        layer=Layer.BUSINESS,
        deequ="`hasSize`",
        keys="`min`, `max`",
    ),
    CheckKind(
        "mean",
        "the mean of the non-null values is within [`min`, `max`]",
        Bound.RANGE,
        Columns.ONE,
        lambda c, s, _: c.hasMean(s.columns[0], within(s)),
        sample=Interval.MEAN,
        needs="number",
        deequ="`hasMean`",
        keys="`columns` (one)",
    ),
    CheckKind(
        "stddev",
        "the population standard deviation of the non-null values is within [`min`, `max`]",
        Bound.RANGE,
        Columns.ONE,
        lambda c, s, _: c.hasStandardDeviation(s.columns[0], within(s)),
        sample=Interval.STDDEV,
        needs="number",
        deequ="`hasStandardDeviation`",
        keys="`columns` (one)",
    ),
    CheckKind(
        "quantile",
        "the approximate `quantile` (default 0.5; 1% rank error) of the non-null values is within [`min`, `max`]",
        Bound.RANGE,
        Columns.ONE,
        lambda c, s, _: c.hasApproxQuantile(s.columns[0], s.quantile, within(s)),
        sample=Interval.QUANTILE,
        needs="number",
        validate=_valid_quantile,
        deequ="`hasApproxQuantile`",
        keys="`columns` (one), `quantile`",
    ),
    CheckKind(
        "freshness",
        "the newest time is at most `max_lag` behind `quality.as_of` (or now)",
        Bound.LAG,
        Columns.ONE,
        _freshness,
        layer=Layer.BUSINESS,
        action=GateAction.USE_CACHED_FEATURES,
        validate=lambda s, key: duration_seconds(s.max_lag, f"{key}.max_lag") and None,
        metric=lambda newest, _, as_of: as_of_seconds(as_of) - newest,
        derived=lambda s: (seconds_column(s), f"unix_micros(CAST({_column(s)} AS TIMESTAMP)) / 1e6"),
        deequ="`hasMax` (of the time in epoch seconds)",
        keys="`columns` (one), `max_lag`",
    ),
):
    CHECK_KINDS.register(_kind)


def reference_table() -> str:
    """The registered kinds as the Markdown table docs/data-quality.md lists."""
    header = (
        "kind",
        "passes when",
        "Deequ",
        "keys",
        "default layer",
        "default action",
        "row-level",
        "a sample decides",
    )
    return markdown_table(
        header,
        [
            (
                f"`{k.name}`",
                k.passes,
                k.deequ,
                k.keys,
                k.layer,
                k.action,
                "yes" if k.row_level else "no",
                f"yes ({k.sample} interval)" if k.sample else "no",
            )
            for k in CHECK_KINDS
        ],
    )
