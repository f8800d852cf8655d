"""Source edge: datasets read from parquet, csv, json, avro or delta, each with an explicit schema.

CSV and JSON are read in permissive mode with a corrupt-record column: a malformed line becomes
a row holding the raw text, which the pipeline counts and quarantines. Reading never drops a
line. `stored_schema` reads only metadata (a CSV header, Parquet/Avro footers, the Delta log), so
schema checks run before any data is scanned.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from engine.config.quality import FileSourceConfig
from engine.errors import ConfigError, SourceError
from engine.quality.inputs import CORRUPT, SourceData
from engine.quality.sampling import stored_row_groups
from engine.sources.materialize import materialize, root_cause

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
    if "://" not in cfg.path and not Path(cfg.path).exists():
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
    if cfg.version is not None:
        reader = reader.option("versionAsOf", cfg.version)
    return reader.load(cfg.path)


def stored_schema(spark: SparkSession, cfg: FileSourceConfig) -> T.StructType:
    """The schema as stored: CSV header names (typed as declared), file footers, or the Delta log."""
    declared = declared_schema(cfg)
    try:
        if cfg.format == "json":
            return declared
        if cfg.format == "csv":
            header = spark.read.options(**cfg.options).option("header", "true").csv(cfg.path).columns
            types = {f.name: f.dataType for f in declared.fields}
            return T.StructType([T.StructField(c, types.get(c, T.StringType())) for c in header])
        reader = spark.read.format(cfg.format)
        if cfg.version is not None:
            reader = reader.option("versionAsOf", cfg.version)
        return reader.load(cfg.path).schema
    except (PySparkException, Py4JJavaError) as err:
        raise SourceError(f"cannot read source {cfg.name} ({cfg.format} at {cfg.path}): {root_cause(err)}") from err


def read_source(spark: SparkSession, cfg: FileSourceConfig) -> SourceData:
    """Read, cache and count a source in one scan (rows and malformed lines together), and list its stored
    row groups (Parquet and Delta: metadata only) for the statistical layer's sample."""
    schema = stored_schema(spark, cfg)
    data = materialize(
        _reader(spark, cfg, declared_schema(cfg)), cfg.name, location=f"{cfg.format} at {cfg.path}", allow_empty=True
    )
    row_groups = stored_row_groups(cfg.format, cfg.path, cfg.version) if not data.malformed else None
    return replace(data, stored_schema=schema, row_groups=row_groups)
