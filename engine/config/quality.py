"""Data-quality configs: declarative checks, the sampling and gate settings, and file sources.

A check names its kind, the columns it reads, its bounds, its layer (schema, statistical,
business, ml), its severity and the action taken when it fails. Layer and action default from
the kind, so a YAML check usually needs only a name, a kind, columns and a bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from engine.config.check_kinds import CHECK_KINDS, Bound, CheckKind, Columns, Evaluator, GateAction, Layer, Severity
from engine.config.choices import enum_of
from engine.config.durations import duration_seconds
from engine.errors import ConfigError, first_line

FORMATS = ("parquet", "csv", "json", "avro", "orc", "delta")


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
        kind = CHECK_KINDS.get(self.kind, f"{key}.kind")
        if self.threshold is None:
            self.threshold = kind.threshold
        self.severity = enum_of(f"{key}.severity", self.severity, Severity)
        self.layer = enum_of(f"{key}.layer", self.layer or kind.layer, Layer)
        default = GateAction.WARN if self.severity == Severity.WARNING or self.layer == Layer.ML else kind.action
        self.action = enum_of(f"{key}.action", self.action or default, GateAction)
        if self.severity == Severity.WARNING and self.action != GateAction.WARN:
            raise ConfigError(f"{key}.action: a warning check can only warn, not {self.action}")
        if self.action == GateAction.QUARANTINE_DATA and not kind.row_level:
            row_kinds = ", ".join(k.name for k in CHECK_KINDS if k.row_level)
            raise ConfigError(f"{key}.action: only row-level checks ({row_kinds}) can quarantine rows")
        if kind.evaluator == Evaluator.SCHEMA and self.layer != Layer.SCHEMA:
            raise ConfigError(f"{key}.layer: a {self.kind} check runs in the schema layer")
        self._check_shape(key, kind)

    def _check_shape(self, key: str, kind: CheckKind) -> None:
        if kind.columns == Columns.SOME and not self.columns:
            raise ConfigError(f"{key}.columns: at least one column is required")
        if kind.columns == Columns.ONE and len(self.columns) != 1:
            raise ConfigError(f"{key}.columns: a {self.kind} check takes exactly one column")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"{key}.threshold: {self.threshold} is not within 0..1")
        if kind.bound == Bound.RANGE and self.min is None and self.max is None:
            raise ConfigError(f"{key}: a {self.kind} check needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"{key}: min {self.min} is above max {self.max}")
        if kind.validate is not None:
            kind.validate(self, key)

    @property
    def check_kind(self) -> CheckKind:
        return CHECK_KINDS.get(self.kind, f"checks.{self.name}.kind")

    @property
    def max_lag_seconds(self) -> int:
        return duration_seconds(self.max_lag, f"checks.{self.name}.max_lag")


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


class AnomalyStrategy(StrEnum):
    """The Deequ anomaly detection strategies a tracked metric may be judged by (`engine.quality.history`)."""

    RELATIVE_RATE_OF_CHANGE = "relative_rate_of_change"
    ABSOLUTE_CHANGE = "absolute_change"
    ONLINE_NORMAL = "online_normal"
    BATCH_NORMAL = "batch_normal"
    SIMPLE_THRESHOLDS = "simple_thresholds"

    @property
    def deequ_class(self) -> str:
        """The pydeequ class of the strategy (`pydeequ.anomaly_detection`), constructed with (lower, upper)."""
        return {
            "relative_rate_of_change": "RelativeRateOfChangeStrategy",
            "absolute_change": "AbsoluteChangeStrategy",
            "online_normal": "OnlineNormalStrategy",
            "batch_normal": "BatchNormalStrategy",
            "simple_thresholds": "SimpleThresholdStrategy",
        }[self.value]


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
        self.strategy = enum_of(f"{key}.strategy", self.strategy, AnomalyStrategy)
        if self.strategy == AnomalyStrategy.RELATIVE_RATE_OF_CHANGE and not 0.0 <= self.lower <= 1.0 <= self.upper:
            raise ConfigError(f"{key}: a relative rate of change needs 0 <= lower <= 1 <= upper")
        if (
            self.strategy in (AnomalyStrategy.ONLINE_NORMAL, AnomalyStrategy.BATCH_NORMAL)
            and min(self.lower, self.upper) < 0
        ):
            raise ConfigError(f"{key}: deviation factors lower and upper cannot be negative")
        if self.lower > self.upper and self.strategy in (
            AnomalyStrategy.ABSOLUTE_CHANGE,
            AnomalyStrategy.SIMPLE_THRESHOLDS,
        ):
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
            if check.check_kind.evaluator == Evaluator.REFERENCES and check.reference not in known:
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
