"""Feature-set variants compiled against the features config: the columns each one needs, and the
features config that computes them when the table lacks some (a longer window, another aggregation)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace

from engine.config.experiment import VariantConfig
from engine.config.features import FeaturesConfig, GroupConfig
from engine.errors import ConfigError
from engine.features.table import feature_names

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class VariantPlan:
    """A variant's feature columns and the (narrowed) features config that produces exactly them."""

    name: str
    features: list[str]
    features_config: FeaturesConfig

    def missing(self, columns: list[str]) -> list[str]:
        """The variant's features a table with `columns` lacks."""
        present = set(columns)
        return [f for f in self.features if f not in present]

    @property
    def key(self) -> str:
        """Identifies the computation: variants with the same features config share one."""
        text = json.dumps(asdict(self.features_config), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _matches(name: str, prefixes: list[str]) -> bool:
    return name.startswith(tuple(prefixes)) if prefixes else False


def _narrow_group(group: GroupConfig, variant: VariantConfig) -> GroupConfig:
    """The group with the variant's windows (for every aggregation) and only its aggregation functions."""
    aggregations = []
    for agg in group.aggregations:
        functions = [f for f in agg.functions if not variant.aggregations or f in variant.aggregations]
        if functions:
            aggregations.append(replace(agg, functions=functions, windows=None if variant.windows else agg.windows))
    return replace(group, windows=list(variant.windows or group.windows), aggregations=aggregations)


def variant_features(variant: VariantConfig, base: FeaturesConfig) -> FeaturesConfig:
    """The features config of one variant: its groups narrowed, plus the other features it includes."""
    known = [g.name for g in base.groups]
    unknown = sorted(set(variant.groups) - set(known))
    if unknown:
        raise ConfigError(f"experiment.variants.{variant.name}.groups: {unknown} are not feature groups ({known})")
    groups = [_narrow_group(g, variant) for g in base.groups if not variant.groups or g.name in variant.groups]
    time = base.time_features
    if time is not None:
        parts = [p for p in time.parts if _matches(f"{time.prefix}_{p}", variant.include)]
        time = replace(time, parts=parts) if parts else None
    try:
        return replace(
            base,
            groups=groups,
            time_features=time,
            derived=[d for d in base.derived if _matches(d.name, variant.include)],
            weather_columns=[c for c in base.weather_columns if _matches(f"weather_{c}", variant.include)],
        )
    except ConfigError as err:
        raise ConfigError(f"experiment.variants.{variant.name}: {err}") from None


def _check_derived(variant: str, cfg: FeaturesConfig, names: list[str], base_names: set[str]) -> None:
    """A derived feature the variant includes must find its inputs among the variant's features."""
    for derived in cfg.derived:
        needs = sorted(set(_IDENTIFIER.findall(derived.expr)) & base_names - set(names))
        if needs:
            raise ConfigError(
                f"experiment.variants.{variant}: derived feature {derived.name} needs {needs}, "
                "which the variant does not compute (leave it out of include, or keep those windows)"
            )


def plan_variant(variant: VariantConfig, base: FeaturesConfig) -> VariantPlan:
    cfg = variant_features(variant, base)
    names = [*feature_names(cfg), *(f"weather_{c}" for c in cfg.weather_columns)]
    if not names:
        raise ConfigError(f"experiment.variants.{variant.name}: selects no feature")
    base_names = {*feature_names(base), *(f"weather_{c}" for c in base.weather_columns)}
    _check_derived(variant.name, cfg, names, base_names)
    return VariantPlan(variant.name, names, cfg)


def plan_variants(variants: list[VariantConfig], base: FeaturesConfig) -> list[VariantPlan]:
    """Every variant compiled; a variant naming an unknown group or selecting nothing fails here, before Spark."""
    return [plan_variant(v, base) for v in variants]
