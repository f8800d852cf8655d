"""Assemble a training set: the pinned spine, then one as-of sweep per set of entity keys.

Tables with the same keys share one sweep (one shuffle, one sort); sweeps for different keys run
one after another, so the plan grows with the number of key sets, however many tables and
features there are, and is built step by step, never as one SQL string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.config.schema import TrainingSetConfig
from engine.config.training import FeatureTableConfig, TrainingValues
from engine.errors import ConfigError
from engine.sinks.sink import DELTA
from engine.training.asof import AVAILABLE, EVENT, AsOfSpec, as_of_join, as_of_join_winners
from engine.training.inputs import TimeRange, feature_rows, spine_range
from engine.versioning.refs import resolve_version

# Up to this size the spine is held in memory, and feature rows are first cut to its keys and their
# time bounds (broadcast).
SMALL_SPINE_ROWS = 1_000_000
# From this many features per set of keys, `auto` sorts times alone and joins the winners' values after.
WINNERS_MIN_FEATURES = 64
_FIRST, _LAST = "_first_ts", "_last_ts"
PLANNING_THREADS = 8  # tables whose logs are read and files planned at once
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PinnedInput:
    """One input of a training set, as it is logged for lineage."""

    role: str
    name: str
    path: str
    version: int


def per_table(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`work` on each item, several at a time, results in order (the first failure in order is raised).

    Reading a table's log and planning its files are small jobs that mostly wait: one table's wait
    overlaps another's, however few the cores.
    """
    with ThreadPoolExecutor(max_workers=PLANNING_THREADS) as pool:
        return list(pool.map(work, items))


def pin_inputs(spark: SparkSession, cfg: TrainingSetConfig) -> list[PinnedInput]:
    """Resolve every configured version or tag to a version number (the spine first)."""
    inputs = [("spine", "spine", cfg.spine.path, cfg.spine.version)]
    inputs += [("features", t.name, t.path, t.version) for t in cfg.feature_tables]
    return per_table(lambda i: PinnedInput(i[0], i[1], i[2], resolve_version(spark, i[2], i[3])), inputs)


def spine_columns(cfg: TrainingSetConfig) -> list[str]:
    """The spine columns a training set keeps: every table's keys, the time, the label, extra columns."""
    wanted = [
        *(k for t in cfg.feature_tables for k in t.keys),
        cfg.spine.timestamp,
        cfg.spine.label,
        *cfg.spine.columns,
    ]
    return list(dict.fromkeys(wanted))


def key_bounds(spine: DataFrame, keys: tuple[str, ...], timestamp: str) -> DataFrame:
    """Each key's first and last spine time, computed once and held in memory (a small spine's keys)."""
    return spine.groupBy(*keys).agg(F.min(timestamp).alias(_FIRST), F.max(timestamp).alias(_LAST)).localCheckpoint()


def reachable(rows: DataFrame, bounds: DataFrame, spec: AsOfSpec) -> DataFrame:
    """The feature rows some spine point of their key may take: available by the key's last time, and
    within the TTL of its first. The others can neither win nor hide a winner, so they never enter the sort."""
    condition = [rows[k] == bounds[k] for k in spec.keys] + [F.greatest(AVAILABLE, EVENT) <= F.col(_LAST)]
    if spec.ttl_seconds is not None:
        condition.append(F.col(EVENT) >= F.col(_FIRST) - F.expr(f"INTERVAL {spec.ttl_seconds} SECONDS"))
    return rows.join(F.broadcast(bounds), condition, "left_semi")


def training_set(
    spark: SparkSession, cfg: TrainingSetConfig, pinned: list[PinnedInput]
) -> tuple[DataFrame, list[str], TimeRange | None]:
    """The training set (lazy), its feature columns, and the spine's time range (one small aggregation)."""
    versions = {p.name: p.version for p in pinned}
    spine = DELTA.read_version(spark, cfg.spine.path, versions["spine"])
    columns = spine_columns(cfg)
    missing = [c for c in columns if c not in spine.columns]
    if missing:
        raise ConfigError(f"training_set.spine: columns not in {cfg.spine.path}: {', '.join(missing)}")
    return as_of_features(spark, spine.select(*columns), cfg.spine.timestamp, cfg.feature_tables, versions, cfg.values)


def as_of_features(
    spark: SparkSession,
    spine: DataFrame,
    timestamp: str,
    tables: list[FeatureTableConfig],
    versions: dict[str, int],
    values: TrainingValues = TrainingValues.AUTO,
) -> tuple[DataFrame, list[str], TimeRange | None]:
    """Each spine row with every table's features as of its `timestamp` (lazy), the feature columns, and
    the spine's time range. The one as-of rule of training sets and of the online store.

    A spine of at most SMALL_SPINE_ROWS rows is read once and held in memory, and it cuts each
    feature table with a broadcast semi-join to the rows that can join one of its keys' points: no
    later than the key's last time, no staler than the TTL at its first. A small spine against large
    tables then sorts only the rows it can use.
    """
    columns = list(spine.columns)
    window = spine_range(spine, timestamp)
    small = window is not None and window.rows <= SMALL_SPINE_ROWS
    if small:  # read once: every later use (bounds, points, the final join) reads the memory copy, in
        # one part per core, so the joins of broadcast values to it run on every core
        spine = spine.repartition(spark.sparkContext.defaultParallelism).localCheckpoint(eager=True)
    names = list(columns)
    sweeps: dict[tuple[str, ...], list[tuple[DataFrame, AsOfSpec]]] = {}
    bounds: dict[tuple[str, ...], DataFrame] = {}
    prepared = per_table(lambda t: feature_rows(spark, t, versions[t.name], window), tables)
    for table, (rows, spec) in zip(tables, prepared, strict=True):
        clash = sorted(set(spec.output_names) & set(names))
        if clash:
            raise ConfigError(
                f"training_set.feature_tables.{table.name}: {', '.join(clash[:5])} already in the training set; "
                "set a prefix"
            )
        names += spec.output_names
        if small:
            if spec.keys not in bounds:
                bounds[spec.keys] = key_bounds(spine, spec.keys, timestamp)
            rows = reachable(rows, bounds[spec.keys], spec)
        sweeps.setdefault(spec.keys, []).append((rows, spec))
    result = spine
    for group in sweeps.values():
        width = sum(len(spec.features) for _, spec in group)
        if values == TrainingValues.WINNERS or (values == TrainingValues.AUTO and width >= WINNERS_MIN_FEATURES):
            rows = window.rows if window is not None else None
            result = as_of_join_winners(result, group, timestamp, points=spine, point_rows=rows)
        else:  # after the first sweep the rows are wide: later sweeps sort only the spine's points
            result = as_of_join(result, group, timestamp, points=None if result is spine else spine)
    return result.select(*names), names[len(columns) :], window
