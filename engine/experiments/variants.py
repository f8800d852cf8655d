"""Feature-set variants compiled against the features config and the pipeline's joins: the columns each one
needs, and the features config and joins that compute them when the table lacks some (a longer window,
another aggregation)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace

from engine.config.experiment import VariantConfig
from engine.config.features import FeaturesConfig, GroupConfig
from engine.config.pipeline import JoinConfig
from engine.errors import ConfigError
from engine.features.table import feature_names

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class VariantPlan:
    """A variant's feature columns and the (narrowed) features config and joins that produce exactly them."""

    name: str
    features: list[str]
    features_config: FeaturesConfig
    joins: tuple[JoinConfig, ...] = ()

    def missing(self, columns: list[str]) -> list[str]:
        """The variant's features a table with `columns` lacks."""
        present = set(columns)
        return [f for f in self.features if f not in present]

    @property
    def key(self) -> str:
        """Identifies the computation: variants with the same features config share one."""
        computed = {"features": asdict(self.features_config), "joins": [asdict(j) for j in self.joins]}
        text = json.dumps(computed, sort_keys=True, default=str)
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
    """The features config of one variant: its groups narrowed, plus the time parts and derived features it
    includes."""
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


def variant_joins(variant: VariantConfig, joins: list[JoinConfig]) -> tuple[JoinConfig, ...]:
    """The joins of one variant: each join's columns whose output names the variant includes."""
    narrowed = [
        replace(j, columns=[c for c in j.columns if _matches(f"{j.prefix}{c}", variant.include)]) for j in joins
    ]
    return tuple(j for j in narrowed if j.columns)


def joined_names(joins: list[JoinConfig] | tuple[JoinConfig, ...]) -> list[str]:
    return [name for join in joins for name in join.output_names()]


def plan_variant(variant: VariantConfig, base: FeaturesConfig, joins: list[JoinConfig]) -> VariantPlan:
    cfg = variant_features(variant, base)
    narrowed = variant_joins(variant, joins)
    names = [*feature_names(cfg), *joined_names(narrowed)]
    if not names:
        raise ConfigError(f"experiment.variants.{variant.name}: selects no feature")
    base_names = {*feature_names(base), *joined_names(joins)}
    _check_derived(variant.name, cfg, names, base_names)
    return VariantPlan(variant.name, names, cfg, narrowed)


def plan_variants(
    variants: list[VariantConfig], base: FeaturesConfig, joins: list[JoinConfig] | None = None
) -> list[VariantPlan]:
    """Every variant compiled; a variant naming an unknown group or selecting nothing fails here, before Spark."""
    return [plan_variant(v, base, list(joins or [])) for v in variants]
