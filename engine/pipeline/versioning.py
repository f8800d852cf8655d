"""The versioning jobs on one Delta table: history, read, diff, restore, vacuum, optimize, tag.

Each is one MLflow run; the ones that commit (restore, optimize, tag) carry its id in the commit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.schema import FeaturelakeConfig
from engine.config.training import VersionConfig
from engine.errors import ConfigError
from engine.sinks.delta import history
from engine.tracking.mlflow_runs import commit_metadata, config_params, tracked_run
from engine.versioning.diff import diff_versions
from engine.versioning.maintenance import optimize, restore, vacuum
from engine.versioning.refs import missing_local_table, read_version, resolve_version, set_tag, tags, version_range


@dataclass(frozen=True)
class VersionResult:
    """What a versioning job did: a few lines for people, and the same facts as data."""

    action: str
    table: str
    lines: list[str]
    data: dict


def check_version_job(cfg: FeaturelakeConfig) -> VersionConfig:
    """The versioning config with its table resolved (default: the sink's); a missing local table fails here."""
    if cfg.version is None:
        raise ConfigError("version: no versioning action selected (version=<action>)")
    job = dataclasses.replace(cfg.version, table=cfg.version.table or cfg.sink.path)
    if missing_local_table(job.table):
        raise ConfigError(f"version.table: no Delta table at {job.table}")
    return job


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
    version = resolve_version(spark, job.table, job.as_of) if job.as_of else None
    df = read_version(spark, job.table, version, job.timestamp)
    rows = df.limit(job.limit).collect()
    at = f"version {version}" if version is not None else f"time {job.timestamp}" if job.timestamp else "latest"
    lines = [f"{job.table} as of {at}: {len(df.columns)} columns; first {len(rows)} rows:"]
    lines += ["  " + ", ".join(f"{k}={v}" for k, v in list(r.asDict().items())[:8]) for r in rows]
    return VersionResult("read", job.table, lines, {"version": version, "columns": df.columns, "rows_shown": len(rows)})


def _diff(spark: SparkSession, job: VersionConfig) -> VersionResult:
    old = resolve_version(spark, job.table, job.as_of)
    new = resolve_version(spark, job.table, job.other) if job.other else version_range(spark, job.table)[1]
    result = diff_versions(read_version(spark, job.table, old), read_version(spark, job.table, new))
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


def run_version(spark: SparkSession, cfg: FeaturelakeConfig, job: VersionConfig) -> VersionResult:
    """Run the selected versioning action inside one MLflow run."""
    with tracked_run(cfg.tracking, run_name=f"version-{job.action}") as run:
        mlflow.log_params(config_params(cfg))
        info = commit_metadata(cfg, run.info.run_id) | {"action": job.action}
        if job.action == "history":
            result = _history(spark, job)
        elif job.action == "read":
            result = _read(spark, job)
        elif job.action == "diff":
            result = _diff(spark, job)
        elif job.action == "restore":
            version = resolve_version(spark, job.table, job.as_of)
            new = restore(spark, job.table, version, info)
            result = VersionResult(
                "restore", job.table, [f"restored version {version} as version {new}"], {"version": new}
            )
        elif job.action == "vacuum":
            deleted = vacuum(spark, job.table, job.retention_hours, job.allow_short_retention, info)
            lines = [f"vacuum: {deleted} files older than {job.retention_hours:g}h deleted"]
            result = VersionResult("vacuum", job.table, lines, {"files_deleted": deleted})
        elif job.action == "optimize":
            zorder = list(job.zorder_by or cfg.sink.zorder_by)
            metrics = optimize(spark, job.table, zorder, job.where, info)
            lines = [f"optimize{' (z-order ' + ', '.join(zorder) + ')' if zorder else ''}: {metrics}"]
            result = VersionResult("optimize", job.table, lines, metrics)
        else:
            version = resolve_version(spark, job.table, job.as_of)
            set_tag(spark, job.table, job.tag, version, info)
            result = VersionResult("tag", job.table, [f"tag '{job.tag}' names version {version}"], {"version": version})
        mlflow.log_dict(result.data, f"version_{job.action}.json")
    return result
