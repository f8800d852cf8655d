"""Assemble a training set: the pinned spine, then one as-of sweep per set of entity keys.

Tables with the same keys share one sweep (one shuffle, one sort); sweeps for different keys run
one after another, so the plan grows with the number of key sets, however many tables and
features there are, and is built step by step, never as one SQL string.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.config.schema import TrainingSetConfig
from engine.errors import ConfigError
from engine.training.asof import AsOfSpec, as_of_join, as_of_join_winners
from engine.training.inputs import TimeRange, feature_rows, spine_range
from engine.versioning.refs import read_dataframe, resolve_version

SMALL_SPINE_ROWS = 1_000_000  # up to this size, feature rows are first cut to the spine's keys (broadcast)
# From this many features per set of keys, `auto` sorts times alone and joins the winners' values after.
WINNERS_MIN_FEATURES = 64
BROADCAST_WINNERS = 1_000_000  # up to this many (spine row, table) pairs, the winners are broadcast


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
    """The training set (lazy), its feature columns, and the spine's time range (one small aggregation).

    A spine of at most SMALL_SPINE_ROWS rows first cuts each feature table to its keys with a
    broadcast semi-join, so a small spine against large tables sorts only the rows it can use.
    """
    versions = {p.name: p.version for p in pinned}
    spine = read_dataframe(spark, cfg.spine.path, versions["spine"])
    columns = spine_columns(cfg)
    missing = [c for c in columns if c not in spine.columns]
    if missing:
        raise ConfigError(f"training_set.spine: columns not in {cfg.spine.path}: {', '.join(missing)}")
    spine = spine.select(*columns)
    window = spine_range(spine, cfg.spine.timestamp)
    names = list(columns)
    sweeps: dict[tuple[str, ...], list[tuple[DataFrame, AsOfSpec]]] = {}
    for table in cfg.feature_tables:
        rows, spec = feature_rows(spark, table, versions[table.name], window)
        clash = sorted(set(spec.output_names) & set(names))
        if clash:
            raise ConfigError(
                f"training_set.feature_tables.{table.name}: {', '.join(clash[:5])} already in the training set; "
                "set a prefix"
            )
        names += spec.output_names
        if window is not None and window.rows <= SMALL_SPINE_ROWS:
            # A small spine touches few entities: drop the others' rows before the sort.
            rows = rows.join(F.broadcast(spine.select(*table.keys).distinct()), list(table.keys), "left_semi")
        sweeps.setdefault(spec.keys, []).append((rows, spec))
    result = spine
    for tables in sweeps.values():
        width = sum(len(spec.features) for _, spec in tables)
        if cfg.values == "winners" or (cfg.values == "auto" and width >= WINNERS_MIN_FEATURES):
            few = window is not None and window.rows * len(tables) <= BROADCAST_WINNERS
            result = as_of_join_winners(result, tables, cfg.spine.timestamp, points=spine, few_points=few)
        else:  # after the first sweep the rows are wide: later sweeps sort only the spine's points
            result = as_of_join(result, tables, cfg.spine.timestamp, points=None if result is spine else spine)
    return result.select(*names), names[len(columns) :], window
