"""The feature schema a job writes: every feature with its type, description, entity keys and TTL."""

from __future__ import annotations

from pyspark.sql import DataFrame

from engine.config.durations import duration_seconds
from engine.config.features import FeaturesConfig
from engine.config.pipeline import JoinConfig
from engine.features.calendar import time_feature_names
from engine.features.compile import MICROS
from engine.features.table import compile_features


def feature_schema(
    table: DataFrame,
    cfg: FeaturesConfig,
    entity_keys: list[str],
    label: str | None,
    joins: list[JoinConfig] | tuple[JoinConfig, ...] = (),
) -> dict:
    """Describe each feature column of `table` as declared by `cfg` and the joins (no Spark job runs)."""
    types = {f.name: f.dataType.simpleString() for f in table.schema.fields}
    features = []
    for plan in compile_features(cfg):
        ttl = plan.ttl_micros // MICROS
        described = [(f.name, f.description) for f in plan.windowed] + [(g.name, g.description) for g in plan.lags]
        features += [
            {"name": n, "type": types[n], "description": d, "entity_keys": list(plan.group.keys), "ttl_seconds": ttl}
            for n, d in described
        ]
    if cfg.time_features:
        zone = cfg.time_features.timezone
        features += [
            {
                "name": n,
                "type": types[n],
                "description": f"{n.split('_', 1)[1]} of {cfg.timestamp} in {zone}",
                "entity_keys": [],
                "ttl_seconds": None,
            }
            for n in time_feature_names(cfg.time_features)
        ]
    features += [
        {
            "name": d.name,
            "type": types[d.name],
            "description": d.description or d.expr,
            "entity_keys": [],
            "ttl_seconds": None,
        }
        for d in cfg.derived
    ]
    features += [
        {
            "name": f"{join.prefix}{c}",
            "type": types[f"{join.prefix}{c}"],
            "description": f"{c} of the latest {join.source} row with the same {', '.join(join.keys)} "
            f"at or before {cfg.timestamp}",
            "entity_keys": list(join.keys),
            "ttl_seconds": duration_seconds(join.ttl, "ttl") if join.ttl else None,
        }
        for join in joins
        for c in join.columns
    ]
    return {"entity_keys": entity_keys, "timestamp": cfg.timestamp, "label": label, "features": features}
