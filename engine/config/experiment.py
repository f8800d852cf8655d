"""Structured configs of a feature experiment: variants, models, search, metric and time split."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omegaconf import MISSING

from engine.config.choices import one_of
from engine.config.durations import duration_seconds
from engine.config.features import check_name, check_windows
from engine.errors import ConfigError

SEARCHES = ("grid", "random")
METRIC_NAMES = ("auc", "log_loss", "rmse")  # scored by engine.experiments.models.METRICS


@dataclass
class VariantConfig:
    """A feature set, compiled from the features config.

    `groups` picks entity groups (empty: all), whose windowed features are recomputed with
    `windows` and `aggregations` when given (a window the table lacks is computed once for the
    variant); `include` adds the other features whose names start with one of its prefixes
    (calendar parts, joined columns, derived features).
    """

    name: str = MISSING
    groups: list[str] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    aggregations: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        key = f"experiment.variants.{self.name}"
        check_name(self.name, f"{key}.name")  # it names the variant's Delta table and MLflow dataset
        check_windows(self.windows, f"{key}.windows")  # aggregation names: checked with the experiment


@dataclass
class ModelConfig:
    """A scikit-learn model and its search space: each parameter a list of choices, or (random
    search only) a range {low, high} sampled uniformly, or log-uniformly with `log: true`."""

    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SplitConfig:
    """Time-based split: validation rows are the latest `valid_fraction` of rows by `time_column`
    (or those at or after `valid_from`); rows sharing a time never straddle the cut. Training rows
    end `gap` before the cut, so labels that become known late (an arrival delay) cannot reach
    into the validation period."""

    time_column: str = MISSING
    valid_fraction: float = 0.2
    valid_from: str | None = None
    gap: str = "0s"

    def __post_init__(self) -> None:
        if not 0.0 < self.valid_fraction < 1.0:
            raise ConfigError(f"experiment.split.valid_fraction: {self.valid_fraction} is not within (0, 1)")
        if self.valid_from is not None:
            try:
                datetime.fromisoformat(self.valid_from)
            except ValueError:
                raise ConfigError(f"experiment.split.valid_from: '{self.valid_from}' is not an ISO time") from None
        if self.gap != "0s":
            duration_seconds(self.gap, "experiment.split.gap")

    @property
    def gap_seconds(self) -> int:
        return 0 if self.gap == "0s" else duration_seconds(self.gap, "experiment.split.gap")


@dataclass
class ExperimentConfig:
    """A sweep over feature-set variants x models x hyperparameters, run as Ray trials.

    Grid search runs every combination (`trials` > 0 draws that many of them); random search draws
    `trials` combinations. `seed` fixes the draws and the models. Trials run on a local Ray with
    `num_cpus` CPUs, or on the running Ray cluster at `ray_address`; a task whose worker or node dies
    runs again up to `task_retries` times. Variants that need features the table lacks are computed
    once each and written under `variants_path`.
    """

    enabled: bool = False
    name: str = "sweep"
    label: str = "label"
    metric: str = "auc"
    search: str = "grid"
    trials: int = 0
    seed: int = 7
    split: SplitConfig = field(default_factory=lambda: SplitConfig(time_column="event_ts"))
    variants: list[VariantConfig] = field(default_factory=list)
    models: list[ModelConfig] = field(default_factory=list)
    num_cpus: int = 2
    ray_address: str = ""
    task_retries: int = 1
    variants_path: str = "output/delta/variants"

    def __post_init__(self) -> None:
        one_of("experiment.metric", self.metric, METRIC_NAMES)
        one_of("experiment.search", self.search, SEARCHES)
        if self.trials < 0 or (self.search == "random" and self.trials == 0):
            raise ConfigError(f"experiment.trials: {self.trials}; random search needs at least 1, grid 0 (all) or more")
        if self.num_cpus < 1:
            raise ConfigError(f"experiment.num_cpus: {self.num_cpus} must be at least 1")
        if self.task_retries < 0:
            raise ConfigError(f"experiment.task_retries: {self.task_retries} must be 0 or more")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"experiment.variants: names {names} have repeats")
        if self.enabled and not (self.variants and self.models):
            raise ConfigError("experiment: an enabled experiment needs at least one variant and one model")
