"""Data-quality checks declared in config, compiled to one aggregation pass over a dataset.

Row-level checks (completeness, range, allowed values) become ratio expressions evaluated in a
single `agg`; each uniqueness check needs one grouping of its key columns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from engine.config.schema import CheckConfig


@dataclass(frozen=True)
class CheckResult:
    """The measured metric of one check against its threshold."""

    dataset: str
    name: str
    kind: str
    columns: list[str]
    severity: str
    threshold: float
    metric: float | None
    passed: bool


@dataclass(frozen=True)
class ValidationReport:
    """All check results of a run; `passed` is false when any error-severity check failed."""

    checks: list[CheckResult] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed or c.severity != "error" for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def merge(self, other: ValidationReport) -> ValidationReport:
        return ValidationReport(self.checks + other.checks, self.anomalies + other.anomalies)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks], "anomalies": self.anomalies}


def _all_not_null(columns: list[str]) -> Column:
    return reduce(lambda acc, c: acc & F.col(c).isNotNull(), columns, F.lit(True))


def _ratio(condition: Column, among: Column) -> Column:
    """Share of rows satisfying `condition` among rows satisfying `among` (null when none)."""
    hits = F.sum(F.when(among & condition, 1).otherwise(0))
    total = F.sum(F.when(among, 1).otherwise(0))
    return F.when(total > 0, hits / total)


def _row_metric(check: CheckConfig) -> Column:
    column = F.col(check.columns[0])
    if check.kind == "completeness":
        return _ratio(_all_not_null(check.columns), F.lit(True))
    if check.kind == "range":
        low = column >= check.min if check.min is not None else F.lit(True)
        high = column <= check.max if check.max is not None else F.lit(True)
        return _ratio(low & high, column.isNotNull())
    return _ratio(column.isin(check.values), column.isNotNull())


def _uniqueness(df: DataFrame, columns: list[str]) -> float | None:
    """Share of rows whose key occurs exactly once (Deequ's definition of uniqueness)."""
    counts = df.groupBy(*columns).count()
    row = counts.agg(
        F.sum(F.when(F.col("count") == 1, 1).otherwise(0)).alias("unique_rows"),
        F.sum("count").alias("rows"),
    ).first()
    return row["unique_rows"] / row["rows"] if row and row["rows"] else None


def verify(df: DataFrame, dataset: str, checks: list[CheckConfig]) -> ValidationReport:
    """Measure every check on `df`: one pass for row-level checks, one grouping per key check."""
    row_checks = [c for c in checks if c.kind != "unique"]
    metrics: dict[str, float | None] = {}
    if row_checks:
        row = df.agg(*[_row_metric(c).alias(f"m{i}") for i, c in enumerate(row_checks)]).first()
        metrics |= {c.name: row[f"m{i}"] for i, c in enumerate(row_checks)}
    for check in checks:
        if check.kind == "unique":
            metrics[check.name] = _uniqueness(df, check.columns)
    results = [
        CheckResult(
            dataset=dataset,
            name=c.name,
            kind=c.kind,
            columns=list(c.columns),
            severity=c.severity,
            threshold=c.threshold,
            metric=metrics[c.name],
            passed=metrics[c.name] is None or metrics[c.name] >= c.threshold,
        )
        for c in checks
    ]
    return ValidationReport(results)
