"""Data-quality configs: declarative checks, the sampling and gate settings, and file sources.

A check names its kind, the columns it reads, its bounds, its layer (schema, statistical,
business, ml), its severity and the action taken when it fails. Layer and action default from
the kind, so a YAML check usually needs only a name, a kind, columns and a bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from engine.config.durations import duration_seconds
from engine.errors import ConfigError, first_line

RATIO_KINDS = (
    "completeness",
    "allowed_values",
    "range",
    "non_negative",
    "pattern",
    "satisfies",
    "references",
    "not_in_future",
)
BOUND_KINDS = ("size", "mean", "stddev", "quantile", "freshness")
CHECK_KINDS = ("schema", "unique", *RATIO_KINDS, *BOUND_KINDS)
ROW_KINDS = ("completeness", "allowed_values", "range", "non_negative", "pattern", "satisfies", "not_in_future")
SAMPLED_KINDS = ("completeness", "allowed_values", "range", "non_negative", "pattern", "mean", "stddev", "quantile")
LAYERS = ("schema", "statistical", "business", "ml")
SEVERITIES = ("error", "warning")


class GateAction(StrEnum):
    """What a failed error-severity check does to the run (a warning-severity check can only warn)."""

    HALT_PIPELINE = "halt_pipeline"
    QUARANTINE_DATA = "quarantine_data"
    USE_CACHED_FEATURES = "use_cached_features"
    WARN = "warn"


ACTIONS = tuple(GateAction)
FORMATS = ("parquet", "csv", "json", "avro", "orc", "delta")
DEFAULT_COMPLETENESS = 0.95

_DEFAULT_LAYER = {
    "schema": "schema",
    "unique": "schema",
    "size": "business",
    "satisfies": "business",
    "references": "business",
    "freshness": "business",
    "not_in_future": "business",  # a sample cannot prove that no row lies in the future
}
_DEFAULT_ACTION = {
    "completeness": GateAction.QUARANTINE_DATA,
    "not_in_future": GateAction.QUARANTINE_DATA,
    "freshness": GateAction.USE_CACHED_FEATURES,
}
_SINGLE_COLUMN = (
    "allowed_values",
    "range",
    "non_negative",
    "pattern",
    "mean",
    "stddev",
    "quantile",
    "freshness",
    "not_in_future",
)


@dataclass
class CheckConfig:
    """One declarative data-quality check on one dataset.

    Ratio kinds pass when the share of complying rows is at least `threshold` (default 1, and
    0.95 for completeness: a null ratio above 0.05 quarantines the rows); bound kinds pass
    when their metric (rows, mean, standard deviation, quantile, lag in seconds) is within
    [`min`, `max`]. Empty `layer` and `action` take the kind's defaults. `action` is typed str for
    OmegaConf; once validated it holds a GateAction member (which equals its string).
    """

    name: str = MISSING
    kind: str = MISSING
    columns: list[str] = field(default_factory=list)
    threshold: float | None = None
    min: float | None = None
    max: float | None = None
    values: list[str] = field(default_factory=list)
    pattern: str = ""
    predicate: str = ""
    quantile: float = 0.5
    types: dict[str, str] = field(default_factory=dict)
    reference: str = ""
    reference_columns: list[str] = field(default_factory=list)
    max_lag: str = ""
    layer: str = ""
    severity: str = "error"
    action: str = ""

    def __post_init__(self) -> None:
        key = f"checks.{self.name}"
        if self.kind not in CHECK_KINDS:
            raise ConfigError(f"{key}.kind: '{self.kind}' is not one of {', '.join(CHECK_KINDS)}")
        if self.threshold is None:
            self.threshold = DEFAULT_COMPLETENESS if self.kind == "completeness" else 1.0
        self.layer = self.layer or _DEFAULT_LAYER.get(self.kind, "statistical")
        self.action = self.action or _default_action(self.kind, self.layer, self.severity)
        if self.layer not in LAYERS:
            raise ConfigError(f"{key}.layer: '{self.layer}' is not one of {', '.join(LAYERS)}")
        if self.severity not in SEVERITIES:
            raise ConfigError(f"{key}.severity: '{self.severity}' is not error or warning")
        if self.action not in ACTIONS:
            raise ConfigError(f"{key}.action: '{self.action}' is not one of {', '.join(ACTIONS)}")
        self.action = GateAction(self.action)
        if self.severity == "warning" and self.action != GateAction.WARN:
            raise ConfigError(f"{key}.action: a warning check can only warn, not {self.action}")
        if self.action == GateAction.QUARANTINE_DATA and self.kind not in ROW_KINDS:
            raise ConfigError(f"{key}.action: only row-level checks ({', '.join(ROW_KINDS)}) can quarantine rows")
        if self.kind == "schema" and self.layer != "schema":
            raise ConfigError(f"{key}.layer: a schema check runs in the schema layer")
        self._check_shape(key)

    def _check_shape(self, key: str) -> None:
        needs_columns = self.kind not in ("size", "satisfies", "schema") or (self.kind == "schema" and not self.types)
        if needs_columns and not self.columns:
            raise ConfigError(f"{key}.columns: at least one column is required")
        if self.kind in _SINGLE_COLUMN and len(self.columns) != 1:
            raise ConfigError(f"{key}.columns: a {self.kind} check takes exactly one column")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"{key}.threshold: {self.threshold} is not within 0..1")
        if self.kind in ("range", "size", "mean", "stddev", "quantile") and self.min is None and self.max is None:
            raise ConfigError(f"{key}: a {self.kind} check needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"{key}: min {self.min} is above max {self.max}")
        if self.kind == "allowed_values" and not self.values:
            raise ConfigError(f"{key}.values: an allowed_values check needs values")
        if self.kind == "pattern":
            try:
                re.compile(self.pattern or "(")
            except re.error as err:
                raise ConfigError(f"{key}.pattern: '{self.pattern}' is not a regular expression ({err})") from err
        if self.kind == "satisfies" and not self.predicate.strip():
            raise ConfigError(f"{key}.predicate: a satisfies check needs a SQL predicate")
        if self.kind == "quantile" and not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"{key}.quantile: {self.quantile} is not within (0, 1)")
        if self.kind == "references":
            if not self.reference:
                raise ConfigError(f"{key}.reference: a references check names the dataset it refers to")
            if self.reference_columns and len(self.reference_columns) != len(self.columns):
                raise ConfigError(f"{key}.reference_columns: give one per column ({len(self.columns)})")
        if self.kind == "freshness":
            duration_seconds(self.max_lag, f"{key}.max_lag")

    @property
    def max_lag_seconds(self) -> int:
        return duration_seconds(self.max_lag, f"checks.{self.name}.max_lag")


def _default_action(kind: str, layer: str, severity: str) -> GateAction:
    if severity == "warning" or layer == "ml":
        return GateAction.WARN
    return _DEFAULT_ACTION.get(kind, GateAction.HALT_PIPELINE)


def unique_names(checks: list[CheckConfig], key: str) -> None:
    names = [c.name for c in checks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{key}: names must be unique, repeated: {', '.join(duplicates)}")


@dataclass
class DriftConfig:
    """ML checks on the feature table: drift of each feature against the table's previous version,
    and leakage. `time_columns` maps a feature to the column holding when its value became known;
    a row where that time is after `label_time` leaks. Distributions are compared on uniform
    samples of about `sample_rows` rows of each version (0: all rows); late rows are counted exactly."""

    enabled: bool = True
    bins: int = 10
    max_psi: float = 0.25
    max_js: float = 0.2
    max_linf: float = 0.2
    max_feature_auc: float = 0.99
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    label_time: str = ""
    time_columns: dict[str, str] = field(default_factory=dict)
    sample_rows: int = 100_000
    seed: int = 17

    def __post_init__(self) -> None:
        if not 2 <= self.bins <= 100:
            raise ConfigError(f"quality.drift.bins: {self.bins} is not within 2..100")


ANOMALY_STRATEGIES = (
    "relative_rate_of_change",
    "absolute_change",
    "online_normal",
    "batch_normal",
    "simple_thresholds",
)


@dataclass
class AnomalyConfig:
    """Which Deequ anomaly strategy judges each tracked metric against its history, with its two bounds.

    - `relative_rate_of_change` (default): current/previous outside [`lower`, `upper`];
    - `absolute_change`: current - previous outside [`lower`, `upper`];
    - `online_normal`, `batch_normal`: more than `lower` (below) or `upper` (above) standard deviations
      from the history's mean;
    - `simple_thresholds`: the value itself outside [`lower`, `upper`].
    """

    strategy: str = "relative_rate_of_change"
    lower: float = 0.5
    upper: float = 2.0

    def __post_init__(self) -> None:
        key = "quality.anomaly"
        if self.strategy not in ANOMALY_STRATEGIES:
            raise ConfigError(f"{key}.strategy: '{self.strategy}' is not one of {', '.join(ANOMALY_STRATEGIES)}")
        if self.strategy == "relative_rate_of_change" and not 0.0 <= self.lower <= 1.0 <= self.upper:
            raise ConfigError(f"{key}: a relative rate of change needs 0 <= lower <= 1 <= upper")
        if self.strategy in ("online_normal", "batch_normal") and min(self.lower, self.upper) < 0:
            raise ConfigError(f"{key}: deviation factors lower and upper cannot be negative")
        if self.lower > self.upper and self.strategy in ("absolute_change", "simple_thresholds"):
            raise ConfigError(f"{key}: lower {self.lower} is above upper {self.upper}")


@dataclass
class QualityConfig:
    """How checks run: the sample, its confidence, the run's as-of time, and where results go.

    A Parquet or Delta source is sampled by whole row groups, at least `sample_row_groups` of them (0:
    always by rows), when they hold at most a quarter of its rows; otherwise by rows.

    `as_of` (ISO time, empty for now) is the time freshness is measured against. Malformed lines go
    to quarantine; above `max_malformed_share` of a source's lines they halt the run instead. Anomalies
    judge each tracked metric against the metrics history with a Deequ strategy (`anomaly`); they warn.
    """

    sample_rows: int = 10_000
    sample_row_groups: int = 50
    confidence: float = 0.95
    seed: int = 13
    as_of: str = ""
    report_dir: str = "output/reports"
    quarantine_path: str = "output/delta/quarantine"
    metrics_path: str = "output/delta/quality_metrics"
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    max_malformed_share: float = 0.01
    drift: DriftConfig = field(default_factory=DriftConfig)

    def __post_init__(self) -> None:
        if self.sample_rows < 100:
            raise ConfigError(f"quality.sample_rows: {self.sample_rows} is too small for an interval (100 or more)")
        if self.sample_row_groups and self.sample_row_groups < 10:
            raise ConfigError(
                f"quality.sample_row_groups: {self.sample_row_groups} is too few for an interval (0, or 10 or more)"
            )
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"quality.confidence: {self.confidence} is not within [0.5, 1)")
        if self.as_of:
            try:
                datetime.fromisoformat(self.as_of)
            except ValueError as err:
                raise ConfigError(f"quality.as_of: '{self.as_of}' is not an ISO date-time") from err
        if not 0.0 <= self.max_malformed_share <= 1.0:
            raise ConfigError(f"quality.max_malformed_share: {self.max_malformed_share} is not within 0..1")


@dataclass
class FileSourceConfig:
    """A dataset read from files or a table: format, path or URI, explicit schema (Spark DDL), reader options.

    CSV and JSON are read in permissive mode: malformed lines are kept in a corrupt-record
    column, counted and quarantined, never dropped. Delta may be pinned to a `version` or a
    `timestamp_as_of`. A path of http(s) is fetched (with retries) and a local `.zip` extracted, into
    the staging folder. In a pipeline, `filter` (SQL) keeps rows, `day` (SQL, a date) places a row in
    `pipeline.days`, `columns` adds event columns, each an SQL expression over the source's columns
    and the event columns before it, and `checks` are the source's data-quality checks. A source with
    no rows fails its job unless `allow_empty` (`job=validate` and references; features always need rows).
    """

    name: str = MISSING
    format: str = MISSING
    path: str = MISSING
    schema: str = ""
    options: dict[str, str] = field(default_factory=dict)
    version: int | None = None
    timestamp_as_of: str = ""
    filter: str = ""
    day: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    checks: list[CheckConfig] = field(default_factory=list)
    allow_empty: bool = False

    def __post_init__(self) -> None:
        key = f"source {self.name}"
        if self.format not in FORMATS:
            raise ConfigError(f"{key}.format: '{self.format}' is not one of {', '.join(FORMATS)}")
        if self.format in ("csv", "json") and not self.schema.strip():
            raise ConfigError(f"{key}.schema: a {self.format} source needs an explicit schema (Spark DDL)")
        if (self.version is not None or self.timestamp_as_of) and self.format != "delta":
            raise ConfigError(f"{key}.version: only a delta source can be read as of a version or time")
        if self.version is not None and self.timestamp_as_of:
            raise ConfigError(f"{key}.timestamp_as_of: pin a version or a time, not both")
        if self.timestamp_as_of:
            try:
                datetime.fromisoformat(self.timestamp_as_of)
            except ValueError:
                raise ConfigError(f"{key}.timestamp_as_of: '{self.timestamp_as_of}' is not an ISO date-time") from None


@dataclass
class ValidateConfig:
    """`job=validate`: one source (declared as a pipeline's sources are), its checks (`checks`, or else the
    source's own), the sources they refer to, and where passed rows go."""

    source: FileSourceConfig = MISSING
    checks: list[CheckConfig] = field(default_factory=list)
    references: list[FileSourceConfig] = field(default_factory=list)
    output_path: str = ""
    checks_file: str = ""

    def __post_init__(self) -> None:
        if not self.checks and not self.checks_file:
            self.checks = list(self.source.checks)
        if not self.checks and not self.checks_file:
            raise ConfigError("validate.checks: at least one check is required (or validate.checks_file)")
        unique_names(self.checks, "validate.checks")
        known = {r.name for r in self.references}
        for check in self.checks:
            if check.kind == "references" and check.reference not in known:
                raise ConfigError(f"checks.{check.name}.reference: '{check.reference}' is not in validate.references")
            if check.action == GateAction.USE_CACHED_FEATURES:
                raise ConfigError(f"checks.{check.name}.action: job=validate has no feature table to serve")


def load_checks_file(path: str) -> list[CheckConfig]:
    """The `checks` list of a YAML file (as `job=suggest_checks` writes it), validated like config."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"validate.checks_file: no such file: {path}")
    try:
        content = OmegaConf.load(file)
        items = content.get("checks") if isinstance(content, DictConfig) else None
        if not items:
            raise ConfigError(f"validate.checks_file: {path} has no `checks` list")
        checks = [OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(CheckConfig), item)) for item in items]
    except OmegaConfBaseException as err:
        raise ConfigError(f"validate.checks_file: {path}: {first_line(err)}") from err
    unique_names(checks, f"validate.checks_file {path}")
    return checks


@dataclass
class SuggestConfig:
    """`job=suggest_checks`: the source to profile and the checks YAML to write."""

    source: FileSourceConfig = MISSING
    output: str = "output/suggested_checks.yaml"
    max_allowed_values: int = 20
