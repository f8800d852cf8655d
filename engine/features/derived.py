"""Derived features: Spark SQL expressions over features already computed (ratios, differences)."""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from engine.config.features import DerivedConfig
from engine.errors import ConfigError, first_line


def add_derived(rows: DataFrame, derived: list[DerivedConfig]) -> DataFrame:
    """Add each derived feature in order, so a later one may use an earlier one."""
    for i, feature in enumerate(derived):
        try:
            rows = rows.withColumn(feature.name, F.expr(feature.expr))
        except AnalysisException as error:
            raise ConfigError(f"features.derived[{i}] ({feature.name}): {first_line(error)}") from None
    return rows
