"""The extension points are registries: a new aggregation function or check kind is one entry, and config
validation, every plan, verification and the docs list pick it up. Values are checked against references
written here in plain Python and pandas."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.check_kinds import CHECK_KINDS, Bound, CheckKind, Columns, Interval, at_least, reference_table
from engine.config.features import AggregationConfig, FeaturesConfig, GroupConfig
from engine.config.quality import CheckConfig, QualityConfig
from engine.errors import ConfigError
from engine.features.functions import AGGREGATIONS, HLL_RELATIVE_SD, Aggregation, Output
from engine.features.functions import reference_table as functions_table
from engine.features.table import compile_features, feature_table
from engine.quality.deequ import row_predicate
from engine.quality.verify import verify
from jobs.reference_docs import stale

BASE = datetime(2024, 3, 1)
HOUR = 3600


def test_the_docs_list_exactly_the_registered_functions_and_check_kinds() -> None:
    assert stale() == []


# A function the engine does not ship: the sum of squares of a column's non-null values in the window.
SUM_OF_SQUARES = Aggregation(
    "sum_of_squares",
    "sum of the squares of {what}",
    Output.DOUBLE,
    "nulls skipped; null when the window has no value",
    lambda m: F.sum(m.value.cast("double") * m.value.cast("double")).over(m.frame),
)


def _events() -> list[tuple]:
    """Out-of-order events with nulls, duplicate times and events exactly one window apart."""
    rng = random.Random(5)
    rows = []
    for entity in ("a", "b", "hot"):
        for _ in range(60 if entity == "hot" else 12):
            rows.append((entity, rng.randrange(0, 48) * HOUR, None if rng.random() < 0.2 else rng.randint(-5, 9)))
    rows += [("a", 10 * HOUR, 3), ("a", 10 * HOUR, 4), ("a", 13 * HOUR, 2), (None, 5 * HOUR, 1)]
    rng.shuffle(rows)
    return [(i, e, BASE + timedelta(seconds=s), x) for i, (e, s, x) in enumerate(rows)]


def _sum_of_squares(events: list[tuple], entity: str | None, at: datetime, seconds: int) -> float | None:
    """Reference: the window (t - w, t] of the row's entity."""
    if entity is None:
        return None
    low = at - timedelta(seconds=seconds)
    values = [x for _, e, t, x in events if e == entity and low < t <= at and x is not None]
    return float(sum(x * x for x in values)) if values else None


def _features(windows: list[str], functions: list[str]) -> FeaturesConfig:
    group = GroupConfig(name="g", keys=["entity"], windows=windows, aggregations=[AggregationConfig(functions, "x")])
    return FeaturesConfig(timestamp="ts", groups=[group])


def test_a_new_aggregation_is_one_registry_entry_validated_documented_and_exact_in_every_plan(
    spark: SparkSession,
) -> None:
    cfg = _features(["3h"], ["sum", "sum_of_squares"])
    with pytest.raises(ConfigError, match=r"functions: 'sum_of_squares' is not one of count, sum"):
        compile_features(cfg)
    events = _events()
    df = spark.createDataFrame(events, "id LONG, entity STRING, ts TIMESTAMP, x INT")
    with AGGREGATIONS.registered(SUM_OF_SQUARES):
        assert "| `sum_of_squares` | sum of the squares of `x` | double |" in functions_table()
        assert [f.name for plan in compile_features(cfg) for f in plan.windowed][-1] == "g_x_sum_of_squares_3h"
        with pytest.raises(ConfigError, match="g_x_sum_of_squares_3h: sum_of_squares is not vectorizable"):
            feature_table(df, replace(cfg, plan="vectorized"))
        results = {
            plan: {r["id"]: r["g_x_sum_of_squares_3h"] for r in feature_table(df, replace(cfg, plan=plan)).collect()}
            for plan in ("sliding", "running", "auto")
        }
    for plan, got in results.items():
        want = {i: _sum_of_squares(events, e, t, 3 * HOUR) for i, e, t, _ in events}
        assert got == want, plan


def test_approx_count_distinct_is_hyperloglog_within_its_documented_error(spark: SparkSession) -> None:
    """Spark's HyperLogLog++ over each window: an estimate (not the exact count) within three relative
    standard deviations of it, the same in the sliding and running plans."""
    rng = random.Random(3)
    events = [(i, "e", BASE + timedelta(seconds=i), rng.randrange(0, 50_000)) for i in range(3000)]
    df = spark.createDataFrame(events, "id LONG, entity STRING, ts TIMESTAMP, x INT")
    cfg = _features(["lifetime"], ["count_distinct", "approx_count_distinct"])
    rows = {
        plan: {r["id"]: r for r in feature_table(df, replace(cfg, plan=plan)).collect()}
        for plan in ("sliding", "running")
    }
    sliding, running = rows["sliding"], rows["running"]
    exact = {i: len({x for _, _, _, x in events[: i + 1]}) for i in range(len(events))}
    assert all(sliding[i]["g_x_count_distinct_lifetime"] == exact[i] for i in exact)
    estimates = {i: sliding[i]["g_x_approx_count_distinct_lifetime"] for i in exact}
    assert estimates == {i: running[i]["g_x_approx_count_distinct_lifetime"] for i in exact}
    assert all(abs(estimates[i] - exact[i]) <= 3 * HLL_RELATIVE_SD * exact[i] + 1 for i in exact)
    assert estimates[len(events) - 1] != exact[len(events) - 1]


def _non_blank(check: CheckConfig, _: datetime) -> str:
    column = f"`{check.columns[0]}`"
    return f"{column} IS NULL OR length(trim({column})) > 0"


# A kind the engine does not ship: the share of rows whose string is null or not blank.
NON_BLANK = CheckKind(
    "non_blank",
    "the share of rows null or not blank is at least `threshold`",
    Bound.RATIO,
    Columns.ONE,
    lambda c, s, as_of: c.satisfies(_non_blank(s, as_of), s.name, at_least(s)),
    _non_blank,
    Interval.PROPORTION,
    deequ="`satisfies`",
    keys="`columns` (one)",
)


def test_a_new_check_kind_is_one_registry_entry_validated_documented_sampled_and_quarantined(
    spark: SparkSession,
) -> None:
    with pytest.raises(ConfigError, match=r"checks.names.kind: 'non_blank' is not one of schema, unique"):
        CheckConfig(name="names", kind="non_blank", columns=["name"])
    rng = random.Random(8)
    names = [rng.choice(["ann", "bob", "", "  ", None, "cy"]) for _ in range(20_000)]
    df = spark.createDataFrame([(i, n) for i, n in enumerate(names)], "id LONG, name STRING")
    share = pd.Series(names).map(lambda n: n is None or n.strip() != "").mean()
    as_of = datetime.now(UTC).replace(tzinfo=None)
    with CHECK_KINDS.registered(NON_BLANK):
        assert "| `non_blank` | the share of rows null or not blank" in reference_table()
        with pytest.raises(ConfigError, match=r"names\.columns: a non_blank check takes exactly one column"):
            CheckConfig(name="names", kind="non_blank", columns=[])
        clear = CheckConfig(name="names", kind="non_blank", columns=["name"], threshold=0.5)
        strict = CheckConfig(name="strict", kind="non_blank", columns=["name"], threshold=0.999, severity="warning")
        full = verify(df, "d", [clear, strict], QualityConfig(sample_rows=100_000), rows=len(names), as_of=as_of)
        sampled = verify(df, "d", [clear, strict], QualityConfig(sample_rows=2000), rows=len(names), as_of=as_of)
        blank = df.where(~row_predicate(clear, as_of)).count()
    by_name = {c.name: c for c in full.checks}
    assert by_name["names"].metric == pytest.approx(share, rel=1e-12) and by_name["names"].passed
    assert not by_name["strict"].passed and by_name["strict"].decided_by == "full"
    decided = {c.name: c for c in sampled.checks}
    low, high = decided["names"].interval
    assert decided["names"].decided_by == "sample" and low <= share <= high and decided["names"].passed
    assert decided["strict"].decided_by == "sample" and not decided["strict"].passed
    assert blank == sum(1 for n in names if n is not None and n.strip() == "")
    assert math.isclose(1 - blank / len(names), share)


def test_allowed_values_with_quotes_and_backslashes_mean_what_they_say_in_deequ_and_quarantine(
    spark: SparkSession,
) -> None:
    """The row condition quotes the column and escapes the values (`engine.sql`), and Deequ counts that same
    condition: a quote, a backslash and a backtick in a name are taken literally."""
    values = ["o'hare", "c:\\new", "plain"]
    rows = [(v,) for v in ["o'hare", "c:\\new", "c:\new", "plain", "ohare", None]]
    df = spark.createDataFrame(rows, "`odd``name` STRING")
    check = CheckConfig(name="known", kind="allowed_values", columns=["odd`name"], values=values, threshold=0.5)
    as_of = datetime(2024, 1, 1)
    report = verify(df, "d", [check], QualityConfig(), rows=len(rows), as_of=as_of)
    complying = [v for (v,) in rows if v is None or v in values]
    assert report.checks[0].metric == pytest.approx(len(complying) / len(rows))
    kept = sorted((r[0] for r in df.where(row_predicate(check, as_of)).collect()), key=str)
    assert kept == sorted(complying, key=str) and len(kept) == 4
