"""The metrics repository: every run's check metrics in a Delta table, and anomalies across runs.

Each run appends its metrics (one row per check, plus each dataset's row count). Before the
append, the row counts and completeness metrics are compared with the previous run's: a ratio
current/previous outside [max_rate_decrease, max_rate_increase] is an anomaly, as Deequ's
relative-rate-of-change strategy defines it. Anomalies warn; they do not block.
"""

from __future__ import annotations

from datetime import datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.quality import QualityConfig
from engine.quality.verify import ValidationReport

METRICS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType()),
        T.StructField("recorded_at", T.TimestampType()),
        T.StructField("dataset", T.StringType()),
        T.StructField("metric", T.StringType()),
        T.StructField("kind", T.StringType()),
        T.StructField("value", T.DoubleType()),
    ]
)
TRACKED_KINDS = ("rows", "completeness")


def metric_rows(report: ValidationReport, run_id: str, recorded_at: datetime) -> list[tuple]:
    """The run's metrics as rows of METRICS_SCHEMA: every measured check, and each dataset's rows."""
    rows = [(run_id, recorded_at, d, "rows", "rows", float(n)) for d, n in report.rows.items()]
    rows += [
        (run_id, recorded_at, c.dataset, c.name, c.kind, float(c.metric)) for c in report.checks if c.metric is not None
    ]
    return rows


def metrics_frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, METRICS_SCHEMA)


def previous_metrics(spark: SparkSession, path: str, run_id: str) -> dict[tuple[str, str], float]:
    """The newest earlier value of every tracked (dataset, metric); empty when there is no history."""
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    newest = Window.partitionBy("dataset", "metric").orderBy(F.desc("recorded_at"))
    latest = (
        spark.read.format("delta")
        .load(path)
        .where(F.col("kind").isin(*TRACKED_KINDS) & (F.col("run_id") != run_id))
        .withColumn("rank", F.row_number().over(newest))
        .where("rank = 1")
        .select("dataset", "metric", "value")
    )
    return {(r["dataset"], r["metric"]): r["value"] for r in latest.collect()}


def anomalies(current: list[tuple], previous: dict[tuple[str, str], float], cfg: QualityConfig) -> list[dict]:
    """Tracked metrics whose rate of change since the previous run is outside the allowed band."""
    found = []
    for _, _, dataset, metric, kind, value in current:
        before = previous.get((dataset, metric))
        if kind not in TRACKED_KINDS or before is None or before == 0:
            continue
        rate = value / before
        if not cfg.max_rate_decrease <= rate <= cfg.max_rate_increase:
            found.append(
                {
                    "dataset": dataset,
                    "metric": metric,
                    "previous": before,
                    "current": value,
                    "rate": rate,
                    "message": f"{dataset}.{metric} changed from {before:g} to {value:g} (x{rate:.3g}) since the "
                    f"previous run; allowed x{cfg.max_rate_decrease:g}..x{cfg.max_rate_increase:g}",
                }
            )
    return found
