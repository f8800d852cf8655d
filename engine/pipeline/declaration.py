"""A pipeline declaration checked against its sources' schemas, before any data is read.

Each source's columns come from its declared schema and what is stored (a CSV header, Parquet footers,
the Delta log); the columns a source's schema checks expect count as known, since their absence in
the data is what those checks report. Every declared expression is analysed by Spark on an empty frame
of those columns: analysis reads no data, and a column nobody has or an expression Spark cannot parse
fails in one line naming its key.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.check_kinds import Evaluator
from engine.config.pipeline import PipelineConfig
from engine.config.quality import FileSourceConfig
from engine.config.schema import FeaturelakeConfig
from engine.errors import ConfigError, SourceError, first_line
from engine.features.events import LABEL
from engine.features.table import compile_features, feature_names
from engine.sources.files import declared_schema, stored_schema


def _analysed(key: str, build: Callable[[], DataFrame]) -> DataFrame:
    """`build()` analysed (its schema resolved): a parse or analysis error becomes one line naming `key`."""
    try:
        df = build()
        df.schema  # noqa: B018 - resolving the schema is the analysis
        return df
    except (AnalysisException, PySparkException) as err:
        raise ConfigError(f"{key}: {first_line(err)}") from None


def _raw(spark: SparkSession, source: FileSourceConfig, stored: T.StructType) -> DataFrame:
    """An empty frame of the source's known columns: declared, `stored`, and expected by its schema checks.
    A CSV file whose header does not name the declared columns fails here, naming the first difference."""
    declared = declared_schema(source) or T.StructType()
    if source.format == "csv" and source.options.get("header", "true") == "true":
        for i, (found, want) in enumerate(zip([*stored.names, None], [*declared.names, None], strict=False)):
            if (found or "").lower() != (want or "").lower():
                raise SourceError(
                    f"source {source.name}: the header of {source.path} does not match the declared schema: "
                    f"column {i + 1} is {found!r}, the schema says {want!r}"
                )
    fields = {f.name: f for f in stored.fields} | {f.name: f for f in declared.fields}
    for check in (c for c in source.checks if c.check_kind.evaluator == Evaluator.SCHEMA):
        for column in check.columns:
            fields.setdefault(column, T.StructField(column, T.StringType()))
    return spark.createDataFrame([], T.StructType(list(fields.values())))


def _require(columns: list[str], present: list[str], key: str, source: str) -> None:
    for column in columns:
        if column not in present:
            raise ConfigError(f"{key}: column '{column}' is not in source '{source}'")


def _prepared(raw: DataFrame, source: FileSourceConfig, key: str, label: str) -> DataFrame:
    """The source's rows as the pipeline sees them, each declared expression analysed in turn."""
    df = raw
    if source.filter:
        _analysed(f"{key}.filter", lambda: raw.where(F.expr(source.filter)))
    if source.day:
        _analysed(f"{key}.day", lambda: raw.select(F.expr(source.day).cast("date")))
    for name, expr in source.columns.items():
        df = _analysed(f"{key}.columns.{name}", lambda d=df, n=name, e=expr: d.withColumn(n, F.expr(e)))
    if label:
        df = _analysed("pipeline.label", lambda d=df: d.withColumn(LABEL, F.expr(label)))
    return df.select(*source.columns, *([LABEL] if label else [])) if source.columns else df


def _check_checks(prefix: str, source: FileSourceConfig, raw: DataFrame, sources: dict[str, DataFrame]) -> None:
    name = source.name
    for j, check in enumerate(source.checks):
        key = f"{prefix}.checks[{j}]"
        evaluator = check.check_kind.evaluator
        if evaluator != Evaluator.SCHEMA:
            _require(list(check.columns), raw.columns, f"{key}.columns", name)
        if check.predicate:
            _analysed(f"{key}.predicate", lambda c=check: raw.where(F.expr(c.predicate)))
        if evaluator == Evaluator.REFERENCES:
            wanted = list(check.reference_columns or check.columns)
            _require(wanted, sources[check.reference].columns, f"{key}.reference_columns", check.reference)


def _check_features(cfg: FeaturelakeConfig, events: DataFrame, source: str) -> None:
    features = cfg.features
    for i, plan in enumerate(compile_features(features)):
        key = f"features.groups[{i}]"
        _require(list(plan.group.keys), events.columns, f"{key}.keys", source)
        for j, agg in enumerate(plan.group.aggregations):
            if agg.column:
                _require([agg.column], events.columns, f"{key}.aggregations[{j}].column", source)
            if agg.filter:
                _analysed(f"{key}.aggregations[{j}].filter", lambda a=agg: events.where(F.expr(a.filter)))
        for j, lag in enumerate(plan.group.lags):
            _require([lag.column], events.columns, f"{key}.lags[{j}].column", source)
    names = [n for n in feature_names(features) if n not in {d.name for d in features.derived}]
    with_features = events.select("*", *(F.lit(None).cast("double").alias(n) for n in names))
    for i, derived in enumerate(features.derived):
        with_features = _analysed(
            f"features.derived[{i}].expr",
            lambda d=derived, w=with_features: w.withColumn(d.name, F.expr(d.expr)),
        )


def check_declaration(spark: SparkSession, cfg: FeaturelakeConfig, pipeline: PipelineConfig) -> dict[str, T.StructType]:
    """Every column the declaration names exists where it is used, and every expression parses and resolves.
    Returns each source's stored schema (read from metadata), which the read reuses."""
    stored = {s.name: stored_schema(spark, s) for s in pipeline.sources}
    raw = {s.name: _raw(spark, s, stored[s.name]) for s in pipeline.sources}
    for i, source in enumerate(pipeline.sources):
        _check_checks(f"pipeline.sources[{i}]", source, raw[source.name], raw)
    entity = pipeline.entity
    prepared = {
        s.name: _prepared(raw[s.name], s, f"pipeline.sources[{i}]", pipeline.label if s.name == entity.source else "")
        for i, s in enumerate(pipeline.sources)
    }
    events = prepared[entity.source]
    _require(list(entity.keys), events.columns, "pipeline.entity.keys", entity.source)
    _require([entity.timestamp], events.columns, "pipeline.entity.timestamp", entity.source)
    if entity.known_at:
        _require([entity.known_at], events.columns, "pipeline.entity.known_at", entity.source)
    _require(list(pipeline.carry), events.columns, "pipeline.carry", entity.source)
    for i, join in enumerate(pipeline.joins):
        key = f"pipeline.joins[{i}]"
        other = prepared[join.source]
        _require(list(join.keys), events.columns, f"{key}.keys", entity.source)
        _require(list(join.keys), other.columns, f"{key}.keys", join.source)
        _require([join.timestamp], other.columns, f"{key}.timestamp", join.source)
        _require(list(join.columns), other.columns, f"{key}.columns", join.source)
    _check_features(cfg, events, entity.source)
    if cfg.features.granularity == "snapshot":
        _check_snapshot(cfg, pipeline)
    return stored


def _check_snapshot(cfg: FeaturelakeConfig, pipeline: PipelineConfig) -> None:
    """A snapshot row is an entity at a period's end: it has the entity's keys and time, no row's label."""
    if pipeline.label:
        raise ConfigError("pipeline.label: a snapshot row (an entity at a period's end) has no label of a row")
    if pipeline.carry:
        raise ConfigError("pipeline.carry: a snapshot row carries only the entity's keys and time")
    for i, group in enumerate(cfg.features.groups):
        if list(group.keys) != list(pipeline.entity.keys):
            raise ConfigError(f"features.groups[{i}].keys: {list(group.keys)} are not the entity's keys")
