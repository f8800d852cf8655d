"""Each entity's current feature values as of a time, from a pinned version of the feature table.

The values are the ones a point-in-time training set reads for a spine row (entity, as-of time): the
same as-of join computes both (`as_of_features`), with the group's keys and TTL. An incremental run
recomputes only the entities whose values can differ from what the store holds: those with a row that
changed between the two versions (read from the table's change data feed when it records one), and
those with a row whose availability or expiry falls between the two as-of times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.online.groups import OnlineGroup
from engine.online.store import Entry, GroupState, Key, OnlineStore, encode
from engine.runtime.instants import epoch_micros
from engine.sinks.sink import DELTA
from engine.sql import quote_identifier
from engine.training.build import SMALL_SPINE_ROWS, as_of_features

AS_OF = "_online_as_of"
EVENT_US = "_online_event_us"
_SIGN = "_online_sign"


@dataclass(frozen=True)
class Written:
    """One group's materialization."""

    group: str
    version: int
    as_of: str
    rows_written: int
    deleted: int
    incremental: bool


@dataclass(frozen=True)
class Values:
    """A group's values as of a time (lazy), the keys to delete from the store, and the features' types."""

    rows: DataFrame
    deleted: DataFrame
    key_types: tuple[str, ...]
    types: tuple[str, ...]


def micros(when: datetime) -> Column:
    return F.timestamp_micros(F.lit(epoch_micros(when)))


def _entities(table: DataFrame, group: OnlineGroup, timestamp: str, as_of: datetime) -> DataFrame:
    """Every entity with a row at or before the as-of time."""
    known = F.col(timestamp) <= micros(as_of)
    for key in group.keys:
        known = known & F.col(quote_identifier(key)).isNotNull()
    return table.where(known).select(*(quote_identifier(k) for k in group.keys)).distinct()


def changed_entities(
    spark: SparkSession,
    path: str,
    group: OnlineGroup,
    timestamp: str,
    held: GroupState,
    version: int,
    as_of: datetime,
) -> DataFrame:
    """The entities whose values may differ from the ones the store holds (a superset, never fewer),
    computed once and held in memory."""
    keys = [quote_identifier(k) for k in group.keys]
    columns = [*keys, quote_identifier(timestamp), *(quote_identifier(f) for f in group.features)]
    parts = []
    if held.version != version:
        parts.append(_changed_keys(spark, path, keys, columns, held.version, version))
    low, high = sorted([held.as_of_time, as_of])
    if low != high:
        new = DELTA.read_version(spark, path, version).select(*columns)
        ts = F.col(quote_identifier(timestamp))
        parts.append(new.where((ts > micros(low)) & (ts <= micros(high))).select(*keys))
        if group.ttl_seconds is not None:
            ttl = F.expr(f"INTERVAL {group.ttl_seconds} SECONDS")
            parts.append(new.where((ts >= micros(low) - ttl) & (ts < micros(high) - ttl)).select(*keys))
    if not parts:
        return DELTA.read_version(spark, path, version).select(*keys).limit(0)
    changed = parts[0]
    for part in parts[1:]:
        changed = changed.unionByName(part)
    return changed.distinct().localCheckpoint(eager=True)


def _changed_keys(
    spark: SparkSession, path: str, keys: list[str], columns: list[str], held: int, version: int
) -> DataFrame:
    """The keys of the rows in one of the two versions and not in the other (as multisets).

    From the change data feed of the versions between them when the table records it (only the
    rows the commits in between wrote or removed are read); else from the two versions in full.
    A row added and then removed again in between is no change.
    """
    low, high = sorted([held, version])
    feed = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", low + 1)
        .option("endingVersion", high)
        .load(path)
    )
    added = F.col("_change_type").isin("insert", "update_postimage")
    try:  # computed here, so that a table without the feed for these versions shows it now
        signed = feed.select(*columns, F.when(added, 1).otherwise(-1).alias(_SIGN))
        return _unbalanced(signed, columns).select(*keys).localCheckpoint(eager=True)
    except AnalysisException as error:
        if error.getErrorClass() != "DELTA_MISSING_CHANGE_DATA":
            raise
    old = DELTA.read_version(spark, path, held).select(*columns, F.lit(-1).alias(_SIGN))
    new = DELTA.read_version(spark, path, version).select(*columns, F.lit(1).alias(_SIGN))
    return _unbalanced(new.unionByName(old), columns).select(*keys)


def _unbalanced(signed: DataFrame, columns: list[str]) -> DataFrame:
    """The rows added more often than removed, or the reverse: one aggregation."""
    counts = signed.groupBy(*columns).agg(F.sum(_SIGN).alias(_SIGN))
    return counts.where(F.col(_SIGN) != 0)


def group_values(
    spark: SparkSession,
    path: str,
    version: int,
    group: OnlineGroup,
    timestamp: str,
    as_of: datetime,
    only: DataFrame | None = None,
) -> Values:
    """The group's entities (or those of `only`) with their winning row's event time and values, and
    the entities of `only` that have no row by the as-of time (to delete)."""
    table = DELTA.read_version(spark, path, version)
    deleted = table.select(*(quote_identifier(k) for k in group.keys)).limit(0)
    if only is None:
        entities = _entities(table, group, timestamp, as_of)
    else:  # the changed entities: found once, held in memory for the spine and the deletions
        cut = F.broadcast(only) if only.count() <= SMALL_SPINE_ROWS else only
        entities = _entities(table.join(cut, list(group.keys), "left_semi"), group, timestamp, as_of)
        entities = entities.localCheckpoint(eager=True)
        deleted = only.join(entities, list(group.keys), "left_anti")
    spine = entities.withColumn(AS_OF, micros(as_of))
    spec = group.as_of_table(path, version, timestamp)
    frame, _, _ = as_of_features(spark, spine, AS_OF, [spec], {group.name: version})
    schema = {f.name: f.dataType for f in frame.schema.fields}
    values = [_plain(f, schema[f]) for f in group.features]
    rows = frame.select(
        *(quote_identifier(k) for k in group.keys), F.unix_micros(quote_identifier(timestamp)).alias(EVENT_US), *values
    )
    return Values(
        rows,
        deleted,
        tuple(schema[k].simpleString() for k in group.keys),
        tuple(schema[f].simpleString() for f in group.features),
    )


def _plain(name: str, data_type: T.DataType) -> Column:
    """Times as microseconds since the epoch, computed by Spark: no time zone on the way to Python."""
    column = F.col(quote_identifier(name))
    if isinstance(data_type, T.TimestampType | T.TimestampNTZType):
        return F.unix_micros(column).alias(name)
    return column


# Types whose Python values a store keeps as they are; the others go through `encode` (times are already
# microseconds, made so by Spark in `group_values`).
_PLAIN = frozenset({"boolean", "tinyint", "smallint", "int", "bigint", "float", "double", "string", "binary"})


def entries(rows: DataFrame, width: int, types: tuple[str, ...]) -> Iterator[tuple[Key, Entry]]:
    """The rows as store entries, a partition at a time on the driver (never the whole group at once)."""
    coded = [i for i, t in enumerate(types) if t not in _PLAIN]
    for row in rows.toLocalIterator(prefetchPartitions=True):
        values = row[width + 1 :]
        if coded:
            values = list(values)
            for i in coded:
                values[i] = encode(values[i])
            values = tuple(values)
        yield tuple(row[:width]), (row[width], values)


def _same_table(held: GroupState | None, table: str, group: OnlineGroup) -> bool:
    return (
        held is not None
        and held.table == table
        and (held.keys, held.features, held.ttl_seconds) == (group.keys, group.features, group.ttl_seconds)
    )


def materialize_group(
    spark: SparkSession,
    store: OnlineStore,
    table: str,
    version: int,
    group: OnlineGroup,
    timestamp: str,
    as_of: datetime,
    full: bool = False,
) -> Written:
    """The group's values as of `as_of` from `version` of `table`, written to the store with its state in one
    atomic write: only the changed entities when the store holds the group from this table, else all."""
    held = store.state(group.name)
    incremental = not full and _same_table(held, table, group)
    if incremental and held.version == version and held.as_of_time == as_of:
        return Written(group.name, version, held.as_of, 0, 0, True)
    only = changed_entities(spark, table, group, timestamp, held, version, as_of) if incremental else None
    values = group_values(spark, table, version, group, timestamp, as_of, only)
    deleted = [tuple(r) for r in values.deleted.collect()] if incremental else []
    state = GroupState(
        group=group.name,
        table=table,
        version=version,
        as_of=as_of.isoformat(),
        keys=group.keys,
        key_types=values.key_types,
        features=group.features,
        types=values.types,
        ttl_seconds=group.ttl_seconds,
        written_at=datetime.now(UTC).isoformat(),
    )
    rows = store.write(state, entries(values.rows, len(group.keys), values.types), deleted, full=not incremental)
    return Written(group.name, version, state.as_of, rows, len(deleted), incremental)
