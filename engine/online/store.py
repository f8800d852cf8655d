"""The online store's interface: what a materialization writes per group, and what a lookup reads.

A group's write is atomic: a reader sees the values and the state (table, version, as-of time) of one
materialization, never a mix of two, and a write that fails leaves the previous ones served.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any, Protocol

from engine.config.online import OnlineConfig
from engine.errors import FeaturelakeError
from engine.runtime.instants import epoch_micros, from_epoch_micros

Key = tuple[Any, ...]
# A stored entity: its event time (microseconds since the epoch, UTC; None when its value expired by the
# as-of time) and its feature values, in the group's feature order.
Entry = tuple[int | None, tuple[Any, ...]]


class StoreUnavailable(FeaturelakeError):
    """The store cannot be opened or written."""


@dataclass(frozen=True)
class GroupState:
    """What a group holds: which table, version and as-of time its values come from, and their shape."""

    group: str
    table: str
    version: int
    as_of: str  # ISO, UTC
    keys: tuple[str, ...]
    key_types: tuple[str, ...]  # Spark's simple type names, one per key
    features: tuple[str, ...]
    types: tuple[str, ...]  # Spark's simple type names, one per feature
    ttl_seconds: int | None
    written_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GroupState:
        data = json.loads(text)
        names = {f.name for f in fields(cls)}  # a store may keep more beside it (Redis: the namespace)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})

    @property
    def as_of_time(self) -> datetime:
        return datetime.fromisoformat(self.as_of)


class OnlineStore(Protocol):
    """A key-value store of materialized groups."""

    location: str  # where it is, for people (no password)

    def state(self, group: str) -> GroupState | None:
        """The group's state, or None when it was never materialized."""

    def states(self) -> list[GroupState]:
        """Every group's state."""

    def write(self, state: GroupState, rows: Iterable[tuple[Key, Entry]], deleted: Sequence[Key], full: bool) -> int:
        """Atomically: the rows upserted (all the group's rows when `full`), `deleted` removed, `state` set.
        Returns the rows written."""

    def read(self, group: str, keys: Sequence[Key]) -> tuple[GroupState | None, list[Entry | None]]:
        """One round trip: the group's state and each key's entry (None: unknown), consistent with each other."""

    def close(self) -> None: ...


def open_store(cfg: OnlineConfig) -> OnlineStore:
    """The configured store."""
    if cfg.store == "redis":
        from engine.online.redis_store import RedisStore

        return RedisStore(cfg.redis)
    from engine.online.sqlite_store import SqliteStore

    return SqliteStore(cfg.sqlite)


def encode(value: Any) -> Any:
    """A feature value as a store keeps it: numbers, text and None as they are, times as microseconds,
    dates as ISO text, arrays as JSON."""
    if isinstance(value, datetime):
        return epoch_micros(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return json.dumps([encode(v) for v in value])
    return value


def decoder(spark_type: str):
    """The inverse of `encode` for one feature's type."""
    if spark_type == "timestamp" or spark_type == "timestamp_ntz":
        return lambda v: None if v is None else from_epoch_micros(v)
    if spark_type == "date":
        return lambda v: None if v is None else date.fromisoformat(v)
    if spark_type == "boolean":
        return lambda v: None if v is None else bool(v)
    if spark_type.startswith("array<"):
        return lambda v: None if v is None else json.loads(v)
    if spark_type in ("float", "double"):
        return lambda v: None if v is None else float(v)
    return lambda v: v
