"""`job=materialize`: pin a version of the feature table, then write each group's current values as of a
time to the online store, one atomic write per group.

A group the store already holds from an earlier version of the same table gets only the entities whose
values may have changed (`materialize.full=true` rewrites them all); a rerun of the version and time it
holds writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.config.online import MaterializeConfig, parse_time
from engine.config.schema import FeaturelakeConfig
from engine.errors import ConfigError
from engine.online.groups import OnlineGroup, online_groups
from engine.online.materialize import Written, materialize_group
from engine.online.store import OnlineStore, open_store
from engine.pipeline.runner import PREPARED, DeltaInput, Job, Recorded, RunContext, Stage
from engine.versioning.refs import missing_local_table, resolve_version, version_at, version_range


@dataclass(frozen=True)
class Plan:
    """What to materialize: the table, its groups, the as-of time, and the open store."""

    table: str
    timestamp: str
    groups: list[OnlineGroup]
    as_of: datetime
    spec: MaterializeConfig
    store: OnlineStore


def prepare(cfg: FeaturelakeConfig) -> Plan:
    """Before Spark: a pipeline and a table to read, known groups, a time, and a store that opens."""
    if cfg.materialize is None or cfg.pipeline is None:
        raise ConfigError("materialize: select a pipeline and job=materialize")
    spec = cfg.materialize
    if missing_local_table(spec.table):
        raise ConfigError(f"materialize.table: no Delta table at {spec.table} (run the feature job first)")
    groups = online_groups(cfg.features, spec.groups)
    as_of = parse_time(spec.as_of, "materialize.as_of") if spec.as_of else datetime.now(UTC)
    store = open_store(cfg.online)
    for group in groups:
        store.state(group.name)  # the store answers before any Spark work is done
    return Plan(spec.table, cfg.pipeline.entity.timestamp, groups, as_of, spec, store)


@dataclass(frozen=True)
class Served:
    """The table version served, as of when, to which store."""

    table: str
    version: int
    as_of: datetime
    store: str


def pin(ctx: RunContext, plan: Plan) -> Served:
    """The version to serve."""
    spec = plan.spec
    if spec.timestamp:
        version = version_at(ctx.spark, plan.table, parse_time(spec.timestamp, "materialize.timestamp"))
    elif spec.version == "latest":
        version = version_range(ctx.spark, plan.table)[1]
    else:
        version = resolve_version(ctx.spark, plan.table, spec.version)
    return Served(str(Path(plan.table).resolve()), version, plan.as_of, ctx.cfg.online.store)


def _served_recorded(_: FeaturelakeConfig, served: Served) -> Recorded:
    """The version served, as the run's input and params."""
    return Recorded(
        params={"as_of": served.as_of.isoformat(), "delta_version": served.version, "store": served.store},
        inputs=(DeltaInput(served.table, served.version, "features", "online"),),
    )


def _written_recorded(_: FeaturelakeConfig, done: list[Written]) -> Recorded:
    return Recorded(
        record={"result": {"online": [asdict(w) for w in done]}},
        metrics={"entities_written": sum(w.rows_written for w in done), "groups": len(done)},
    )


def write(ctx: RunContext, plan: Plan, served: Served) -> list[Written]:
    """Each group in turn: its values (all, or the changed entities') and its state, in one store write."""
    table, version = served.table, served.version
    try:
        done = [
            materialize_group(ctx.spark, plan.store, table, version, group, plan.timestamp, plan.as_of, plan.spec.full)
            for group in plan.groups
        ]
    finally:
        plan.store.close()
    return done


MATERIALIZE = Job(
    name="materialize",
    prepare=prepare,
    stages=(
        Stage("pin", pin, (PREPARED,), "served", records=_served_recorded),
        Stage(
            "write",
            write,
            (PREPARED, "served"),
            "written",
            rows=lambda w: sum(g.rows_written for g in w),
            records=_written_recorded,
        ),
    ),
)
