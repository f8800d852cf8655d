"""The feature table of a config: every group's features, time parts and derived features, chained."""

from __future__ import annotations

import logging
from datetime import date

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.config.features import FeaturesConfig
from engine.errors import ConfigError, first_line
from engine.features.calendar import add_time_features, time_feature_names
from engine.features.compile import GroupPlan, compile_group
from engine.features.derived import add_derived
from engine.features.plans import Choice, Shape, choose, measure, measure_stored
from engine.features.snapshot import snapshot_spine
from engine.features.windows import check_inputs, group_features
from engine.runtime.datasets import StoredGroups

PARTITION_COLUMN = "feature_date"
log = logging.getLogger(__name__)


def _names(cfg: FeaturesConfig, plans: list[GroupPlan]) -> list[str]:
    names = [name for plan in plans for name in plan.features]
    names += time_feature_names(cfg.time_features) if cfg.time_features else []
    return names + [d.name for d in cfg.derived]


def compile_features(cfg: FeaturesConfig) -> list[GroupPlan]:
    """Every group's plan; function names, snapshot keys and repeated feature names are checked here."""
    plans = [compile_group(group, f"features.groups[{i}]") for i, group in enumerate(cfg.groups)]
    if cfg.granularity == "snapshot":
        keys = {tuple(plan.group.keys) for plan in plans}
        if len(keys) != 1:
            raise ConfigError(f"features.groups: snapshot rows need one entity key for all groups, got {sorted(keys)}")
    names = _names(cfg, plans)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"features: names {repeated} are produced twice")
    return plans


def feature_names(cfg: FeaturesConfig) -> list[str]:
    """Every feature column the config produces, in table order."""
    return _names(cfg, compile_features(cfg))


def _shapes(
    events: DataFrame, key_sets: list[tuple[str, ...]], cfg: FeaturesConfig, stored: StoredGroups | None
) -> dict[tuple[str, ...], Shape]:
    """The events' shape per key set: from the stored row groups when given and they hold the columns,
    else from one Spark job over a sample."""
    time = cfg.known_at or cfg.timestamp
    shapes = measure_stored(stored, key_sets, time) if stored is not None else None
    return shapes if shapes is not None else measure(events, key_sets, F.unix_micros(F.col(time)))


def _choices(
    events: DataFrame, plans: list[GroupPlan], cfg: FeaturesConfig, stored: StoredGroups | None
) -> list[Choice]:
    """Each group's plan; with `auto`, the events are measured once for every set of keys."""
    partitions = int(events.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    key_sets = list(dict.fromkeys(tuple(plan.group.keys) for plan in plans))
    shapes = _shapes(events, key_sets, cfg, stored) if cfg.plan == "auto" else {}
    choices = []
    for plan in plans:
        choice = choose(events, plan, cfg, shapes.get(tuple(plan.group.keys)), partitions)
        split = " with time buckets" if choice.split else ""
        log.info("features.groups.%s: %s plan%s (%s)", plan.group.name, choice.plan, split, choice.reason)
        choices.append(choice)
    return choices


def feature_table(events: DataFrame, cfg: FeaturesConfig, stored: StoredGroups | None = None) -> DataFrame:
    """Rows with features: each event (event granularity) or each entity x boundary (snapshot).

    Without `known_at` or a range, each group reads its events from the rows it is given (one
    lineage); otherwise every group reads `events`, since a ranged group's output lacks the history
    the next group's windows need. `stored`: the row groups of a stored table whose rows `events` are
    (keys and times as stored), which the plan chooser samples instead of `events`.
    """
    plans = compile_features(cfg)
    clashes = sorted(set(_names(cfg, plans)) & set(events.columns))
    if clashes:
        raise ConfigError(f"features: names {clashes} are already input columns")
    separate = cfg.known_at is not None or cfg.start is not None or cfg.end is not None
    try:
        for plan in plans:
            check_inputs(events, plan, cfg)
        choices = _choices(events, plans, cfg, stored)
        if cfg.granularity == "event":
            rows = events
            for plan, choice in zip(plans, choices, strict=True):
                rows = group_features(rows, plan, cfg, choice, events=events if separate else None)
        else:
            rows = snapshot_spine(events, plans, cfg)
            for plan, choice in zip(plans, choices, strict=True):
                rows = group_features(rows, plan, cfg, choice, events=events)
        rows = add_time_features(rows, cfg.timestamp, cfg.time_features)
    except AnalysisException as error:
        raise ConfigError(f"features: {first_line(error)}") from None
    rows = rows.transform(add_derived, list(cfg.derived))
    return rows.withColumn(PARTITION_COLUMN, F.to_date(F.col(cfg.timestamp)))


def range_filters(cfg: FeaturesConfig) -> list[tuple[str, str, date]]:
    """The run's range as delta-rs filters on the partition column (empty for a full run)."""
    bounds = [(PARTITION_COLUMN, ">=", date.fromisoformat(cfg.start))] if cfg.start else []
    return bounds + ([(PARTITION_COLUMN, "<", date.fromisoformat(cfg.end))] if cfg.end else [])
