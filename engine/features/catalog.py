"""The feature schema a job writes: every feature with its type, description, entity keys and TTL."""

from __future__ import annotations

from pyspark.sql import DataFrame

from engine.config.schema import FeaturesConfig
from engine.features.windows import feature_name

_AGG_TEXT = {"count": "number of", "mean": "mean {value} of", "max": "maximum {value} of"}


def feature_schema(table: DataFrame, cfg: FeaturesConfig) -> dict:
    """Describe each feature column of `table` as declared by `cfg` (no Spark job runs)."""
    types = {f.name: f.dataType.simpleString() for f in table.schema.fields}
    features = []
    for entity in cfg.entities:
        for window in cfg.windows:
            for agg in cfg.aggregations:
                name = feature_name(entity.name, agg, window)
                what = _AGG_TEXT[agg].format(value=cfg.value)
                features.append(
                    {
                        "name": name,
                        "type": types[name],
                        "description": f"{what} other flights of the same {entity.name} that departed "
                        f"in the {window} before the scheduled departure",
                        "entity_keys": list(entity.keys),
                        "ttl_seconds": cfg.ttl_seconds,
                    }
                )
    for column in cfg.weather_columns:
        name = f"weather_{column}"
        features.append(
            {
                "name": name,
                "type": types[name],
                "description": f"{column} of the latest hourly weather at the origin at or before "
                "the scheduled departure",
                "entity_keys": ["origin"],
                "ttl_seconds": cfg.ttl_seconds,
            }
        )
    return {"entity_keys": ["flight_id"], "timestamp": "sched_dep_ts", "label": "label", "features": features}
