"""Structured configs for the online store and for `job=materialize`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from omegaconf import MISSING

from engine.config.choices import one_of, require
from engine.errors import ConfigError

STORES = ("sqlite", "redis")
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]+$")


@dataclass
class SqliteStoreConfig:
    """The embedded store: one SQLite file (WAL mode), one table per feature group."""

    path: str = "output/online/features.db"


@dataclass
class RedisStoreConfig:
    """A Redis server. The password is read from the environment variable named here, never from YAML."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    key_prefix: str = "featurelake"
    password_env: str = "FEATURELAKE_REDIS_PASSWORD"
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.key_prefix):
            raise ConfigError(f"online.redis.key_prefix: '{self.key_prefix}' may hold only letters, digits and _.:-")
        require("online.redis.port", self.port, 0 < self.port < 65536, "is not a port")


@dataclass
class OnlineConfig:
    """Where materialized features are served from: `store` selects one of the two."""

    store: str = "sqlite"
    sqlite: SqliteStoreConfig = field(default_factory=SqliteStoreConfig)
    redis: RedisStoreConfig = field(default_factory=RedisStoreConfig)

    def __post_init__(self) -> None:
        one_of("online.store", self.store, STORES)


@dataclass
class MaterializeConfig:
    """Which pinned version of the feature table to serve, as of when, and for which feature groups.

    `version` is a version number, a tag, or `latest`; `timestamp` pins the newest version committed at or
    before a time instead. `as_of` empty means now. `groups` empty means every feature group. `full`
    rewrites every entity even when the store holds an earlier version of the same table.
    """

    table: str = MISSING
    version: str = "latest"
    timestamp: str = ""
    as_of: str = ""
    groups: list[str] = field(default_factory=list)
    full: bool = False

    def __post_init__(self) -> None:
        if self.version != "latest" and self.timestamp:
            raise ConfigError("materialize: set version or timestamp, not both")
        for key, value in (("timestamp", self.timestamp), ("as_of", self.as_of)):
            if value:
                parse_time(value, f"materialize.{key}")


def parse_time(value: str, key: str) -> datetime:
    """An ISO time; without a zone it is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{key}: '{value}' is not an ISO time (2013-12-31T23:00:00)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
