"""Deequ's metrics against a pandas reference, on data with nulls, duplicates and bad values.

The reference spells out the semantics the engine takes from Deequ, kind by kind: ratios over all
rows; nulls comply with allowed values, ranges, non-negativity and `not_in_future` but not with a
pattern or a predicate; uniqueness over the rows whose key is not wholly null; the population
standard deviation; quantiles within Deequ's 1% rank error."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.quality import CheckConfig, QualityConfig
from engine.quality.deequ import add_constraint
from engine.quality.gates import tag_failures
from engine.quality.verify import ValidationReport, verify
from engine.runtime.py4j_bridge import ansi_off

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


def _uniqueness(frame: pd.DataFrame, keys: list[str]) -> float:
    keyed = frame[frame[keys].notna().any(axis=1)]
    return (keyed.groupby(keys, dropna=False)[keys[0]].transform("size") == 1).mean()


def reference(frame: pd.DataFrame) -> dict[str, float]:
    delay, origin = frame["delay"], frame["origin"]
    return {
        "unique_id": _uniqueness(frame, ["id"]),
        "unique_id_part": _uniqueness(frame, ["id", "part"]),
        "complete_delay": delay.notna().mean(),
        "complete_pair": (frame["part"].notna() & origin.notna()).mean(),
        "delay_range": (delay.isna() | delay.between(-10, 1000)).mean(),
        "origin_allowed": (origin.isna() | origin.isin(["JFK", "EWR", "LGA"])).mean(),
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
    """Every check of an empty dataset is reported, passed, with no metric: nothing was there to measure."""
    report = verify(spark.createDataFrame([], SCHEMA), "empty", CHECKS, FULL, rows=0, as_of=AS_OF)
    assert [c.name for c in report.checks] == [c.name for c in CHECKS]
    assert all(c.metric is None and c.passed and c.decided_by == "no data" for c in report.checks)


def test_a_merged_report_takes_the_gravest_outcome() -> None:
    stale, halt, ok = (ValidationReport(outcome=o) for o in ("use_cached_features", "halt", "continue"))
    assert stale.merge(halt).outcome == halt.merge(stale).outcome == "halt"
    assert ok.merge(stale).outcome == stale.merge(ok).outcome == "use_cached_features"


def test_quarantine_tags_exactly_the_rows_deequ_fails(spark: SparkSession) -> None:
    """Each row-level check's quarantine predicate marks the same rows as Deequ's own row-level results."""
    from pydeequ.checks import Check, CheckLevel
    from pydeequ.verification import VerificationResult, VerificationSuite

    frame = spark.createDataFrame(ROWS, SCHEMA).withColumn(
        "seen", F.expr("TIMESTAMP'2024-01-01' + make_interval(0, 0, 0, id)")
    )
    row_checks = [
        CHECKS[2],
        CHECKS[3],
        CHECKS[4],
        CHECKS[5],
        CheckConfig(name="delay_non_negative", kind="non_negative", columns=["delay"], threshold=0.5),
        CheckConfig(name="part_pattern", kind="pattern", columns=["part"], pattern="^[ab]$", threshold=0.5),
        CheckConfig(name="rule", kind="satisfies", predicate="delay > 1 OR part = 'c'", threshold=0.5),
        CheckConfig(name="seen_by_5th", kind="not_in_future", columns=["seen"], threshold=0.5),
    ]
    as_of = datetime(2024, 1, 5)
    suite = VerificationSuite(spark).onData(frame)
    for spec in row_checks:
        suite = suite.addCheck(add_constraint(Check(spark, CheckLevel.Error, spec.name), spec, as_of))
    with ansi_off(spark):
        result = suite.run()
        deequ_rows = VerificationResult.rowLevelResultsAsDataFrame(spark, result, frame).collect()
    tagged = tag_failures(frame, row_checks, as_of).collect()
    for spec in row_checks:
        by_deequ = [row["id"] for row in deequ_rows if not row[spec.name]]
        by_gate = [row["id"] for row in tagged if spec.name in row["failed_checks"]]
        assert by_gate == by_deequ, spec.name
    assert any(spec.name in row["failed_checks"] for row in tagged for spec in row_checks)
