"""Check metrics against a pandas reference, on data with nulls, duplicates and bad values."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from engine.config.quality import CheckConfig, QualityConfig
from engine.quality.verify import ValidationReport, verify

FULL = QualityConfig(sample_rows=10_000_000)
AS_OF = datetime(2024, 1, 1)
SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("part", T.StringType()),
        T.StructField("delay", T.DoubleType()),
        T.StructField("origin", T.StringType()),
    ]
)
ROWS = [
    (1, "a", 10.0, "JFK"),
    (2, "a", None, "EWR"),
    (2, "a", 5.0, "LGA"),
    (3, "b", 5000.0, None),
    (4, None, -3.0, "XXX"),
    (5, "b", 0.0, "JFK"),
    (6, "c", None, "JFK"),
    (7, "c", 1.0, "EWR"),
]
CHECKS = [
    CheckConfig(name="unique_id", kind="unique", columns=["id"], action="warn"),
    CheckConfig(name="unique_id_part", kind="unique", columns=["id", "part"], action="warn"),
    CheckConfig(name="complete_delay", kind="completeness", columns=["delay"], threshold=0.7),
    CheckConfig(name="complete_pair", kind="completeness", columns=["part", "origin"], threshold=0.5),
    CheckConfig(name="delay_range", kind="range", columns=["delay"], min=-10, max=1000, severity="warning"),
    CheckConfig(name="origin_allowed", kind="allowed_values", columns=["origin"], values=["JFK", "EWR", "LGA"]),
]


def reference(frame: pd.DataFrame) -> dict[str, float]:
    counts = frame.groupby(["id"], dropna=False)["id"].transform("size")
    pair_counts = frame.groupby(["id", "part"], dropna=False)["id"].transform("size")
    delay = frame["delay"].dropna()
    origin = frame["origin"].dropna()
    return {
        "unique_id": (counts == 1).mean(),
        "unique_id_part": (pair_counts == 1).mean(),
        "complete_delay": frame["delay"].notna().mean(),
        "complete_pair": (frame["part"].notna() & frame["origin"].notna()).mean(),
        "delay_range": delay.between(-10, 1000).mean(),
        "origin_allowed": origin.isin(["JFK", "EWR", "LGA"]).mean(),
    }


def test_metrics_and_verdicts(spark: SparkSession) -> None:
    report = verify(spark.createDataFrame(ROWS, SCHEMA), "sample", CHECKS, FULL, rows=len(ROWS), as_of=AS_OF)
    want = reference(pd.DataFrame(ROWS, columns=SCHEMA.fieldNames()))
    by_name = {c.name: c for c in report.checks}
    for name, metric in want.items():
        assert abs(by_name[name].metric - metric) < 1e-12, name
        assert by_name[name].passed == (metric >= by_name[name].threshold), name
    assert not report.passed  # unique_id and origin_allowed are errors
    assert {c.name for c in report.failed} == {"unique_id", "unique_id_part", "delay_range", "origin_allowed"}
    assert report.to_dict()["passed"] is False


def test_warnings_do_not_block(spark: SparkSession) -> None:
    report = verify(spark.createDataFrame(ROWS, SCHEMA), "sample", [CHECKS[4]], FULL, rows=len(ROWS), as_of=AS_OF)
    assert report.failed and report.passed


def test_empty_dataset_has_no_metric(spark: SparkSession) -> None:
    report = verify(spark.createDataFrame([], SCHEMA), "empty", CHECKS, FULL, rows=0, as_of=AS_OF)
    assert all(c.metric is None and c.passed for c in report.checks)


def test_a_merged_report_takes_the_gravest_outcome() -> None:
    stale, halt, ok = (ValidationReport(outcome=o) for o in ("use_cached_features", "halt", "continue"))
    assert stale.merge(halt).outcome == halt.merge(stale).outcome == "halt"
    assert ok.merge(stale).outcome == stale.merge(ok).outcome == "use_cached_features"
