"""Structured configs: the schema of every config group, registered in Hydra's ConfigStore.

YAML under conf/ only fills in values; OmegaConf type-checks them against these dataclasses,
so an unknown key or a wrong type fails before Spark starts. `__post_init__` adds the checks
a type cannot express (durations, allowed names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from engine.config.choices import enum_of
from engine.config.experiment import ExperimentConfig
from engine.config.features import FeaturesConfig
from engine.config.observability import ObservabilityConfig
from engine.config.online import MaterializeConfig, OnlineConfig
from engine.config.pipeline import PipelineConfig
from engine.config.quality import QualityConfig, SuggestConfig, ValidateConfig
from engine.config.resilience import ResilienceConfig
from engine.config.training import FeatureTableConfig, SpineConfig, TrainingValues, VersionConfig
from engine.errors import ConfigError


@dataclass
class JobConfig:
    name: str = MISSING
    run_record_dir: str = "output/runs"
    log_dir: str = "output/logs"


class SinkMode(StrEnum):
    """How a write meets the table: `overwrite` replaces it (or, with a range, only that range through
    `replaceWhere`), `append` adds rows, `merge` upserts on `merge_keys` (entity keys and timestamp)."""

    OVERWRITE = "overwrite"
    APPEND = "append"
    MERGE = "merge"


class SchemaPolicy(StrEnum):
    """What a write may do to the table's schema: `evolve` adds new columns and refuses dropped or retyped
    ones, `strict` refuses any change, `replace` lets a full overwrite replace the schema."""

    EVOLVE = "evolve"
    STRICT = "strict"
    REPLACE = "replace"


@dataclass
class SinkConfig:
    """Where and how a job writes its Delta table: its mode (SinkMode) and schema policy (SchemaPolicy).
    `correction` marks the rows as late corrections, which training sets treat as available only from
    their commit time.

    `mode` and `schema_policy` are typed str for OmegaConf; once validated they hold SinkMode and
    SchemaPolicy members (which equal their strings).
    """

    path: str = "output/delta/features"
    mode: str = SinkMode.OVERWRITE.value
    merge_keys: list[str] = field(default_factory=list)
    partition_by: list[str] = field(default_factory=list)
    cluster_by: list[str] = field(default_factory=list)
    zorder_by: list[str] = field(default_factory=list)
    schema_policy: str = SchemaPolicy.EVOLVE.value
    correction: bool = False
    commit_retries: int = 3

    def __post_init__(self) -> None:
        self.mode = enum_of("sink.mode", self.mode, SinkMode)
        self.schema_policy = enum_of("sink.schema_policy", self.schema_policy, SchemaPolicy)
        if self.mode == SinkMode.MERGE and not self.merge_keys:
            raise ConfigError("sink.merge_keys: a merge needs the entity keys and timestamp to match rows on")
        if self.cluster_by and self.partition_by:
            raise ConfigError("sink.cluster_by: liquid clustering and partition_by cannot be combined")
        if self.commit_retries < 0:
            raise ConfigError(f"sink.commit_retries: {self.commit_retries} must be 0 or more")


# The master URLs Spark accepts: local modes, standalone (with fail-over hosts), YARN, Kubernetes, Mesos.
_MASTER = re.compile(
    r"^(local(\[(\d+|\*)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]|spark://[\w.-]+:\d+(,[\w.-]+:\d+)*"
    r"|yarn|k8s://\S+|mesos://\S+)$"
)


class SparkMode(StrEnum):
    """`local` builds a session with the cached jars; `cluster` and `databricks` join the launcher's."""

    LOCAL = "local"
    CLUSTER = "cluster"
    DATABRICKS = "databricks"


@dataclass
class SparkConfig:
    """How to get a SparkSession (SparkMode). `mode` is typed str for OmegaConf; once validated it holds
    a SparkMode member (which equals its string)."""

    mode: str = SparkMode.LOCAL.value
    master: str = "local[2]"
    app_name: str = "featurelake"
    driver_memory: str = "4g"
    shuffle_partitions: int = 4
    jar_cache: str = ".cache/jars"
    conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mode = enum_of("spark.mode", self.mode, SparkMode)
        if self.shuffle_partitions < 1:
            raise ConfigError(f"spark.shuffle_partitions: {self.shuffle_partitions} must be at least 1")
        if self.master and not _MASTER.match(self.master):
            raise ConfigError(
                f"spark.master: '{self.master}' is not a Spark master URL "
                "(local[N], local[*], spark://host:port, yarn, k8s://https://host:port)"
            )


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///output/mlflow.db"
    artifact_location: str = "output/mlartifacts"
    experiment_name: str = "featurelake"


@dataclass
class TrainingSetConfig:
    """A point-in-time training set: a pinned spine joined as of its times to pinned feature tables.

    `values` says how feature values reach the spine: `sweep` carries them through the as-of sort,
    `winners` sorts times alone and joins the winning rows' values afterwards, `auto` takes `winners`
    for a set of keys whose tables hold many features (see engine/training/build.py)."""

    spine: SpineConfig = MISSING
    feature_tables: list[FeatureTableConfig] = field(default_factory=list)
    output: SinkConfig = field(default_factory=lambda: SinkConfig(path="output/delta/training_set"))
    values: str = TrainingValues.AUTO.value  # a TrainingValues member once validated

    def __post_init__(self) -> None:
        self.values = enum_of("training_set.values", self.values, TrainingValues)
        if not self.feature_tables:
            raise ConfigError("training_set.feature_tables: at least one feature table is required")
        names = [t.name for t in self.feature_tables]
        if len(set(names)) != len(names):
            raise ConfigError(f"training_set.feature_tables: names must be unique, got {names}")
        if self.output.mode == SinkMode.MERGE:
            raise ConfigError("training_set.output.mode: a training set is written whole (overwrite) or appended")
        for table in self.feature_tables:  # the spine's label is never a feature, even where a table holds it
            if self.spine.label not in (*table.features, *table.exclude):
                table.exclude = [*table.exclude, self.spine.label]


@dataclass
class FeaturelakeConfig:
    """The whole config. With a pipeline, the features are computed as of its entity's timestamp and
    known-at time (which `features.timestamp` and `features.known_at` take from it)."""

    job: JobConfig = field(default_factory=JobConfig)
    pipeline: PipelineConfig | None = None
    quality: QualityConfig = field(default_factory=QualityConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    resilience: ResilienceConfig = field(default_factory=ResilienceConfig)
    training_set: TrainingSetConfig | None = None
    version: VersionConfig | None = None
    validate: ValidateConfig | None = None
    suggest: SuggestConfig | None = None
    online: OnlineConfig = field(default_factory=OnlineConfig)
    materialize: MaterializeConfig | None = None

    def __post_init__(self) -> None:
        if self.pipeline is None:
            return
        entity = self.pipeline.entity
        self.features.timestamp, self.features.known_at = entity.timestamp, entity.known_at or None


GROUPS = {
    "job": JobConfig,
    "pipeline": PipelineConfig,
    "quality": QualityConfig,
    "features": FeaturesConfig,
    "sink": SinkConfig,
    "spark": SparkConfig,
    "tracking": TrackingConfig,
    "experiment": ExperimentConfig,
    "observability": ObservabilityConfig,
    "resilience": ResilienceConfig,
    "training_set": TrainingSetConfig,
    "version": VersionConfig,
    "validate": ValidateConfig,
    "suggest": SuggestConfig,
    "online": OnlineConfig,
    "materialize": MaterializeConfig,
}


def register() -> None:
    """Register the root schema and one schema per group, which the YAML files extend."""
    store = ConfigStore.instance()
    store.store(name="featurelake_schema", node=FeaturelakeConfig)
    for group, node in GROUPS.items():
        store.store(group=group, name=f"{group}_schema", node=node)
