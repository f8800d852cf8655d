"""The card-transactions example pipeline (`pipeline=transactions`), end to end, against a plain-Python reference.

A shape the flights pipeline does not have: a Parquet source, a numeric key, many events on one day,
30/90/365-day sums, counts and means, and one row per customer per day (snapshot granularity). The
reference works on whole days and shares no code with the engine.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.pipeline.features import FEATURES
from engine.pipeline.runner import execute
from scripts.example_data import transactions
from tests.conftest import REPO, job_config

EXAMPLE = REPO / "examples" / "transactions.parquet"
WINDOWS = {"30d": 30, "90d": 90, "365d": 365}
TTL_DAYS = 90


def _reference(rows: list[dict]) -> dict[tuple[int, dt.date], dict[str, object]]:
    """Every (customer, midnight) row and its features. A day's amounts are known at the next midnight; the
    row at midnight D exists while a purchase day lies within D - 1 - 90 days .. D - 1, and a window of w
    days at D holds the purchase days D - w .. D - 1 (known in (D - w, D], closed on the right)."""
    days: dict[int, dict[dt.date, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        amounts = days[row["customer_id"]][row["txn_day"]]
        if row["amount"] is not None:
            amounts.append(row["amount"])
    expected = {}
    for customer, by_day in days.items():
        spine = {d + dt.timedelta(days=1 + k) for d in by_day for k in range(TTL_DAYS + 1)}
        for midnight in spine:
            values: dict[str, object] = {}
            for window, length in WINDOWS.items():
                amounts = [a for k in range(1, length + 1) for a in by_day.get(midnight - dt.timedelta(days=k), [])]
                values[f"customer_amount_sum_{window}"] = math.fsum(amounts) if amounts else None
                values[f"customer_amount_count_{window}"] = len(amounts)
                values[f"customer_amount_mean_{window}"] = math.fsum(amounts) / len(amounts) if amounts else None
            expected[(customer, midnight)] = values
    return expected


def _same(got: object, want: object) -> bool:
    if got is None or want is None:
        return got is want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def test_the_shipped_data_is_what_the_script_writes() -> None:
    shipped = pq.read_table(EXAMPLE).to_pylist()
    assert [tuple(r.values()) for r in shipped] == transactions()


def test_transactions_pipeline_equals_the_reference_in_every_cell(spark: SparkSession, tmp_path: Path) -> None:
    cfg = job_config(tmp_path, "pipeline=transactions", f"pipeline.sources.0.path={EXAMPLE}")
    result = execute(FEATURES, cfg, spark)
    expected = _reference(pq.read_table(EXAMPLE).to_pylist())
    table = spark.read.format("delta").load(cfg.sink.path)
    names = [c for c in table.columns if c.startswith("customer_amount_")]
    assert table.columns[:2] == ["customer_id", "txn_ts"] and len(names) == 9
    days = table.select("*", F.to_date("txn_ts").alias("midnight"))  # the session's UTC day, not the process's
    got = {(r["customer_id"], r["midnight"]): r.asDict() for r in days.toLocalIterator()}
    assert result["commit"].rows_written == len(got) == len(expected)
    assert set(got) == set(expected)
    differing = [(key, n) for key, want in expected.items() for n in names if not _same(got[key][n], want[n])]
    assert differing == []
    busiest = max(expected, key=lambda k: expected[k]["customer_amount_count_365d"])
    assert busiest[0] == 9_000_000_001 and expected[busiest]["customer_amount_count_365d"] > 4_000  # a huge entity
