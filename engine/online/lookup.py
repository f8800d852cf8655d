"""`get_online_features`: the values of features for entity rows, each with its status and origin.

Features are named `group:feature`. A batch of entity rows is one store read per group. A value's
status is `present`, `null` (the entity's latest row has no value), `expired` (its latest row is older
than the group's TTL at the lookup time, the value is None) or `unknown` (the store has no such entity).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.errors import FeaturelakeError
from engine.online.store import GroupState, OnlineStore, decoder
from engine.runtime.instants import epoch_micros

PRESENT, NULL, EXPIRED, UNKNOWN = "present", "null", "expired", "unknown"


class LookupError_(FeaturelakeError):
    """A request names a feature, group or key the store does not serve."""


@dataclass(frozen=True)
class Origin:
    """Where a group's values come from."""

    table: str
    version: int
    as_of: str


@dataclass
class OnlineFeatures:
    """The answer: per entity row, each requested feature's value and status; per group, its origin."""

    features: list[str]
    values: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, str]] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "values": self.values,
            "statuses": self.statuses,
            "origins": {g: o.__dict__ for g, o in self.origins.items()},
        }


def _requested(features: Sequence[str]) -> dict[str, list[str]]:
    """The requested features by group, in request order."""
    groups: dict[str, list[str]] = {}
    for name in features:
        group, sep, feature = name.partition(":")
        if not sep or not group or not feature:
            raise LookupError_(f"feature '{name}' is not named group:feature")
        groups.setdefault(group, []).append(feature)
    return groups


def _key(row: Mapping[str, Any], state: GroupState, index: int) -> tuple[Any, ...]:
    missing = [k for k in state.keys if k not in row]
    if missing:
        raise LookupError_(f"entity row {index} has no {', '.join(missing)} (the keys of group {state.group})")
    return tuple(_coerce(row[k], t, k) for k, t in zip(state.keys, state.key_types, strict=True))


def _coerce(value: Any, spark_type: str, name: str) -> Any:
    """A key as the store holds it: JSON numbers and strings are taken for the key's type where they fit."""
    if spark_type in ("int", "bigint", "smallint", "tinyint"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise LookupError_(f"key {name}: {value!r} is not an integer")
        try:
            return int(value)
        except ValueError:
            raise LookupError_(f"key {name}: {value!r} is not an integer") from None
    if spark_type == "string" and not isinstance(value, str):
        raise LookupError_(f"key {name}: {value!r} is not a string")
    return value


class OnlineClient:
    """Lookups against one store. Each group's shape (keys, features, types) is kept from its last read,
    so a lookup is one store read per group; a read that finds a new shape is redone once with it."""

    def __init__(self, store: OnlineStore) -> None:
        self.store = store
        self._shapes: dict[str, GroupState] = {}

    def _shape(self, group: str) -> GroupState:
        if group not in self._shapes:
            held = self.store.state(group)
            if held is None:
                raise LookupError_(f"group '{group}' is not in the online store (materialize it first)")
            self._shapes[group] = held
        return self._shapes[group]

    def _read(self, group: str, wanted: list[str], rows: Sequence[Mapping[str, Any]]) -> tuple[GroupState, list]:
        for attempt in (1, 2):
            shape = self._shape(group)
            unknown = [f for f in wanted if f not in shape.features]
            if unknown:
                raise LookupError_(f"group {group} has no feature {', '.join(unknown)}")
            state, entries = self.store.read(group, [_key(row, shape, i) for i, row in enumerate(rows)])
            if state is None:
                self._shapes.pop(group, None)
                raise LookupError_(f"group '{group}' is not in the online store (materialize it first)")
            if _same_shape(state, shape) or attempt == 2:
                return state, entries
            self._shapes[group] = state
        raise AssertionError("unreachable")

    def get_online_features(
        self, entity_rows: Sequence[Mapping[str, Any]], features: Sequence[str], at: datetime | None = None
    ) -> OnlineFeatures:
        """The features' values for each entity row; the TTL is measured at `at` (default: now)."""
        now_us = epoch_micros(at or datetime.now(UTC))
        answer = OnlineFeatures(list(features))
        answer.values = [{} for _ in entity_rows]
        answer.statuses = [{} for _ in entity_rows]
        for group, wanted in _requested(features).items():
            state, entries = self._read(group, wanted, entity_rows)
            positions = {f: i for i, f in enumerate(state.features)}
            decoders = {f: decoder(state.types[positions[f]]) for f in wanted}
            answer.origins[group] = Origin(state.table, state.version, state.as_of)
            ttl_us = state.ttl_seconds * 1_000_000 if state.ttl_seconds is not None else None
            for values, statuses, entry in zip(answer.values, answer.statuses, entries, strict=True):
                event = entry[0] if entry is not None else None
                expired = entry is not None and (event is None or (ttl_us is not None and now_us - event > ttl_us))
                for feature in wanted:
                    name = f"{group}:{feature}"
                    if entry is None or expired:
                        values[name], statuses[name] = None, UNKNOWN if entry is None else EXPIRED
                        continue
                    raw = entry[1][positions[feature]]
                    values[name] = decoders[feature](raw)
                    statuses[name] = PRESENT if raw is not None else NULL
        return answer


def _same_shape(a: GroupState, b: GroupState) -> bool:
    return (a.keys, a.key_types, a.features, a.types) == (b.keys, b.key_types, b.features, b.types)


def get_online_features(
    store: OnlineStore,
    entity_rows: Sequence[Mapping[str, Any]],
    features: Sequence[str],
    at: datetime | None = None,
) -> OnlineFeatures:
    """One lookup: the features' values for each entity row; the TTL is measured at `at` (default: now)."""
    return OnlineClient(store).get_online_features(entity_rows, features, at)
