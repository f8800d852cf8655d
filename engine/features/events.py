"""Event columns: a source's declared SQL expressions (ids, timestamps, known-at times, the label) added to its rows."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.config.quality import FileSourceConfig

LABEL = "label"


def with_event_columns(df: DataFrame, source: FileSourceConfig, label: str = "") -> DataFrame:
    """The source's rows as the pipeline sees them: its declared `columns`, each an SQL expression over the
    source's columns and the declared ones before it (all of the source's columns when none are
    declared), and, for the driving source, the `label` expression over the same."""
    for name, expr in source.columns.items():
        df = df.withColumn(name, F.expr(expr))
    if label:
        df = df.withColumn(LABEL, F.expr(label))
    return df.select(*source.columns, *([LABEL] if label else [])) if source.columns else df
