"""Checks, sampling, gates and sources against plain-Python and pandas references, on real Spark and Delta."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from engine.config.quality import (
    AnomalyConfig,
    CheckConfig,
    DriftConfig,
    FileSourceConfig,
    QualityConfig,
    load_checks_file,
)
from engine.config.schema import FeaturelakeConfig
from engine.errors import CheckError, ConfigError, SourceError, ValidationFailed
from engine.pipeline.quality import write_quarantine
from engine.pipeline.runner import execute
from engine.pipeline.suggest import SUGGEST_CHECKS
from engine.pipeline.validate import VALIDATE
from engine.quality.drift import feature_drift, js_distance, psi
from engine.quality.history import anomalies, metric_history, metric_rows, metrics_frame
from engine.quality.sampling import draw_sample
from engine.quality.validation import validate
from engine.quality.verify import verify
from engine.runtime.io_metrics import spark_input_bytes
from engine.sources.files import read_source
from engine.sources.row_groups import delta_row_groups
from tests.conftest import job_config

AS_OF = datetime(2024, 1, 10)
SCHEMA = "id INT, name STRING, amount DOUBLE, code STRING, seen TIMESTAMP"
FULL = QualityConfig(sample_rows=10_000_000)


def _rows(n: int, seed: int = 5) -> list[tuple]:
    """Rows with nulls in every column but id, a repeated id, and codes off the pattern."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            (
                i if i != 7 else 3,
                None if i % 11 == 0 else rng.choice(["ann", "bob", "cy"]),
                None if i % 13 == 0 else round(rng.gauss(50, 20), 3),
                None if i % 17 == 0 else rng.choice(["AB1", "XY2", "bad", "AB9"]),
                None if i % 19 == 0 else datetime(2024, 1, 1) + timedelta(minutes=rng.randrange(0, 10_000)),
            )
        )
    return rows


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "name", "amount", "code", "seen"])


def test_each_format_reads_with_nulls_unchanged(spark: SparkSession, tmp_path: Path) -> None:
    rows = _rows(60)
    df = spark.createDataFrame(rows, SCHEMA)
    for fmt in ("parquet", "avro", "json"):
        df.write.format(fmt).save(str(tmp_path / fmt))
    df.toPandas().to_csv(tmp_path / "data.csv", index=False, na_rep="", date_format="%Y-%m-%dT%H:%M:%S")
    df.where("id < 30").write.format("delta").save(str(tmp_path / "delta"))
    df.where("id >= 30").write.format("delta").mode("append").save(str(tmp_path / "delta"))
    want = _frame(rows).sort_values(["id", "name"], na_position="first").reset_index(drop=True)
    sources = [
        FileSourceConfig(name="p", format="parquet", path=str(tmp_path / "parquet"), schema=SCHEMA),
        FileSourceConfig(name="a", format="avro", path=str(tmp_path / "avro"), schema=SCHEMA),
        FileSourceConfig(name="j", format="json", path=str(tmp_path / "json"), schema=SCHEMA),
        FileSourceConfig(name="c", format="csv", path=str(tmp_path / "data.csv"), schema=SCHEMA),
        FileSourceConfig(name="d", format="delta", path=str(tmp_path / "delta")),
    ]
    for cfg in sources:
        data = read_source(spark, cfg)
        got = data.well_formed.toPandas().sort_values(["id", "name"], na_position="first").reset_index(drop=True)
        assert (data.rows, data.malformed) == (60, 0), cfg.format
        pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=cfg.format)
        data.df.unpersist()
    pinned = read_source(spark, FileSourceConfig(name="d0", format="delta", path=str(tmp_path / "delta"), version=0))
    assert pinned.rows == 30


def test_malformed_csv_lines_go_to_quarantine_exactly(spark: SparkSession, tmp_path: Path) -> None:
    good = [f"{i},n{i},{i}.5,AB{i % 10},2024-01-0{1 + i % 9}T00:00:00" for i in range(40)]
    bad = [
        "41,short-line",
        "x42,n,1.0,AB1,2024-01-01T00:00:00",
        "43,n,not-a-number,AB1,2024-01-01T00:00:00",
        "44,n,1.0,AB1,2024-01-01T00:00:00,extra",
        '45,"unclosed,1.0,AB1,2024-01-01T00:00:00',
    ]
    lines = good[:10] + bad[:2] + good[10:30] + bad[2:] + good[30:]
    (tmp_path / "in.csv").write_text("id,name,amount,code,seen\n" + "\n".join(lines) + "\n")
    source = read_source(spark, FileSourceConfig(name="in", format="csv", path=str(tmp_path / "in.csv"), schema=SCHEMA))
    checks = [CheckConfig(name="id_complete", kind="completeness", columns=["id"], threshold=1.0)]
    quality = QualityConfig(quarantine_path=str(tmp_path / "quarantine"), max_malformed_share=0.2)  # 5 of 45
    validated = validate(source, checks, quality, run_id="r1", as_of=AS_OF)
    lines_check = {c.name: c for c in validated.report.checks}["in_malformed_lines"]
    assert lines_check.status == "passed" and lines_check.metric == pytest.approx(5 / 45)
    commit = write_quarantine([validated], quality, {"run_id": "r1", "job": "test"}, "r1")
    quarantined = spark.read.format("delta").load(commit.path).toPandas()
    assert sorted(quarantined["record"]) == sorted(bad)
    assert all(list(f) == ["malformed_record"] for f in quarantined["failed_checks"])
    assert set(quarantined["run_id"]) == {"r1"}
    assert validated.passed_rows == validated.passed.count() == len(good)
    assert validated.report.malformed == {"in": len(bad)} and validated.report.quarantined == {"in": len(bad)}
    assert validated.report.passed  # checks ran on the well-formed rows only


def test_nulls_above_the_threshold_quarantine_exactly_the_failing_rows(spark: SparkSession, tmp_path: Path) -> None:
    rows = _rows(1_000)
    source = read_source_of(spark, tmp_path, rows)
    checks = [
        CheckConfig(name="amount_required", kind="completeness", columns=["amount"], threshold=0.95),
        CheckConfig(name="name_required", kind="completeness", columns=["name"], threshold=0.5),
        CheckConfig(
            name="code_allowed",
            kind="allowed_values",
            columns=["code"],
            values=["AB1", "XY2", "AB9"],
            threshold=0.5,
            action="quarantine_data",
        ),
    ]
    quality = QualityConfig(quarantine_path=str(tmp_path / "quarantine"))
    validated = validate(source, checks, quality, run_id="r2", as_of=AS_OF)
    frame = _frame(rows)
    failing = frame[frame["amount"].isna()]  # 1 in 13 null: completeness 0.923 < 0.95; the others pass
    by_name = {c.name: c for c in validated.report.checks}
    assert by_name["amount_required"].status == "failed" and by_name["amount_required"].quarantined == len(failing)
    assert by_name["name_required"].status == by_name["code_allowed"].status == "passed"
    commit = write_quarantine([validated], quality, {"run_id": "r2", "job": "test"}, "r2")
    quarantined = spark.read.format("delta").load(commit.path).toPandas()
    ids = sorted(json.loads(r)["id"] for r in quarantined["record"])
    assert ids == sorted(failing["id"])
    assert all(list(f) == ["amount_required"] for f in quarantined["failed_checks"])
    kept = validated.passed.toPandas()
    assert len(kept) + len(quarantined) == len(rows) == validated.passed_rows + len(quarantined)
    assert (
        kept["amount"].notna().all()
        and kept["name"].isna().sum() == frame[frame["amount"].notna()]["name"].isna().sum()
    )
    again = write_quarantine([validated], quality, {"run_id": "r2", "job": "test"}, "r2")
    assert again.skipped and spark.read.format("delta").load(commit.path).count() == len(failing)


def read_source_of(spark: SparkSession, tmp_path: Path, rows: list[tuple], name: str = "src"):
    spark.createDataFrame(rows, SCHEMA).write.parquet(str(tmp_path / name))
    return read_source(spark, FileSourceConfig(name=name, format="parquet", path=str(tmp_path / name), schema=SCHEMA))


def test_every_check_kind_against_pandas(spark: SparkSession, tmp_path: Path) -> None:
    rows = _rows(500)
    source = read_source_of(spark, tmp_path, rows)
    refs = spark.createDataFrame([("ann",), ("bob",)], "person STRING")
    checks = [
        CheckConfig(name="mean", kind="mean", columns=["amount"], min=0, max=100),
        CheckConfig(name="sd", kind="stddev", columns=["amount"], min=0, max=100),
        CheckConfig(name="q90", kind="quantile", columns=["amount"], quantile=0.9, min=0, max=1000),
        CheckConfig(name="pattern", kind="pattern", columns=["code"], pattern="^[A-Z]{2}[0-9]$", threshold=0.5),
        CheckConfig(name="rule", kind="satisfies", predicate="amount > 30 OR name = 'cy'", threshold=0.1),
        CheckConfig(
            name="ref",
            kind="references",
            columns=["name"],
            reference="people",
            reference_columns=["person"],
            threshold=0.5,
        ),
        CheckConfig(name="nonneg", kind="non_negative", columns=["amount"], threshold=0.5),
        CheckConfig(name="fresh", kind="freshness", columns=["seen"], max_lag="7d"),
        CheckConfig(name="size", kind="size", min=100, max=499),
        CheckConfig(name="unique", kind="unique", columns=["id"], action="warn"),
    ]
    report = verify(source.well_formed, "src", checks, FULL, rows=source.rows, as_of=AS_OF, datasets={"people": refs})
    frame = _frame(rows)
    amount, name = frame["amount"].dropna(), frame["name"].dropna()
    rule = ((frame["amount"] > 30) & frame["amount"].notna()) | (frame["name"] == "cy")
    want = {  # Deequ's semantics: see tests/test_checks.py
        "mean": amount.mean(),
        "sd": amount.std(ddof=0),
        "pattern": frame["code"].str.match(r"^[A-Z]{2}[0-9]$").fillna(False).astype(bool).mean(),
        "rule": rule.mean(),
        "ref": 1 - name[~name.isin(["ann", "bob"])].nunique() / len(name),  # distinct keys missing, over rows
        "nonneg": (frame["amount"].isna() | (frame["amount"] >= 0)).mean(),
        "fresh": (AS_OF - frame["seen"].max()).total_seconds(),
        "size": 500.0,
        "unique": (frame.groupby("id")["id"].transform("size") == 1).mean(),
    }
    got = {c.name: c for c in report.checks}
    for check_name, value in want.items():
        assert got[check_name].metric == pytest.approx(value, rel=1e-9), check_name
    rank = (amount <= got["q90"].metric).mean()  # Deequ's approximate quantile: within 1% of rank
    assert got["q90"].metric in set(amount) and 0.89 <= rank <= 0.91 + 1 / len(amount)
    assert {c.name for c in report.failed} == {"size", "unique"}  # 500 > 499 rows; id 3 repeats
    assert all(c.decided_by == "full" and c.interval is None for c in report.checks)


def test_sample_decides_clear_cases_and_full_data_decides_borderline_ones(spark: SparkSession, tmp_path: Path) -> None:
    rows = _rows(60_000)
    source = read_source_of(spark, tmp_path, rows)
    frame = _frame(rows)
    complete = frame["amount"].notna().mean()  # 12/13 = 0.923
    checks = [
        CheckConfig(name="clear_pass", kind="completeness", columns=["amount"], threshold=0.85),
        CheckConfig(name="clear_fail", kind="completeness", columns=["amount"], threshold=0.97),
        CheckConfig(name="borderline", kind="completeness", columns=["amount"], threshold=round(complete, 3)),
        CheckConfig(name="mean_pass", kind="mean", columns=["amount"], min=45, max=55),
        CheckConfig(name="business_rule", kind="completeness", columns=["amount"], threshold=0.85, layer="business"),
    ]
    quality = QualityConfig(sample_rows=10_000, seed=3)
    sampled = {
        c.name: c for c in verify(source.well_formed, "s", checks, quality, rows=source.rows, as_of=AS_OF).checks
    }
    full = {c.name: c for c in verify(source.well_formed, "s", checks, FULL, rows=source.rows, as_of=AS_OF).checks}
    for check_name in ("clear_pass", "clear_fail", "mean_pass"):
        result = sampled[check_name]
        assert result.decided_by == "sample" and 9_000 < result.sample_size < 11_000, check_name
        assert result.status == full[check_name].status, check_name
    assert sampled["borderline"].decided_by == "full" and "borderline" in sampled["borderline"].detail
    assert sampled["business_rule"].decided_by == "full" and sampled["business_rule"].detail == ""
    assert sampled["borderline"].metric == pytest.approx(complete)
    assert [sampled[n].status for n in ("clear_pass", "clear_fail", "mean_pass")] == ["passed", "failed", "passed"]
    assert "(Bernoulli)" in sampled["clear_pass"].detail  # a few large row groups: sampled by rows


def _sorted_by_amount(path: Path, groups: int, group_rows: int) -> pd.DataFrame:
    """A Parquet file of `groups` row groups, sorted by amount (nulls last), so each group holds alike rows."""
    rng = np.random.default_rng(7)
    n = groups * group_rows
    amount = np.sort(rng.normal(50.0, 10.0, n))
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int32),
            "amount": pd.array(np.where(np.arange(n) >= n - n // 50, np.nan, amount), dtype="Float64"),
            "code": rng.choice(["AB1", "XY2", "bad"], n, p=[0.6, 0.395, 0.005]),
        }
    )
    path.mkdir()
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), path / "part-0.parquet", row_group_size=group_rows
    )
    return frame


def test_a_row_group_sample_reads_only_its_groups_and_agrees_with_full_deequ(
    spark: SparkSession, tmp_path: Path
) -> None:
    """From reading the source to the last verdict on the sample, Spark reads no byte of the table: the rows
    come from the footers and the sample from 50 of its 300 row groups, read with pyarrow. Deequ on the full
    data then reads it through Spark, and agrees."""
    frame = _sorted_by_amount(tmp_path / "sorted", groups=300, group_rows=1_000)
    cfg = FileSourceConfig(
        name="sorted", format="parquet", path=str(tmp_path / "sorted"), schema="id INT, amount DOUBLE, code STRING"
    )
    spark_read = spark_input_bytes(spark)
    assert isinstance(spark_read, int)
    source = read_source(spark, cfg, cached=False)
    assert (source.row_groups.count, source.row_groups.rows) == (300, len(frame))
    checks = [
        CheckConfig(name="complete", kind="completeness", columns=["amount"], threshold=0.9),
        CheckConfig(name="codes", kind="allowed_values", columns=["code"], values=["AB1", "XY2"], threshold=0.9),
        CheckConfig(name="mean", kind="mean", columns=["amount"], min=45, max=55),
        CheckConfig(name="median_low", kind="quantile", columns=["amount"], quantile=0.5, min=0, max=40),
        CheckConfig(name="spread", kind="stddev", columns=["amount"], min=5, max=15),
    ]
    quality = QualityConfig(sample_rows=10_000)
    sample = draw_sample(
        source.well_formed,
        ["amount", "code"],
        rows=source.rows,
        sample_rows=10_000,
        min_groups=quality.sample_row_groups,
        seed=quality.seed,
        row_groups=source.row_groups,
    )
    assert sample.df.inputFiles() == [] and sample.clusters == 50 and 9_000 < sample.rows < 11_000
    stored = sum(f.stat().st_size for f in (tmp_path / "sorted").iterdir())
    assert 0 < sample.bytes_read < stored * 60 / 300  # 50 of 300 groups, two of three columns
    report = validate(source, checks, quality, run_id="r", as_of=AS_OF)
    assert spark_input_bytes(spark) == spark_read  # the read, the sample and every verdict on it: no file by Spark
    sampled = {c.name: c for c in report.report.checks}
    full = {c.name: c for c in verify(source.well_formed, "s", checks, FULL, rows=source.rows, as_of=AS_OF).checks}
    assert spark_input_bytes(spark) - spark_read > stored / 2  # the full pass does read through Spark
    assert {n for n, c in sampled.items() if c.decided_by == "sample"} == set(sampled)
    assert all(sampled[n].status == full[n].status for n in sampled), (sampled, full)
    assert all(c.detail.startswith(f"{c.sample_size:,} rows from 50 of 300 row groups") for c in sampled.values())
    assert [sampled[n].status for n in sampled] == ["passed", "passed", "passed", "failed", "passed"]


def _validate_sorted(tmp_path: Path, *overrides: str) -> FeaturelakeConfig:
    """`job=validate` of the sorted Parquet table with three checks a 10,000-row sample decides."""
    checks = (
        "[{name: complete, kind: completeness, columns: [amount], threshold: 0.9},"
        "{name: codes, kind: allowed_values, columns: [code], values: [AB1, XY2], threshold: 0.9},"
        "{name: mean, kind: mean, columns: [amount], min: 45, max: 55}]"
    )
    return job_config(
        tmp_path,
        "job=validate",
        f"validate.source.path={tmp_path / 'sorted'}",
        "validate.source.name=sorted",
        "validate.source.format=parquet",
        "validate.source.schema='id INT, amount DOUBLE, code STRING'",
        "validate.source.options={}",
        "validate.output_path=''",
        f"validate.checks={checks}",
        "quality.sample_rows=10000",
        *overrides,
    )


def test_job_validate_on_parquet_reads_only_the_sampled_row_groups_and_spark_reads_no_source_file(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The whole job, measured from before it starts to after it ends: rows from the footers, the checks from
    50 of 300 row groups read with pyarrow, and not one byte read by Spark in the whole run; with sampling
    off, one full Deequ pass reads the checked columns through Spark (so the measure does see Spark's reads)."""
    _sorted_by_amount(tmp_path / "sorted", groups=300, group_rows=1_000)
    stored = sum(f.stat().st_size for f in (tmp_path / "sorted").iterdir())
    before = spark_input_bytes(spark)
    assert isinstance(before, int)
    sampled = execute(VALIDATE, _validate_sorted(tmp_path), spark)
    assert spark_input_bytes(spark) == before  # the whole run, every stage and what lies between them
    report = json.loads(sampled["published"].json_path.read_text())
    assert report["rows"] == {"sorted": 300_000}
    assert {c["decided_by"] for c in report["checks"]} == {"sample"}
    assert all(c["detail"].startswith(f"{c['sample_size']:,} rows from 50 of 300 row groups") for c in report["checks"])
    assert 0 < report["sample_bytes"]["sorted"] < stored * 60 / 300  # 50 of 300 groups, two of three columns
    assert sum(s.bytes_read or 0 for s in sampled.stages.runs) == 0
    before = spark_input_bytes(spark)
    full = execute(VALIDATE, _validate_sorted(tmp_path, "quality.sample_rows=10000000"), spark)
    assert {c["decided_by"] for c in json.loads(full["published"].json_path.read_text())["checks"]} == {"full"}
    assert spark_input_bytes(spark) - before > stored / 2
    assert sum(s.bytes_read for s in full.stages.runs if s.name == "verify") > stored / 2


def test_job_validate_on_an_empty_table_fails_in_one_line_unless_the_source_allows_it(
    spark: SparkSession, tmp_path: Path
) -> None:
    (tmp_path / "sorted").mkdir()
    schema = pa.schema([("id", pa.int32()), ("amount", pa.float64()), ("code", pa.string())])
    pq.write_table(schema.empty_table(), tmp_path / "sorted" / "part-0.parquet")
    with pytest.raises(SourceError, match=r"^source sorted has no rows \(parquet at .*sorted\)$"):
        execute(VALIDATE, _validate_sorted(tmp_path, f"validate.output_path={tmp_path / 'out'}"), spark)
    assert not (tmp_path / "out").exists() and not (tmp_path / "reports").exists()
    allowed = _validate_sorted(tmp_path, "validate.source.allow_empty=true")
    report = json.loads(execute(VALIDATE, allowed, spark)["published"].json_path.read_text())
    assert report["rows"] == {"sorted": 0} and report["passed"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not text (byte 0x89 at offset 0 is not utf-8)"),
        (
            b"tailnum,year,type,manufacturer,model,engines,seats,speed\nN1,2001,a,b,c,2,100,\n",
            "the header has 8 columns, the schema 9 (missing: engine)",
        ),
    ],
)
def test_an_unreadable_csv_fails_in_one_line_naming_the_source_the_file_and_the_reason(
    spark: SparkSession, tmp_path: Path, content: bytes, problem: str
) -> None:
    (tmp_path / "planes.csv").write_bytes(content)
    cfg = job_config(tmp_path, "job=validate", "validate=planes", f"validate.source.path={tmp_path / 'planes.csv'}")
    with pytest.raises(SourceError) as err:
        execute(VALIDATE, cfg, spark)
    assert str(err.value) == f"source planes: planes.csv: {problem}"
    assert not Path(cfg.validate.output_path).exists() and not (tmp_path / "reports").exists()


def test_row_groups_of_a_delta_version_and_none_behind_deletion_vectors(spark: SparkSession, tmp_path: Path) -> None:
    df = spark.range(4_000).withColumn("amount", F.col("id") * 0.5)
    df.repartition(8).write.format("delta").save(str(tmp_path / "plain"))
    groups = delta_row_groups(str(tmp_path / "plain"))
    assert (groups.count, groups.rows, groups.columns) == (8, 4_000, frozenset({"id", "amount"}))
    df.coalesce(1).write.format("delta").option("delta.enableDeletionVectors", "true").save(str(tmp_path / "with_dv"))
    spark.sql(f"DELETE FROM delta.`{tmp_path / 'with_dv'}` WHERE id < 10")
    assert delta_row_groups(str(tmp_path / "with_dv")) is None


def validate_parquet(tmp_path: Path, checks: str) -> FeaturelakeConfig:
    """`job=validate` of the parquet folder `tmp_path/src` with the given checks (YAML list)."""
    return job_config(
        tmp_path,
        "job=validate",
        f"validate.source.path={tmp_path / 'src'}",
        "validate.source.format=parquet",
        f"validate.source.schema='{SCHEMA}'",
        "validate.source.options={}",
        f"validate.output_path={tmp_path / 'delta' / 'validated'}",
        f"validate.checks={checks}",
    )


def test_a_missing_column_halts_with_nothing_written(spark: SparkSession, tmp_path: Path) -> None:
    spark.createDataFrame(_rows(50), SCHEMA).drop("code").write.parquet(str(tmp_path / "src"))
    cfg = validate_parquet(
        tmp_path,
        "[{name: cols, kind: schema, columns: [id, name, amount, code]},"
        "{name: amount_complete, kind: completeness, columns: [amount]}]",
    )
    with pytest.raises(ValidationFailed, match="1 blocking check\\(s\\) failed: cols; nothing was written"):
        execute(VALIDATE, cfg, spark)
    assert not (tmp_path / "delta" / "validated").exists() and not (tmp_path / "delta" / "quarantine").exists()
    report = json.loads(next((tmp_path / "reports").glob("*.json")).read_text())
    assert report["outcome"] == "halt"
    assert [(c["name"], c["status"], c["detail"]) for c in report["checks"]] == [
        ("cols", "failed", "missing column code"),
        ("amount_complete", "skipped", "a schema check halted"),
    ]


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        (
            "{name: name_mean, kind: mean, columns: [name], min: 0, max: 1}",
            "name_mean: Deequ cannot evaluate it: column name is a string; mean needs a number",
        ),
        (
            "{name: amount_pattern, kind: pattern, columns: [amount], pattern: '^1'}",
            "amount_pattern: Deequ cannot evaluate it: column amount is a double; pattern needs a string",
        ),
        ("{name: gone, kind: completeness, columns: [nope]}", "gone: Deequ cannot evaluate it: "),
    ],
)
def test_a_check_deequ_cannot_evaluate_fails_in_one_line_before_any_write(
    spark: SparkSession, tmp_path: Path, check: str, problem: str
) -> None:
    """A mean of strings, a pattern on numbers, a missing column: one line naming the check, nothing written."""
    spark.createDataFrame(_rows(50), SCHEMA).write.parquet(str(tmp_path / "src"))
    cfg = validate_parquet(tmp_path, f"[{{name: amount_complete, kind: completeness, columns: [amount]}}, {check}]")
    with pytest.raises(CheckError) as err:
        execute(VALIDATE, cfg, spark)
    assert str(err.value).startswith(f"check {problem}") and "\n" not in str(err.value) and "$@" not in str(err.value)
    assert not (tmp_path / "delta").exists() and not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        (CheckConfig(name="name_mean", kind="mean", columns=["name"], min=0, max=1), "column name is a string; mean"),
        (
            CheckConfig(name="amount_pattern", kind="pattern", columns=["amount"], pattern="^1"),
            "column amount is a double; pattern needs a string",
        ),
        (CheckConfig(name="gone", kind="completeness", columns=["nope"]), "does not include column nope"),
    ],
)
def test_a_sampled_check_deequ_cannot_evaluate_fails_as_in_a_deequ_run(
    spark: SparkSession, check: CheckConfig, problem: str
) -> None:
    """The sample is measured without a Deequ run; Deequ's preconditions still judge the check first."""
    df = spark.createDataFrame(_rows(500), SCHEMA)
    with pytest.raises(CheckError) as err:
        verify(df, "s", [check], QualityConfig(sample_rows=100), rows=500, as_of=AS_OF)
    message = str(err.value)
    assert message.startswith(f"check {check.name}: Deequ cannot evaluate it: ") and problem in message, message


def test_suggested_checks_are_accepted_by_validate(spark: SparkSession, tmp_path: Path) -> None:
    suggested = tmp_path / "suggested.yaml"
    cfg = job_config(tmp_path, "job=suggest_checks", f"suggest.output={suggested}")
    result = execute(SUGGEST_CHECKS, cfg, spark)
    checks = load_checks_file(str(suggested))
    assert [c.name for c in checks] == [c["name"] for c in result["suggested"].checks]
    kinds = {(c.kind, tuple(c.columns)) for c in checks}
    assert ("unique", ("tailnum",)) in kinds and ("allowed_values", ("engines",)) in kinds
    run_cfg = job_config(tmp_path, "job=validate", f"validate.checks_file={suggested}", "validate.output_path=")
    validated = execute(VALIDATE, run_cfg, spark)
    report = validated["published"].report
    assert report.passed and not report.failed and len(report.checks) == len(checks)
    run = MlflowClient(run_cfg.tracking.uri).get_run(validated.run_id)
    assert run.data.metrics["checks_failed"] == 0


def test_drift_and_leakage_against_a_reference(spark: SparkSession) -> None:
    rng = random.Random(9)
    before = [(rng.gauss(0, 1), rng.choice("abc"), rng.random() < 0.3) for _ in range(4_000)]
    after = [(rng.gauss(1.0, 1), rng.choice("aab"), rng.random() < 0.3) for _ in range(4_000)]
    after = [(x, c, int(x > 1.0)) for x, c, _ in after]  # x alone decides the label
    schema = "x DOUBLE, c STRING, label INT"
    previous = spark.createDataFrame([(x, c, int(y)) for x, c, y in before], schema)
    current = spark.createDataFrame(after, schema)
    cfg = DriftConfig(categorical=["c"], max_feature_auc=0.95)  # decile bins blur a cut inside a bin
    same = {d.feature: d for d in feature_drift(previous, previous, ["x", "c"], cfg)}
    moved = {d.feature: d for d in feature_drift(current, previous, ["x", "c"], cfg, label="label")}
    assert not same["x"].drifted and same["x"].psi == pytest.approx(0, abs=1e-9)
    assert moved["x"].drifted and moved["c"].drifted and moved["x"].leakage and moved["x"].auc > 0.95
    want_linf = max(
        abs(sum(c == k for _, c, _ in after) / 4_000 - sum(c == k for _, c, _ in before) / 4_000) for k in "abc"
    )
    assert moved["c"].linf == pytest.approx(want_linf)
    timed = current.withColumn("t", F.lit(datetime(2024, 1, 2))).withColumn(
        "x_known", F.when(F.col("x") > 3, F.lit(datetime(2024, 1, 3))).otherwise(F.lit(datetime(2024, 1, 1)))
    )
    late_cfg = DriftConfig(categorical=["c"], label_time="t", time_columns={"x": "x_known", "c": "t"})
    late = {d.feature: d for d in feature_drift(timed, previous, ["x", "c"], late_cfg, label="label")}
    assert late["x"].late_rows == sum(x > 3 for x, _, _ in after) > 0 and late["x"].leakage
    assert late["c"].late_rows == 0 and not late["c"].leakage
    p, q = {0: 0.5, 1: 0.5}, {0: 0.9, 1: 0.1}
    assert psi(p, q) == pytest.approx((0.5 - 0.9) * math.log(0.5 / 0.9) + (0.5 - 0.1) * math.log(0.5 / 0.1))
    assert js_distance(p, p) == 0 and 0 < js_distance(p, q) < 1


def test_anomalies_compare_with_the_previous_run(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "metrics")
    check = CheckConfig(name="c_complete", kind="completeness", columns=["c"], threshold=0.1)
    first = verify(spark.createDataFrame([("a",)] * 100, "c STRING"), "d", [check], FULL, rows=100, as_of=AS_OF)
    metrics_frame(spark, metric_rows(first, "run1", datetime(2024, 1, 1))).write.format("delta").save(path)
    halved = spark.createDataFrame([("a",)] * 10 + [(None,)] * 30, "c STRING")
    second = verify(halved, "d", [check], FULL, rows=40, as_of=AS_OF)
    found = anomalies(
        spark, metric_rows(second, "run2", datetime(2024, 1, 2)), metric_history(spark, path, "run2"), AnomalyConfig()
    )
    assert [(a.metric, a.previous, a.current) for a in found] == [
        ("rows", 100.0, 40.0),
        ("c_complete", 1.0, 0.25),
    ]


def test_times_after_the_as_of_time_are_quarantined_exactly(spark: SparkSession, tmp_path: Path) -> None:
    """`not_in_future`: a time later than the run's as-of time cannot have been observed; such rows go to
    quarantine (the kind's default action); its share, over all rows with nulls complying, equals pandas'."""
    rows = _rows(500)
    source = read_source_of(spark, tmp_path, rows)
    as_of = datetime(2024, 1, 4)
    check = CheckConfig(name="seen_not_in_future", kind="not_in_future", columns=["seen"])
    assert check.action == "quarantine_data" and check.layer == "business"
    validated = validate(source, [check], QualityConfig(), run_id="r", as_of=as_of)
    seen = _frame(rows)["seen"]
    future = int((seen > as_of).sum())
    (result,) = validated.report.checks
    assert 0 < future < len(rows)
    assert result.status == "failed"
    assert result.metric == pytest.approx((seen.isna() | (seen <= as_of)).mean(), rel=1e-12)
    assert result.quarantined == future == validated.report.quarantined["src"]
    assert validated.passed_rows == len(rows) - future  # a null time is not in the future


def test_anomaly_strategies_are_deequs_and_selectable(spark: SparkSession) -> None:
    """The newest row count against its history (oldest first), judged by each Deequ strategy."""
    current = [("run4", datetime(2024, 1, 4), "d", "rows", "rows", 130.0)]
    history = {("d", "rows"): [100.0, 104.0, 98.0]}

    def found(**anomaly: object) -> list[str]:
        return [a.strategy for a in anomalies(spark, current, history, AnomalyConfig(**anomaly))]

    assert found() == []  # 130 / 98 is within the default [0.5, 2]
    assert found(strategy="relative_rate_of_change", lower=0.9, upper=1.1) == ["relative_rate_of_change"]
    assert found(strategy="absolute_change", lower=-10, upper=10) == ["absolute_change"]  # +32
    assert found(strategy="absolute_change", lower=-40, upper=40) == []
    # online: the running mean and deviation take in the newest point; batch: only the history before it
    assert found(strategy="online_normal", lower=1, upper=1) == ["online_normal"]
    assert found(strategy="online_normal", lower=3, upper=3) == []
    assert found(strategy="batch_normal", lower=3, upper=3) == ["batch_normal"]
    assert found(strategy="simple_thresholds", lower=0, upper=120) == ["simple_thresholds"]
    with pytest.raises(ConfigError, match=r"^quality.anomaly.strategy: 'nope' is not one of relative_rate_of_change"):
        AnomalyConfig(strategy="nope")
