"""Benchmark: featurelake's sort-based as-of join vs the join-then-rank plan of Feast's Spark offline store.

Both runners read the same pinned Delta versions and write Parquet; their outputs are compared row by
row (keyed by the spine's row id). Two cases:

- large: a 5M-row spine against one 20M-row feature table (5 features, TTL 90 days);
- wide:  a 17,000-row spine against 10 feature tables of 100 features each (1,000 features).

Each case runs in a Spark session of its own: the large one with 14g of driver memory, the wide one
with 3g, so its peak memory shows what a thousand features need.

Join-then-rank follows Feast's point-in-time template: filter each table to the spine's time range,
join it to the spine on the keys with `event <= t AND event >= t - ttl`, keep the newest
(event, created) per spine row with ROW_NUMBER, join the winners back for their values, and left-join
the result to the spine. Results go to bench/asof.{json,md}.

    .venv/bin/python scripts/bench_asof.py                       # both cases at the stated sizes
    .venv/bin/python scripts/bench_asof.py --spine 500k --features 2M --wide-rows 50k   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyspark.sql import DataFrame, SparkSession, Window  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from engine.config.schema import SparkConfig, TrainingSetConfig  # noqa: E402
from engine.config.training import FeatureTableConfig, SpineConfig  # noqa: E402
from engine.runtime.session import build_session  # noqa: E402
from engine.training.build import pin_inputs, training_set  # noqa: E402
from scripts.benchlib import PeakRss, jvm_pid  # noqa: E402

DAY_US = 86_400 * 1_000_000
START_US = 1_704_067_200 * 1_000_000  # 2024-01-01 UTC
SPAN_DAYS = 365


@dataclass
class Result:
    case: str
    runner: str
    spine_rows: int
    feature_rows: int
    features: int
    driver_memory: str
    seconds: float
    spine_rows_per_second: float
    peak_rss_mib: float


def _size(text: str) -> int:
    text = text.lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def _write_parquet(path: Path, columns: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=1_000_000)


def _timestamps(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def generate_features(path: Path, rows: int, entities: int, width: int, seed: int) -> None:
    """Feature rows: uniform entities and event times over a year, created up to an hour later, 5% nulls."""
    rng = np.random.default_rng(seed)
    event = START_US + rng.integers(0, SPAN_DAYS * DAY_US, rows)
    columns = {
        "entity": rng.integers(0, entities, rows),
        "event_ts": _timestamps(event),
        "created_ts": _timestamps(event + rng.integers(0, 3_600_000_000, rows)),
    }
    for j in range(width):
        columns[f"f{j}"] = pa.array(rng.normal(0, 1, rows).round(4), mask=rng.random(rows) < 0.05)
    _write_parquet(path, columns)


def generate_spine(path: Path, rows: int, entities: int, seed: int) -> None:
    """Spine rows: uniform times over the year; 2% of entities have no feature rows at all."""
    rng = np.random.default_rng(seed)
    _write_parquet(
        path,
        {
            "row_id": np.arange(rows, dtype=np.int64),
            "entity": rng.integers(0, int(entities * 1.02), rows),
            "t": _timestamps(START_US + rng.integers(0, SPAN_DAYS * DAY_US, rows)),
            "label": rng.integers(0, 2, rows).astype(np.int32),
        },
    )


def to_delta(spark: SparkSession, parquet: Path, delta: Path) -> None:
    if not (delta / "_delta_log").is_dir():
        spark.read.parquet(str(parquet)).write.format("delta").save(str(delta))


def engine(spark: SparkSession, spine: Path, tables: list[Path], width: int, ttl: str) -> DataFrame:
    """featurelake: pinned versions, one sort-based as-of join per table."""
    cfg = TrainingSetConfig(
        spine=SpineConfig(path=str(spine), version="0", timestamp="t", label="label", columns=["row_id"]),
        feature_tables=[
            FeatureTableConfig(
                name=f"t{i}",
                path=str(path),
                version="0",
                keys=["entity"],
                timestamp="event_ts",
                created_column="created_ts",
                features=[f"f{j}" for j in range(width)],
                ttl=ttl,
                prefix=f"t{i}_",
            )
            for i, path in enumerate(tables)
        ],
    )
    frame, _, _ = training_set(spark, cfg, pin_inputs(spark, cfg))
    return frame


def join_then_rank(spark: SparkSession, spine: Path, tables: list[Path], width: int, ttl_days: int) -> DataFrame:
    """Feast's Spark offline store plan: range join on the keys, rank per spine row, join back."""
    entity = spark.read.format("delta").option("versionAsOf", 0).load(str(spine))
    bounds = entity.agg(F.min("t").alias("lo"), F.max("t").alias("hi")).first()
    ttl = F.expr(f"INTERVAL {ttl_days} DAYS")
    result = entity.select("entity", "t", "label", "row_id")
    for i, path in enumerate(tables):
        features = [f"f{j}" for j in range(width)]
        sub = (
            spark.read.format("delta")
            .option("versionAsOf", 0)
            .load(str(path))
            .where((F.col("event_ts") <= F.lit(bounds["hi"])) & (F.col("event_ts") >= F.lit(bounds["lo"]) - ttl))
        )
        keys = entity.select("row_id", F.col("entity").alias("e"), F.col("t").alias("et"))
        base = sub.join(
            keys,
            (sub["entity"] == keys["e"]) & (sub["event_ts"] <= keys["et"]) & (sub["event_ts"] >= keys["et"] - ttl),
        )
        newest = Window.partitionBy("row_id").orderBy(F.desc("event_ts"), F.desc("created_ts"))
        latest = (
            base.groupBy("row_id", "event_ts")
            .agg(F.max("created_ts").alias("created_ts"))
            .withColumn("rank", F.row_number().over(newest))
            .where("rank = 1")
            .drop("rank")
        )
        cleaned = base.join(latest, ["row_id", "event_ts", "created_ts"]).select(
            "row_id", *(F.col(f).alias(f"t{i}_{f}") for f in features)
        )
        result = result.join(cleaned, "row_id", "left")
    return result


def warm_up(spark: SparkSession, work: Path, width: int, count: int) -> None:
    """Run both runners once on tiny data of the case's shape, so neither pays the JVM's first-use costs
    (class loading, Delta log readers, code generation and compilation of its rows' paths) inside a timed run."""
    spine = work / "spine"
    if not spine.exists():
        generate_spine(spine.with_suffix(".parquet"), 10_000, 1_000, seed=1)
    to_delta(spark, spine.with_suffix(".parquet"), spine)
    tables = [work / f"features_{width}_{i}" for i in range(count)]
    for i, table in enumerate(tables):
        if not table.exists():
            generate_features(table.with_suffix(".parquet"), 40_000, 1_000, width, seed=2 + i)
        to_delta(spark, table.with_suffix(".parquet"), table)
    engine(spark, spine, tables, width, "90d").write.format("noop").mode("overwrite").save()
    join_then_rank(spark, spine, tables, width, 90).write.format("noop").mode("overwrite").save()


def differing_rows(left: Path, right: Path) -> int:
    """Rows whose values differ between two outputs keyed by row_id (nulls equal only to nulls)."""
    a = pl.read_parquet(left / "*.parquet")
    b = pl.read_parquet(right / "*.parquet")
    if a.height != b.height:
        return abs(a.height - b.height)
    columns = [c for c in a.columns if c != "row_id"]
    joined = a.join(b.select("row_id", *columns), on="row_id", how="full", suffix="_r", coalesce=True)
    bad = pl.lit(False)
    for c in columns:
        bad = bad | ~pl.col(c).eq_missing(pl.col(f"{c}_r"))
    return int(joined.select(bad.sum()).item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spine", default="5M")
    parser.add_argument("--features", default="20M")
    parser.add_argument("--entities", default="200k")
    parser.add_argument("--ttl-days", type=int, default=90)
    parser.add_argument("--wide-spine", default="17000")
    parser.add_argument("--wide-rows", default="500k", help="rows per wide table")
    parser.add_argument("--wide-entities", default="50k")
    parser.add_argument("--cases", default="large,wide")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--driver-memory", default="14g", help="driver memory for the large case")
    parser.add_argument("--wide-driver-memory", default="3g", help="driver memory for the wide case")
    parser.add_argument("--work", default=str(REPO / ".cache" / "bench_asof"))
    parser.add_argument("--out", default=str(REPO / "bench"))
    parser.add_argument("--case-result", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.case_result:
        run_cases(args)
        return
    work = Path(args.work)

    results: list[Result] = []
    checks: list[dict] = []
    setup: dict[str, float] = {}
    startup: dict[str, float] = {}
    memory = {"large": args.driver_memory, "wide": args.wide_driver_memory}
    for case in args.cases.split(","):
        if case == "large":
            spine_rows, rows, entities, width, count = (
                _size(args.spine),
                _size(args.features),
                _size(args.entities),
                5,
                1,
            )
        else:
            spine_rows, rows, entities, width, count = (
                _size(args.wide_spine),
                _size(args.wide_rows),
                _size(args.wide_entities),
                100,
                10,
            )
        # Each case in a session of its own, with its own driver memory: both runners get the same.
        started = time.perf_counter()
        spark = build_session(
            SparkConfig(driver_memory=memory[case], shuffle_partitions=args.partitions), work / "logs"
        )
        startup[case] = round(time.perf_counter() - started, 1)
        jvm = PeakRss(jvm_pid())
        print(f"{case}: spark start-up {startup[case]} s (excluded from every figure below)", flush=True)
        try:
            warm_up(spark, work / "warm_up", width, min(count, 2))
            began = time.perf_counter()
            tag = f"{case}_{spine_rows}_{rows}_{entities}"
            spine = work / tag / "spine"
            if not spine.exists():
                generate_spine(spine.with_suffix(".parquet"), spine_rows, entities, seed=1)
            to_delta(spark, spine.with_suffix(".parquet"), spine)
            tables = []
            for i in range(count):
                table = work / tag / f"features_{i}"
                if not table.exists():
                    generate_features(table.with_suffix(".parquet"), rows, entities, width, seed=100 + i)
                to_delta(spark, table.with_suffix(".parquet"), table)
                tables.append(table)
            setup[case] = round(time.perf_counter() - began, 1)
            print(f"{case}: data ready in {setup[case]} s", flush=True)
            outputs = {}
            for runner in ("engine", "join_then_rank"):
                target = work / "out" / f"{case}_{runner}"
                shutil.rmtree(target, ignore_errors=True)
                # Delta caches each table's log state per session: clear it, so each runner loads the
                # logs itself rather than the second one timing on the first one's cache.
                spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
                jvm.reset()
                began = time.perf_counter()
                if runner == "engine":
                    frame = engine(spark, spine, tables, width, f"{args.ttl_days}d")
                else:
                    frame = join_then_rank(spark, spine, tables, width, args.ttl_days)
                frame.write.parquet(str(target))
                seconds = time.perf_counter() - began
                outputs[runner] = target
                result = Result(
                    case,
                    runner,
                    spine_rows,
                    rows * count,
                    width * count,
                    memory[case],
                    round(seconds, 2),
                    round(spine_rows / seconds),
                    round(jvm.read()),
                )
                results.append(result)
                print(json.dumps(asdict(result)), flush=True)
        finally:
            spark.stop()
        checks.append({"case": case, "differing_rows": differing_rows(outputs["engine"], outputs["join_then_rank"])})
        print(json.dumps(checks[-1]), flush=True)
    Path(args.case_result).write_text(
        json.dumps({"results": [asdict(r) for r in results], "checks": checks, "setup": setup, "startup": startup})
    )


def run_cases(args: argparse.Namespace) -> None:
    """Each case in a process of its own, since a driver JVM's memory is fixed when it starts; one report."""
    results, checks, setup, startup = [], [], {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for case in args.cases.split(","):
            out = Path(scratch) / f"{case}.json"
            argv = [a for a in sys.argv[1:]]
            subprocess.run([sys.executable, __file__, *argv, "--cases", case, "--case-result", str(out)], check=True)
            part = json.loads(out.read_text())
            results += [Result(**r) for r in part["results"]]
            checks += part["checks"]
            setup |= part["setup"]
            startup |= part["startup"]
    write_report(Path(args.out), results, checks, setup, startup, args)


def write_report(out: Path, results: list[Result], checks: list[dict], setup: dict, startup: dict, args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "spark_startup_seconds": startup,
        "data_setup_seconds": setup,
        "ttl_days": args.ttl_days,
        "shuffle_partitions": args.partitions,
    }
    (out / "asof.json").write_text(
        json.dumps({**meta, "results": [asdict(r) for r in results], "equality": checks}, indent=2) + "\n"
    )
    by = {(r.case, r.runner): r for r in results}
    equal = {c["case"]: c["differing_rows"] for c in checks}
    lines = [
        "# Point-in-time join benchmark",
        "",
        f"`scripts/bench_asof.py` on {meta['machine']}; local[2], {args.partitions} shuffle partitions. "
        f"TTL {args.ttl_days} days; event times uniform over a year.",
        "Each case runs in a Spark session of its own, with the driver memory shown; both runners share it. "
        "Both read the same Delta versions and write Parquet; Delta's cache of table logs is cleared "
        "before each, so each pays its own log loading and scan planning. Peak RSS is the driver JVM's (local "
        "mode: driver and executors are one process). The ratio is join-then-rank's time over the engine's "
        "(above 1: the engine is faster).",
        "",
        "Spark start-up (excluded from all times): "
        + ", ".join(f"{case} {seconds:.1f} s" for case, seconds in startup.items()),
        "",
        "| case | runner | spine rows | feature rows | features | driver memory | seconds | spine rows/s "
        "| peak RSS MiB | join-then-rank / engine | differing rows |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = by[(r.case, "join_then_rank")].seconds / by[(r.case, "engine")].seconds
        lines.append(
            f"| {r.case} | {r.runner} | {r.spine_rows:,} | {r.feature_rows:,} | {r.features:,} | {r.driver_memory} "
            f"| {r.seconds:.1f} | "
            f"{r.spine_rows_per_second:,} | {r.peak_rss_mib:,.0f} | {ratio:.2f}x | {equal[r.case]} |"
        )
    (out / "asof.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
