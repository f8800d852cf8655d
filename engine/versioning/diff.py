"""Compare two versions of a table: row counts, schema changes, and summary statistics per feature."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, NumericType

from engine.sinks.schema_policy import SchemaDiff, schema_diff
from engine.sql import quote_identifier

STATISTICS = ("nulls", "mean", "min", "max")


@dataclass(frozen=True)
class VersionDiff:
    """Two versions side by side; `features` maps a column to its statistics in each version."""

    rows: tuple[int, int]
    schema: SchemaDiff
    features: dict[str, tuple[dict[str, float | None], dict[str, float | None]]]

    @property
    def changed_features(self) -> list[str]:
        return [name for name, (a, b) in self.features.items() if a != b]


def _profile(df: DataFrame, columns: list[str]) -> tuple[int, dict[str, dict[str, float | None]]]:
    """Row count and, per column, nulls (and mean, min, max when numeric), in one aggregation."""
    numeric = {f.name for f in df.schema.fields if isinstance(f.dataType, NumericType | BooleanType)}
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, name in enumerate(columns):
        column = F.col(quote_identifier(name))
        aggregates.append(F.count_if(column.isNull()).alias(f"c{i}_nulls"))
        if name in numeric:
            value = column.cast("double")
            aggregates += [
                F.avg(value).alias(f"c{i}_mean"),
                F.min(value).alias(f"c{i}_min"),
                F.max(value).alias(f"c{i}_max"),
            ]
    row = df.agg(*aggregates).first().asDict()
    stats = {
        name: {s: row.get(f"c{i}_{s}") for s in STATISTICS if f"c{i}_{s}" in row} for i, name in enumerate(columns)
    }
    return int(row["rows"]), stats


def diff_versions(old: DataFrame, new: DataFrame) -> VersionDiff:
    """The differences between two reads of a table (one aggregation scan of each)."""
    schema = schema_diff(old.schema, new.schema)
    rows_old, stats_old = _profile(old, old.columns)
    rows_new, stats_new = _profile(new, new.columns)
    empty: dict[str, float | None] = {}
    names = [*old.columns, *(c for c in new.columns if c not in old.columns)]
    features = {n: (stats_old.get(n, empty), stats_new.get(n, empty)) for n in names}
    return VersionDiff((rows_old, rows_new), schema, features)
