"""Assemble a training set: the pinned spine, then one as-of join per pinned feature table.

Tables are joined one after another, each adding one shuffle and one sort to the plan, so the
plan grows linearly with the number of tables, however many features each holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from engine.config.schema import TrainingSetConfig
from engine.errors import ConfigError
from engine.training.asof import as_of_join
from engine.training.inputs import TimeRange, feature_rows, spine_range
from engine.versioning.refs import read_version, resolve_version


@dataclass(frozen=True)
class PinnedInput:
    """One input of a training set, as it is logged for lineage."""

    role: str
    name: str
    path: str
    version: int


def pin_inputs(spark: SparkSession, cfg: TrainingSetConfig) -> list[PinnedInput]:
    """Resolve every configured version or tag to a version number (the spine first)."""
    pinned = [PinnedInput("spine", "spine", cfg.spine.path, resolve_version(spark, cfg.spine.path, cfg.spine.version))]
    pinned += [
        PinnedInput("features", t.name, t.path, resolve_version(spark, t.path, t.version)) for t in cfg.feature_tables
    ]
    return pinned


def spine_columns(cfg: TrainingSetConfig) -> list[str]:
    """The spine columns a training set keeps: every table's keys, the time, the label, extra columns."""
    wanted = [
        *(k for t in cfg.feature_tables for k in t.keys),
        cfg.spine.timestamp,
        cfg.spine.label,
        *cfg.spine.columns,
    ]
    return list(dict.fromkeys(wanted))


def training_set(
    spark: SparkSession, cfg: TrainingSetConfig, pinned: list[PinnedInput]
) -> tuple[DataFrame, list[str], TimeRange | None]:
    """The training set (lazy), its feature columns, and the spine's time range (one small aggregation)."""
    versions = {p.name: p.version for p in pinned}
    spine = read_version(spark, cfg.spine.path, versions["spine"])
    columns = spine_columns(cfg)
    missing = [c for c in columns if c not in spine.columns]
    if missing:
        raise ConfigError(f"training_set.spine: columns not in {cfg.spine.path}: {', '.join(missing)}")
    spine = spine.select(*columns)
    window = spine_range(spine, cfg.spine.timestamp)
    result, names = spine, list(columns)
    for table in cfg.feature_tables:
        rows, spec = feature_rows(spark, table, versions[table.name], window)
        clash = sorted(set(spec.output_names) & set(names))
        if clash:
            raise ConfigError(
                f"training_set.feature_tables.{table.name}: {', '.join(clash[:5])} already in the training set; "
                "set a prefix"
            )
        names += spec.output_names
        result = as_of_join(result, rows, spec, cfg.spine.timestamp)
    return result, names[len(columns) :], window
