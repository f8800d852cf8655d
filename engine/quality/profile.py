"""Column profiles and the checks they suggest (the role of Deequ's profiler and suggestion rules).

One pass profiles every column (non-null count, approximate distinct count, min, max); one more
collects the values of low-cardinality columns and the exact distinct counts of key candidates.
The suggestions are conservative: completeness at the Wilson lower bound of what was seen,
uniqueness only when exact, allowed values only for small sets, non-negativity when min >= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.quality.intervals import wilson, z_score

NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
DISCRETE = (T.StringType, T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.BooleanType)


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    type: str
    non_null: int
    approx_distinct: int
    minimum: float | None
    maximum: float | None
    values: list[str] | None
    distinct: int | None


def profile(df: DataFrame, rows: int, max_values: int) -> list[ColumnProfile]:
    """Profile every column of `df` (`rows` rows) in two aggregations."""
    fields = df.schema.fields
    numeric = {f.name for f in fields if isinstance(f.dataType, NUMERIC)}
    aggregates = []
    for i, f in enumerate(fields):
        column = F.col(f.name)
        aggregates += [F.count(column).alias(f"n{i}"), F.approx_count_distinct(column).alias(f"d{i}")]
        if f.name in numeric:
            aggregates += [F.min(column).cast("double").alias(f"lo{i}"), F.max(column).cast("double").alias(f"hi{i}")]
    first = df.agg(*aggregates).first()
    small = [f for i, f in enumerate(fields) if isinstance(f.dataType, DISCRETE) and first[f"d{i}"] <= max_values]
    keys = [f for i, f in enumerate(fields) if first[f"n{i}"] == rows and first[f"d{i}"] >= 0.97 * rows]
    second = (
        df.agg(
            *[F.collect_set(F.col(f.name).cast("string")).alias(f"v_{f.name}") for f in small],
            *[F.count_distinct(F.col(f.name)).alias(f"u_{f.name}") for f in keys],
        ).first()
        if small or keys
        else None
    )
    profiles = []
    for i, f in enumerate(fields):
        profiles.append(
            ColumnProfile(
                name=f.name,
                type=f.dataType.simpleString(),
                non_null=first[f"n{i}"],
                approx_distinct=first[f"d{i}"],
                minimum=first[f"lo{i}"] if f.name in numeric else None,
                maximum=first[f"hi{i}"] if f.name in numeric else None,
                values=sorted(second[f"v_{f.name}"]) if f in small else None,
                distinct=second[f"u_{f.name}"] if f in keys else None,
            )
        )
    return profiles


def suggest(profiles: list[ColumnProfile], rows: int, source: str) -> list[dict]:
    """Checks that hold on the profiled data, as plain dicts in the checks YAML's shape."""
    checks: list[dict] = [
        {
            "name": f"{source}_columns",
            "kind": "schema",
            "columns": [p.name for p in profiles],
            "types": {p.name: p.type for p in profiles},
        },
        {"name": f"{source}_size", "kind": "size", "min": 1},
    ]
    z = z_score(0.95)
    for p in profiles:
        if rows and p.non_null == rows:
            checks.append({"name": f"{p.name}_complete", "kind": "completeness", "columns": [p.name], "threshold": 1.0})
        elif p.non_null:
            bound = math.floor(wilson(p.non_null, rows, z).low * 100) / 100
            if bound > 0:
                checks.append(
                    {"name": f"{p.name}_completeness", "kind": "completeness", "columns": [p.name], "threshold": bound}
                )
        if p.distinct is not None and p.distinct == rows:
            checks.append({"name": f"{p.name}_unique", "kind": "unique", "columns": [p.name]})
        if p.values is not None and p.values:
            checks.append(
                {"name": f"{p.name}_allowed", "kind": "allowed_values", "columns": [p.name], "values": p.values}
            )
        if p.minimum is not None and p.minimum >= 0:
            checks.append({"name": f"{p.name}_non_negative", "kind": "non_negative", "columns": [p.name]})
    return checks
