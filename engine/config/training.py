"""Structured configs for point-in-time training sets and for the Delta versioning jobs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING

from engine.config.choices import one_of
from engine.config.durations import duration_seconds
from engine.errors import ConfigError

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
VERSION_ACTIONS = ("history", "read", "diff", "restore", "vacuum", "optimize", "tag")
MIN_RETENTION_HOURS = 168.0


class TrainingValues(StrEnum):
    """How feature values reach a training set's spine (`training_set.values`, `engine.training.build`)."""

    AUTO = "auto"
    SWEEP = "sweep"
    WINNERS = "winners"


def check_version_ref(ref: str, key: str) -> None:
    """A pinned version is a version number or a tag name."""
    if not _TAG.match(ref):
        raise ConfigError(f"{key}: '{ref}' is not a version number or a tag name")


@dataclass
class SpineConfig:
    """The rows to label: a Delta table pinned to a version, with its event time and label."""

    path: str = MISSING
    version: str = MISSING
    timestamp: str = MISSING
    label: str = MISSING
    columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_version_ref(self.version, "training_set.spine.version")


@dataclass
class FeatureTableConfig:
    """One feature table pinned to a version, and how its rows become available.

    A row is available at its event time plus `delay` (a scheduled batch job, or a backfill that
    simulates one); a row flagged as a correction is available from its commit time. `ttl` empty
    means values never expire; `strict` joins only rows strictly before the spine time. Ties on the
    event time go to the later `created_column` (empty: the row's commit time, from row tracking).
    """

    name: str = MISSING
    path: str = MISSING
    version: str = MISSING
    keys: list[str] = field(default_factory=list)
    timestamp: str = MISSING
    features: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    ttl: str = ""
    delay: str = "0s"
    strict: bool = False
    created_column: str = ""
    partition_date_column: str = ""
    prefix: str = ""

    def __post_init__(self) -> None:
        key = f"training_set.feature_tables.{self.name}"
        check_version_ref(self.version, f"{key}.version")
        if not self.keys:
            raise ConfigError(f"{key}.keys: at least one entity key is required")
        if self.ttl:
            duration_seconds(self.ttl, f"{key}.ttl")
        if self.delay != "0s":
            duration_seconds(self.delay, f"{key}.delay")
        overlap = sorted(set(self.features) & set(self.exclude))
        if overlap:
            raise ConfigError(f"{key}: {overlap} are both in features and exclude")

    @property
    def ttl_seconds(self) -> int | None:
        return duration_seconds(self.ttl, "ttl") if self.ttl else None

    @property
    def delay_seconds(self) -> int:
        return 0 if self.delay == "0s" else duration_seconds(self.delay, "delay")


@dataclass
class VersionConfig:
    """A versioning job on one Delta table: history, read, diff, restore, vacuum, optimize or tag.

    `table` empty means the job's sink table. `as_of` and `other` are version numbers or tag names;
    `timestamp` reads as of a time instead.
    """

    action: str = "history"
    table: str = ""
    as_of: str = ""
    other: str = ""
    timestamp: str = ""
    tag: str = ""
    limit: int = 20
    retention_hours: float = MIN_RETENTION_HOURS
    allow_short_retention: bool = False
    zorder_by: list[str] = field(default_factory=list)
    where: str = ""

    def __post_init__(self) -> None:
        one_of("version.action", self.action, VERSION_ACTIONS)
        for key in ("as_of", "other"):
            if getattr(self, key):
                check_version_ref(getattr(self, key), f"version.{key}")
        if self.action in ("restore", "tag", "diff") and not self.as_of:
            raise ConfigError(f"version.as_of: a {self.action} needs a version number or tag")
        if self.action == "tag" and (not _TAG.match(self.tag) or self.tag.isdigit()):
            raise ConfigError(f"version.tag: '{self.tag}' is not a tag name like train-2026-11")
        if self.as_of and self.timestamp:
            raise ConfigError("version: give as_of or timestamp, not both")
        if self.retention_hours < 0 or self.limit < 1:
            raise ConfigError("version: retention_hours must be 0 or more and limit at least 1")
