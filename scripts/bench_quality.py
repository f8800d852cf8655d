"""Benchmark: sampled verification vs a full Deequ VerificationSuite, the same 10 checks at 10M and 100M rows.

Both runners verify the same checks on the same Parquet data in one process. `sampled`: the default
sample (10,000 rows from at least 50 whole row groups, drawn by the footers' row counts and read
alone) at 95% confidence with the engine's intervals, and the borderline checks in one full-data
Deequ run. `full`: sampling off, so all 10 checks run in one Deequ VerificationSuite over every row.
The data is written in row groups of 32,768 rows. The script reports each runner's time, rows/s and
the driver JVM's peak RSS, and compares every verdict. Results go to bench/quality.{json,md}.

    .venv/bin/python scripts/bench_quality.py                      # 10M and 100M rows
    .venv/bin/python scripts/bench_quality.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config.quality import CheckConfig, QualityConfig  # noqa: E402
from engine.config.schema import SparkConfig  # noqa: E402
from engine.quality.deequ import stop_callbacks  # noqa: E402
from engine.quality.verify import verify  # noqa: E402
from engine.runtime.row_groups import RowGroups, parquet_row_groups  # noqa: E402
from engine.runtime.session import build_session  # noqa: E402
from scripts.benchlib import PeakRss, jvm_pid  # noqa: E402

CHECKS = [
    CheckConfig(name="amount_complete_95", kind="completeness", columns=["amount"], threshold=0.95),
    CheckConfig(name="amount_complete_99", kind="completeness", columns=["amount"], threshold=0.99),
    CheckConfig(
        name="code_allowed", kind="allowed_values", columns=["code"], values=["A1", "B2", "C3", "D4"], threshold=0.99
    ),
    CheckConfig(name="code_pattern", kind="pattern", columns=["code"], pattern="^[A-D][0-9]$", threshold=0.98),
    CheckConfig(name="qty_range", kind="range", columns=["qty"], min=0, max=1000, threshold=0.999),
    CheckConfig(name="qty_non_negative", kind="non_negative", columns=["qty"]),
    CheckConfig(name="amount_mean", kind="mean", columns=["amount"], min=40, max=60),
    CheckConfig(name="amount_stddev", kind="stddev", columns=["amount"], min=5, max=15),
    CheckConfig(name="amount_median", kind="quantile", columns=["amount"], quantile=0.5, min=45, max=55),
    CheckConfig(name="amount_p99_low", kind="quantile", columns=["amount"], quantile=0.99, min=0, max=60),
]


# The same check with its bound just above the true share (0.99498), inside the sample's interval.
BORDERLINE = CheckConfig(
    name="code_pattern_borderline", kind="pattern", columns=["code"], pattern="^[A-D][0-9]$", threshold=0.995
)


REPEATS = 3
GROUP_ROWS = 32_768


def generate(path: Path, rows: int) -> None:
    """3% null amounts, 0.5% off-list codes, 0.2% negative quantities; row groups of GROUP_ROWS rows."""
    if path.exists():
        return
    rng = np.random.default_rng(1)
    path.mkdir(parents=True)
    chunk = 2_000_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        amount = rng.normal(50, 10, n)
        codes = np.array(["A1", "B2", "C3", "D4", "zz9"])[rng.choice(5, n, p=[0.25, 0.25, 0.25, 0.245, 0.005])]
        qty = rng.integers(0, 500, n)
        qty[rng.random(n) < 0.002] = -1
        table = pa.table(
            {
                "id": pa.array(np.arange(start, start + n)),
                "amount": pa.array(amount, mask=rng.random(n) < 0.03),
                "code": pa.array(codes),
                "qty": pa.array(qty),
            }
        )
        pq.write_table(table, path / f"part-{start // chunk:03d}.parquet", row_group_size=GROUP_ROWS)


def bench(spark, peak: PeakRss, data: Path, with_borderline: bool) -> dict:
    """Both runners on one dataset: medians of three alternating runs after a warm-up of each."""
    df = spark.read.parquet(str(data))
    rows = df.count()
    groups: RowGroups = parquet_row_groups(str(data))
    as_of = datetime(2024, 1, 1)
    runners = {"sampled": (QualityConfig(), groups), "full": (QualityConfig(sample_rows=rows + 1), None)}
    for cfg, row_groups in runners.values():  # warm-up: class loading and the first Deequ run
        verify(df, "warm-up", CHECKS, cfg, rows=rows, as_of=as_of, row_groups=row_groups)

    def timed(checks: list[CheckConfig]) -> tuple[list[dict], dict]:
        seconds, peaks, reports = {r: [] for r in runners}, dict.fromkeys(runners, 0.0), {}
        for _ in range(REPEATS):
            for runner, (cfg, row_groups) in runners.items():
                peak.reset()
                t0 = time.perf_counter()
                report = verify(df, "bench", checks, cfg, rows=rows, as_of=as_of, row_groups=row_groups)
                seconds[runner].append(time.perf_counter() - t0)
                peaks[runner] = max(peaks[runner], peak.read())
                reports[runner] = {c.name: c for c in report.checks}
        out = []
        for runner in runners:
            median = statistics.median(seconds[runner])
            out.append(
                {
                    "runner": runner,
                    "seconds": round(median, 2),
                    "runs": [round(x, 2) for x in seconds[runner]],
                    "rows_per_second": round(rows / median),
                    "jvm_peak_rss_mib": round(peaks[runner]),
                }
            )
        return out, reports

    results, reports = timed(CHECKS)
    checks = []
    for check in CHECKS:
        s, f = reports["sampled"][check.name], reports["full"][check.name]
        checks.append(
            {
                "check": check.name,
                "expected": s.expected,
                "sampled_by": s.decided_by,
                "sample_interval": s.interval,
                "sample_design": s.detail,
                "sampled_verdict": s.status,
                "full_metric": f.metric,
                "full_verdict": f.status,
                "agree": s.status == f.status,
            }
        )
    out = {
        "rows": rows,
        "row_groups": groups.count,
        "runners": results,
        "sampled_share_of_full": round(results[0]["seconds"] / results[1]["seconds"], 4),
        "checks": checks,
    }
    if with_borderline:
        with_one = [BORDERLINE if c.name == "code_pattern" else c for c in CHECKS]
        borderline, found = timed(with_one)
        out["with_a_borderline_check"] = {
            "runners": borderline,
            "decided_by": found["sampled"][BORDERLINE.name].decided_by,
        }
    return out


def _size_lines(result: dict) -> list[str]:
    sampled, full = result["runners"]
    checks = result["checks"]
    lines = [
        f"## {result['rows']:,} rows ({result['row_groups']:,} row groups)",
        "",
        "| runner | seconds | rows/s | JVM peak RSS |",
        "|---|---:|---:|---:|",
        *[
            f"| {r['runner']} | {r['seconds']} | {r['rows_per_second']:,} | {r['jvm_peak_rss_mib']:,} MiB |"
            for r in result["runners"]
        ],
        "",
        f"Sampled takes **{sampled['seconds'] / full['seconds']:.1%}** of the full Deequ time "
        f"(full over sampled: {full['seconds'] / sampled['seconds']:.1f}x); verdicts equal: "
        f"**{sum(c['agree'] for c in checks)} of {len(checks)}**. Runs: sampled {sampled['runs']} s, "
        f"full {full['runs']} s.",
        "",
        "| check | bound | decided by | sample | sample interval | sampled | full metric | full | agree |",
        "|---|---|---|---|---|---|---:|---|---|",
    ]
    for c in checks:
        interval = f"[{c['sample_interval'][0]:.5g}, {c['sample_interval'][1]:.5g}]" if c["sample_interval"] else ""
        lines.append(
            f"| {c['check']} | {c['expected']} | {c['sampled_by']} | {c['sample_design']} | {interval} "
            f"| {c['sampled_verdict']} | {c['full_metric']:.6g} | {c['full_verdict']} | "
            f"{'yes' if c['agree'] else 'NO'} |"
        )
    if "with_a_borderline_check" in result:
        b = result["with_a_borderline_check"]
        b_sampled, b_full = b["runners"]
        lines += [
            "",
            f"With a borderline check: `code_pattern` at `>= {BORDERLINE.threshold}` instead of `>= 0.98` (true "
            f"share 0.99498, inside the sample's interval), the sample cannot decide it (decided by: "
            f"{b['decided_by']}): sampled {b_sampled['seconds']} s against full {b_full['seconds']} s "
            f"(**{b_sampled['seconds'] / b_full['seconds']:.0%}**). A borderline check costs one full-data scan of "
            "its columns; the other nine stay decided by the sample.",
        ]
    return [*lines, ""]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000_000, 100_000_000])
    parser.add_argument("--data", type=Path, default=REPO / ".cache" / "bench" / "quality")
    args = parser.parse_args()
    datasets = []
    for rows in args.rows:
        path = args.data / f"rows-{rows}-groups-{GROUP_ROWS}"
        generate(path, rows)
        datasets.append(path)
    spark = build_session(SparkConfig(shuffle_partitions=4, driver_memory="6g"), REPO / "output" / "logs")
    peak = PeakRss(jvm_pid())
    try:
        results = [bench(spark, peak, path, with_borderline=i == 0) for i, path in enumerate(datasets)]
    finally:
        stop_callbacks(spark)
        spark.stop()
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "group_rows": GROUP_ROWS,
        "sizes": results,
    }
    bench_dir = REPO / "bench"
    bench_dir.mkdir(exist_ok=True)
    (bench_dir / "quality.json").write_text(json.dumps(out, indent=2, default=str))
    lines = [
        f"# Sampled vs full Deequ verification ({out['machine']})",
        "",
        "`sampled`: the checks measured by Deequ's constraint conditions on a 10,000-row sample drawn from 50 "
        "whole row groups (read alone; the rest of the data is not read), with confidence intervals from the "
        "groups' totals, borderline checks on the full data in one Deequ VerificationSuite; "
        "`full`: one Deequ VerificationSuite over every row. Same 10 checks, same process, Parquet in row groups "
        f"of {GROUP_ROWS:,} rows (`.venv/bin/python scripts/bench_quality.py`). Times are the median of three "
        "alternating runs after a warm-up of each runner; peak RSS is the driver JVM's.",
        "",
    ]
    for result in results:
        lines += _size_lines(result)
    (bench_dir / "quality.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if all(c["agree"] for r in results for c in r["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
