"""Calendar parts of a row's time in a named time zone (daylight-saving changes follow the zone's rules)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from engine.config.features import TimeFeaturesConfig


def _parts(local: Column) -> dict[str, Column]:
    weekday = F.dayofweek(local)  # 1 = Sunday ... 7 = Saturday
    return {
        "hour": F.hour(local),
        "day_of_week": ((weekday + 5) % 7) + 1,  # ISO: 1 = Monday ... 7 = Sunday
        "month": F.month(local),
        "quarter": F.quarter(local),
        "is_weekend": weekday.isin(1, 7),
    }


def time_feature_names(cfg: TimeFeaturesConfig) -> list[str]:
    return [f"{cfg.prefix}_{part}" for part in cfg.parts]


def add_time_features(rows: DataFrame, timestamp: str, cfg: TimeFeaturesConfig | None) -> DataFrame:
    """Add `<prefix>_<part>` for each configured part of `timestamp` as a wall clock in `cfg.timezone`."""
    if cfg is None or not cfg.parts:
        return rows
    parts = _parts(F.from_utc_timestamp(F.col(timestamp), cfg.timezone))
    return rows.withColumns({f"{cfg.prefix}_{part}": parts[part] for part in cfg.parts})
