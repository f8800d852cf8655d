"""The online groups of a pipeline: one per feature group, with its entity keys, features and TTL."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.durations import duration_seconds
from engine.config.features import FeaturesConfig
from engine.config.training import FeatureTableConfig
from engine.errors import ConfigError
from engine.features.compile import compile_group


@dataclass(frozen=True)
class OnlineGroup:
    """What one entity serves: its key columns, its features (table columns) and their TTL."""

    name: str
    keys: tuple[str, ...]
    features: tuple[str, ...]
    ttl_seconds: int | None

    def as_of_table(self, path: str, version: int, timestamp: str) -> FeatureTableConfig:
        """The group as a training set reads it: the same as-of rule online and offline. The event time is
        taken as a value too, so that a lookup can tell how old a value is."""
        return FeatureTableConfig(
            name=self.name,
            path=path,
            version=str(version),
            keys=list(self.keys),
            timestamp=timestamp,
            features=[*self.features, timestamp],
            ttl=f"{self.ttl_seconds}s" if self.ttl_seconds is not None else "",
        )


def online_groups(features: FeaturesConfig, selected: list[str]) -> list[OnlineGroup]:
    """The feature groups to serve (all when `selected` is empty), in config order."""
    groups = [
        OnlineGroup(
            g.name,
            tuple(g.keys),
            tuple(compile_group(g).features),
            duration_seconds(g.ttl, f"features.groups.{g.name}.ttl") if g.ttl else None,
        )
        for g in features.groups
    ]
    unknown = sorted(set(selected) - {g.name for g in groups})
    if unknown:
        known = ", ".join(g.name for g in groups)
        raise ConfigError(f"materialize.groups: {', '.join(unknown)} not among the feature groups ({known})")
    return [g for g in groups if not selected or g.name in selected]
