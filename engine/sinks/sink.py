"""The sink protocol: what a job needs of the table it writes. Delta is the one implementation.

A sink writes a frame as one commit (idempotent by the write's identity), says which version is newest,
and reads a version back: this is the one place a job reads a table at a version. A range of rows is a
list of filters (column, operator, value), rendered as SQL by `engine.sql.predicate`.

The online store (`engine.online.store.OnlineStore`) is not a sink: it serves the current values of
materialized groups by entity, and has a protocol of its own; a materialization reads a version through
this protocol and writes to the store through that one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession

from engine.config.registry import Registry
from engine.config.schema import SinkConfig
from engine.sinks.delta import Commit, latest_version, write_delta
from engine.sql import Filter, predicate

Info, Identity = Mapping[str, str], Mapping[str, object]  # a commit's metadata, a write's identity


class Sink(Protocol):
    """A table a job writes and reads back by version (see the module docstring)."""

    @property
    def name(self) -> str: ...

    def write(
        self, df: DataFrame, cfg: SinkConfig, info: Info, identity: Identity, *, replace_where: Sequence[Filter] = ()
    ) -> Commit:
        """`df` as one commit of the table at `cfg.path`, skipped when a commit of the same identity exists;
        an overwrite with `replace_where` replaces only the rows those filters match."""
        ...

    def latest_version(self, spark: SparkSession, path: str) -> int | None:
        """The table's newest version, None when there is no table."""
        ...

    def read_version(
        self, spark: SparkSession, path: str, version: int | None = None, where: Sequence[Filter] = ()
    ) -> DataFrame:
        """The table as of `version` (the newest without one), its rows restricted to the `where` filters."""
        ...


class DeltaSink:
    """Delta tables, written and read with delta-spark (`engine.sinks.delta`)."""

    name = "delta"
    write = staticmethod(write_delta)
    latest_version = staticmethod(latest_version)

    def read_version(
        self, spark: SparkSession, path: str, version: int | None = None, where: Sequence[Filter] = ()
    ) -> DataFrame:
        reader = spark.read.format("delta")
        table = (reader if version is None else reader.option("versionAsOf", version)).load(path)
        condition = predicate(where)
        return table if condition is None else table.where(condition)


SINKS: Registry[Sink] = Registry("sink")
DELTA: Sink = SINKS.register(DeltaSink())
