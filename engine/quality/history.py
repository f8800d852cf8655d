"""The metrics repository: every run's Deequ metrics in a Delta table, and Deequ's anomaly detection on it.

Each run appends its metrics (one row per check, plus each dataset's row count). Before the
append, each tracked metric's history (row counts and completeness, oldest first) with the run's
value appended goes to the configured Deequ anomaly strategy, which judges the newest point.
Anomalies warn; they do not block. A Delta table rather than Deequ's JSON file repository, so the
history is versioned, appended atomically, and readable with SQL like every other output.
"""

from __future__ import annotations

import re
from datetime import datetime

from delta.tables import DeltaTable
from py4j.java_gateway import JavaObject
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.quality import AnomalyConfig, AnomalyStrategy
from engine.quality.findings import Anomaly
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
_DEEQU_LABEL = re.compile(r"^\[\w+\]: ")


def metric_rows(report: ValidationReport, run_id: str, recorded_at: datetime) -> list[tuple]:
    """The run's metrics as rows of METRICS_SCHEMA: every measured check, and each dataset's rows."""
    rows = [(run_id, recorded_at, d, "rows", "rows", float(n)) for d, n in report.rows.items()]
    rows += [
        (run_id, recorded_at, c.dataset, c.name, c.kind, float(c.metric)) for c in report.checks if c.metric is not None
    ]
    return rows


def metrics_frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, METRICS_SCHEMA)


def metric_history(spark: SparkSession, path: str, run_id: str) -> dict[tuple[str, str], list[float]]:
    """Every earlier value of every tracked (dataset, metric), oldest first; empty when there is no history."""
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    rows = (
        spark.read.format("delta")
        .load(path)
        .where(F.col("kind").isin(*TRACKED_KINDS) & (F.col("run_id") != run_id))
        .groupBy("dataset", "metric")
        .agg(F.sort_array(F.collect_list(F.struct("recorded_at", "value"))).alias("series"))
        .collect()
    )
    return {(r["dataset"], r["metric"]): [point["value"] for point in r["series"]] for r in rows}


def _strategy(jvm: JavaObject, cfg: AnomalyConfig) -> JavaObject:
    """The Deequ anomaly detection strategy the config names."""
    from pydeequ import anomaly_detection as D

    low, high = float(cfg.lower), float(cfg.upper)  # Scala unboxes them as doubles
    strategy = getattr(D, cfg.strategy.deequ_class)(low, high)
    return strategy._set_jvm(jvm)._anomaly_jvm


def anomalies(
    spark: SparkSession, current: list[tuple], history: dict[tuple[str, str], list[float]], cfg: AnomalyConfig
) -> list[Anomaly]:
    """Tracked metrics whose newest value Deequ's strategy finds anomalous against their history."""
    jvm = spark._jvm
    strategy = _strategy(jvm, cfg)
    found = []
    for _, _, dataset, metric, kind, value in current:
        before = history.get((dataset, metric), [])
        relative = cfg.strategy == AnomalyStrategy.RELATIVE_RATE_OF_CHANGE
        if kind not in TRACKED_KINDS or not before or (relative and before[-1] == 0):
            continue
        series = jvm.scala.collection.JavaConverters.asScalaBuffer([float(v) for v in [*before, value]]).toVector()
        detected = jvm.scala.collection.JavaConverters.seqAsJavaList(
            strategy.detect(series, jvm.scala.Tuple2(len(before), len(before) + 1))
        )
        if detected.isEmpty():
            continue
        anomaly = detected.get(0)._2()
        detail = anomaly.detail().get() if anomaly.detail().isDefined() else "anomalous"
        detail = _DEEQU_LABEL.sub("", detail)  # Deequ labels every rate-of-change strategy AbsoluteChangeStrategy
        previous = before[-1]
        found.append(
            Anomaly(
                dataset=dataset,
                metric=metric,
                previous=previous,
                current=value,
                rate=value / previous if previous else None,
                strategy=cfg.strategy,
                message=f"{dataset}.{metric} changed from {previous:g} to {value:g} since the previous run "
                f"({cfg.strategy}: {detail})",
            )
        )
    return found
