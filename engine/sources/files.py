"""Source edge: datasets read from parquet, csv, json, avro, orc or delta, each with an explicit schema.

CSV and JSON are read in permissive mode with a corrupt-record column: a malformed line becomes
a row holding the raw text, which the pipeline counts and quarantines. Reading never drops a
line. `stored_schema` reads only metadata (a CSV header, Parquet/Avro footers, the Delta log), so
schema checks run before any data is scanned.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.quality import FileSourceConfig
from engine.config.resilience import ResilienceConfig
from engine.errors import ConfigError, SourceError
from engine.resilience.retry import read_resiliently
from engine.runtime.datasets import CORRUPT, SourceData
from engine.sources.headers import check_csv_header
from engine.sources.materialize import materialize, root_cause
from engine.sources.remote import fetch, is_remote
from engine.sources.row_groups import stored_row_groups
from engine.sources.staging import stage_file

_TYPES = {
    "tinyint": T.ByteType(),
    "byte": T.ByteType(),
    "smallint": T.ShortType(),
    "short": T.ShortType(),
    "int": T.IntegerType(),
    "integer": T.IntegerType(),
    "bigint": T.LongType(),
    "long": T.LongType(),
    "float": T.FloatType(),
    "real": T.FloatType(),
    "double": T.DoubleType(),
    "string": T.StringType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
    "timestamp_ntz": T.TimestampNTZType(),
    "binary": T.BinaryType(),
}
_FIELD = re.compile(
    r"^`?(?P<name>[A-Za-z_][A-Za-z0-9_]*)`?\s+(?P<type>[A-Za-z_]+)(?:\((?P<p>\d+)\s*,\s*(?P<s>\d+)\))?$"
)


def declared_schema(cfg: FileSourceConfig) -> T.StructType | None:
    """The source's schema from its DDL (`id INT, price DECIMAL(10,2)`), parsed without Spark, or None.

    Flat schemas of Spark's atomic types: a source's columns are validated before Spark starts.
    """
    if not cfg.schema.strip():
        return None
    fields = []
    for part in (p.strip() for p in re.split(r",(?![^()]*\))", cfg.schema)):
        match = _FIELD.match(part)
        type_name = match["type"].lower() if match else ""
        if match and type_name == "decimal" and match["p"]:
            dtype: T.DataType = T.DecimalType(int(match["p"]), int(match["s"]))
        elif match and type_name in _TYPES and not match["p"]:
            dtype = _TYPES[type_name]
        else:
            raise ConfigError(f"source {cfg.name}.schema: cannot parse '{part}' (want `name TYPE`, atomic types)")
        fields.append(T.StructField(match["name"], dtype))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ConfigError(f"source {cfg.name}.schema: column names repeat: {names}")
    return T.StructType(fields)


def check_source(cfg: FileSourceConfig) -> None:
    """Before Spark starts: a local path must exist, the schema must parse, and the reader options must
    not drop lines."""
    if "://" not in cfg.path and not cfg.path.startswith("dbfs:") and not Path(cfg.path).exists():
        raise SourceError(f"source {cfg.name}: path not found: {cfg.path}")
    if cfg.options.get("mode", "PERMISSIVE").upper() != "PERMISSIVE":
        raise ConfigError(f"source {cfg.name}.options.mode: only PERMISSIVE (malformed lines are quarantined)")
    if cfg.format == "delta" and cfg.schema.strip():
        raise ConfigError(f"source {cfg.name}.schema: a delta table carries its schema; pin it with a schema check")
    declared_schema(cfg)


def _reader(spark: SparkSession, cfg: FileSourceConfig, schema: T.StructType | None) -> DataFrame:
    reader = spark.read.format(cfg.format).options(**cfg.options)
    if cfg.format in ("csv", "json"):
        with_corrupt = T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType())])
        reader = reader.schema(with_corrupt).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
        if cfg.format == "csv":
            reader = reader.option("header", cfg.options.get("header", "true"))
    elif schema is not None:
        reader = reader.schema(schema)
    return _pinned(reader, cfg).load(cfg.path)


def _pinned(reader: DataFrameReader, cfg: FileSourceConfig) -> DataFrameReader:
    if cfg.version is not None:
        return reader.option("versionAsOf", cfg.version)
    return reader.option("timestampAsOf", cfg.timestamp_as_of) if cfg.timestamp_as_of else reader


def stored_schema(spark: SparkSession, cfg: FileSourceConfig) -> T.StructType:
    """The schema as stored: CSV header names (typed as declared), file footers, or the Delta log."""
    declared = declared_schema(cfg)
    try:
        if cfg.format == "json":
            return declared
        if cfg.format == "csv":
            check_csv_header(cfg, declared.names)
            header = spark.read.options(**cfg.options).option("header", "true").csv(cfg.path).columns
            types = {f.name: f.dataType for f in declared.fields}
            return T.StructType([T.StructField(c, types.get(c, T.StringType())) for c in header])
        return _pinned(spark.read.format(cfg.format), cfg).load(cfg.path).schema
    except (PySparkException, Py4JJavaError) as err:
        raise SourceError(f"cannot read source {cfg.name} ({cfg.format} at {cfg.path}): {root_cause(err)}") from err


def _kept(df: DataFrame, condition: Column) -> DataFrame:
    """Rows meeting `condition`; a malformed line whose condition cannot be decided (its columns are null)
    is kept too, so that it is counted and quarantined rather than lost."""
    if CORRUPT in df.columns:
        condition = condition | (F.col(CORRUPT).isNotNull() & condition.isNull())
    return df.where(condition)


def sliced(df: DataFrame, cfg: FileSourceConfig, days: list[str] | None = None) -> DataFrame:
    """The source's rows kept by its `filter` and, with `days`, of those days by its `day` expression."""
    if cfg.filter:
        df = _kept(df, F.expr(cfg.filter))
    if days and cfg.day:
        first, last = (F.lit(str(d)).cast("date") for d in days)
        df = _kept(df, F.expr(cfg.day).between(first, last))
    return df


def read_source(
    spark: SparkSession,
    cfg: FileSourceConfig,
    days: list[str] | None = None,
    *,
    allow_empty: bool = True,
    stored: T.StructType | None = None,
    cached: bool = True,
) -> SourceData:
    """Read a source and count its rows, and list its stored row groups (Parquet and Delta: metadata only)
    for the statistical layer's sample. A filtered or sliced source has no stored row groups to sample:
    its rows are a subset of them. `stored`, the stored schema when the caller has read it already.

    Cached (the default), the source is cached and counted in one scan (rows and malformed lines together).
    Not cached, a whole Parquet or Delta source is counted from its footers and read by nothing here:
    the frame stays a lazy scan, so later stages read only the row groups and columns they need. Any
    other source is cached and counted as above."""
    schema = stored or stored_schema(spark, cfg)
    df = sliced(_reader(spark, cfg, declared_schema(cfg)), cfg, days)
    location = f"{cfg.format} at {cfg.path}"
    whole = not cfg.filter and not (days and cfg.day) and not cfg.timestamp_as_of
    row_groups = stored_row_groups(cfg.format, cfg.path, cfg.version) if whole else None
    if not cached and row_groups is not None:
        if not row_groups.rows and not allow_empty:
            raise SourceError(f"source {cfg.name} has no rows ({location})")
        return SourceData(cfg.name, df, row_groups.rows, 0, schema, row_groups)
    data = materialize(df, cfg.name, location=location, allow_empty=allow_empty)
    return replace(data, stored_schema=schema, row_groups=None if data.malformed else row_groups)


def read_source_resiliently(
    spark: SparkSession, cfg: FileSourceConfig, resilience: ResilienceConfig, **options: Any
) -> SourceData:
    """`read_source` retried by the configured policy, behind the source's circuit (`engine.resilience`)."""
    return read_resiliently(lambda: read_source(spark, cfg, **options), source=cfg.name, cfg=resilience)


def locate(cfg: FileSourceConfig, staging_dir: Path, resilience: ResilienceConfig, task: str) -> FileSourceConfig:
    """The source as Spark will read it, before Spark starts: an http(s) file fetched (with retries, behind
    the source's circuit), a local `.zip` extracted, both into the staging folder; other paths as given.
    A missing local path fails here."""
    if is_remote(cfg.path):
        fetched = fetch(cfg.path, source=cfg.name, task=task, staging_dir=staging_dir, cfg=resilience)
        return replace(cfg, path=str(stage_file(fetched, fetched.parent)))
    check_source(cfg)
    if cfg.path.endswith(".zip") and "://" not in cfg.path:
        return replace(cfg, path=str(stage_file(Path(cfg.path), staging_dir)))
    return cfg


def fingerprint(cfg: FileSourceConfig) -> str:
    """What identifies the source's content in a write's identity: a local file's or folder's paths, sizes and
    modification times, the pinned version of a table. A source on remote storage has no fingerprint
    here (empty), so a write reading it is never taken for a repeat."""
    path = Path(cfg.path)
    if "://" in cfg.path or cfg.path.startswith("dbfs:") or not path.exists():
        return ""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    listing = "\n".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    pinned = f"@{cfg.version}" if cfg.version is not None else f"@{cfg.timestamp_as_of}"
    return hashlib.sha256(f"{listing}{pinned}".encode()).hexdigest()[:24]
