"""The versioning jobs on one Delta table: history, read, diff, restore, vacuum, optimize, tag.

Each is one MLflow run; the ones that commit (restore, vacuum, optimize, tag) carry its id in the commit.
The action is dispatched through `ACTIONS`; an action without an entry is a config error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.choices import one_of
from engine.config.online import parse_time
from engine.config.schema import FeaturelakeConfig
from engine.config.training import VersionConfig
from engine.errors import ConfigError
from engine.pipeline.runner import PREPARED, Job, Recorded, RunContext, Stage
from engine.sinks.delta import history
from engine.sinks.sink import DELTA
from engine.versioning.diff import diff_versions
from engine.versioning.maintenance import optimize, restore, vacuum
from engine.versioning.refs import missing_local_table, resolve_version, set_tag, tags, version_at, version_range


@dataclass(frozen=True)
class VersionResult:
    """What a versioning job did: a few lines for people, and the same facts as data."""

    action: str
    table: str
    lines: list[str]
    data: dict


def _history(spark: SparkSession, job: VersionConfig) -> VersionResult:
    named: dict[int, list[str]] = {}
    for name, version in tags(spark, job.table).items():
        named.setdefault(version, []).append(name)
    committed = F.date_format("timestamp", "yyyy-MM-dd HH:mm:ss.SSS").alias("timestamp")  # session time zone: UTC
    rows = [r.asDict() for r in history(spark, job.table).withColumn("timestamp", committed).limit(job.limit).collect()]
    lines = [f"{'version':>7}  {'committed (UTC)':<23}  {'operation':<18}  {'rows':>10}  run id / tags"]
    for r in rows:
        labels = " ".join([r["run_id"] or "", *(f"[{t}]" for t in named.get(r["version"], []))]).strip()
        operation = f"{r['operation']:<18}"
        lines.append(f"{r['version']:>7}  {r['timestamp']:<23}  {operation}  {r['rows_written']:>10,}  {labels}")
    return VersionResult("history", job.table, lines, {"history": rows, "tags": tags(spark, job.table)})


def _read(spark: SparkSession, job: VersionConfig) -> VersionResult:
    """The first rows as of a version or tag, or a time (the newest version committed at or before it)."""
    if job.as_of:
        version: int | None = resolve_version(spark, job.table, job.as_of)
    elif job.timestamp:
        version = version_at(spark, job.table, parse_time(job.timestamp, "version.timestamp"))
    else:
        version = None
    df = DELTA.read_version(spark, job.table, version)
    rows = df.limit(job.limit).collect()
    at = "latest" if version is None else f"version {version}" + (f" (time {job.timestamp})" if job.timestamp else "")
    lines = [f"{job.table} as of {at}: {len(df.columns)} columns; first {len(rows)} rows:"]
    lines += ["  " + ", ".join(f"{k}={v}" for k, v in list(r.asDict().items())[:8]) for r in rows]
    return VersionResult("read", job.table, lines, {"version": version, "columns": df.columns, "rows_shown": len(rows)})


def _diff(spark: SparkSession, job: VersionConfig) -> VersionResult:
    old = resolve_version(spark, job.table, job.as_of)
    new = resolve_version(spark, job.table, job.other) if job.other else version_range(spark, job.table)[1]
    result = diff_versions(DELTA.read_version(spark, job.table, old), DELTA.read_version(spark, job.table, new))
    changed = result.changed_features
    lines = [
        f"rows: {result.rows[0]:,} (version {old}) -> {result.rows[1]:,} (version {new})",
        f"schema: {result.schema.describe() or 'unchanged'}",
        f"columns whose statistics changed: {len(changed)} of {len(result.features)}",
    ]
    for name in changed[: job.limit]:
        a, b = result.features[name]
        lines.append(f"  {name}: {a} -> {b}")
    schema = {k: list(v) for k, v in dataclasses.asdict(result.schema).items()}
    data = {"versions": [old, new], "rows": list(result.rows), "schema": schema}
    return VersionResult("diff", job.table, lines, data | {"changed": changed, "features": result.features})


def _restore(spark: SparkSession, job: VersionConfig, info: dict[str, str]) -> VersionResult:
    version = resolve_version(spark, job.table, job.as_of)
    new = restore(spark, job.table, version, info)
    return VersionResult("restore", job.table, [f"restored version {version} as version {new}"], {"version": new})


def _vacuum(spark: SparkSession, job: VersionConfig, info: dict[str, str]) -> VersionResult:
    deleted = vacuum(spark, job.table, job.retention_hours, job.allow_short_retention, info)
    lines = [f"vacuum: {deleted} files older than {job.retention_hours:g}h deleted"]
    return VersionResult("vacuum", job.table, lines, {"files_deleted": deleted})


def _optimize(spark: SparkSession, job: VersionConfig, info: dict[str, str]) -> VersionResult:
    zorder = list(job.zorder_by)
    metrics = optimize(spark, job.table, zorder, job.where, info)
    lines = [f"optimize{' (z-order ' + ', '.join(zorder) + ')' if zorder else ''}: {metrics}"]
    return VersionResult("optimize", job.table, lines, metrics)


def _tag(spark: SparkSession, job: VersionConfig, info: dict[str, str]) -> VersionResult:
    version = resolve_version(spark, job.table, job.as_of)
    set_tag(spark, job.table, job.tag, version, info)
    return VersionResult("tag", job.table, [f"tag '{job.tag}' names version {version}"], {"version": version})


ACTIONS: dict[str, Callable[[SparkSession, VersionConfig, dict[str, str]], VersionResult]] = {
    "history": lambda spark, job, _: _history(spark, job),
    "read": lambda spark, job, _: _read(spark, job),
    "diff": lambda spark, job, _: _diff(spark, job),
    "restore": _restore,
    "vacuum": _vacuum,
    "optimize": _optimize,
    "tag": _tag,
}


def prepare(cfg: FeaturelakeConfig) -> VersionConfig:
    """The versioning config with its table resolved (default: the sink's); a missing local table or an
    action without an implementation fails here."""
    if cfg.version is None:
        raise ConfigError("version: no versioning action selected (version=<action>)")
    one_of("version.action", cfg.version.action, ACTIONS)
    job = dataclasses.replace(
        cfg.version,
        table=cfg.version.table or cfg.sink.path,
        zorder_by=list(cfg.version.zorder_by or cfg.sink.zorder_by),  # the sink's layout by default
    )
    if missing_local_table(job.table):
        raise ConfigError(f"version.table: no Delta table at {job.table}")
    return job


def run_action(ctx: RunContext, job: VersionConfig) -> VersionResult:
    """The selected action, from the table of actions; its facts go to MLflow and the run record."""
    return ACTIONS[job.action](ctx.spark, job, ctx.commit_info | {"action": job.action})


def _action_recorded(_: FeaturelakeConfig, result: VersionResult) -> Recorded:
    """The action's facts: in MLflow as JSON, its name and table in the run record."""
    return Recorded(
        record={"result": {"action": result.action, "table": result.table}},
        artifacts={f"version_{result.action}.json": result.data},
    )


VERSION = Job(
    name="version",
    prepare=prepare,
    run_name=lambda _, job: f"version-{job.action}",
    stages=(Stage("action", run_action, (PREPARED,), "result", records=_action_recorded),),
)
