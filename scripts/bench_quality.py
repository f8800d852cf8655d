"""Benchmark: sampled verification vs a full Deequ VerificationSuite, the same 10 checks at 10M rows.

Both runners verify the same checks on the same Parquet data in one process. `sampled`: Deequ's
analyzers on the default 10,000-row sample at 95% confidence with the engine's intervals, and the
borderline checks in one full-data Deequ run. `full`: sampling off, so all 10 checks run in one
Deequ VerificationSuite over every row. The script reports each runner's time, rows/s and the
driver JVM's peak RSS, and compares every verdict. Results go to bench/quality.{json,md}.

    .venv/bin/python scripts/bench_quality.py              # 10M rows
    .venv/bin/python scripts/bench_quality.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
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


def generate(path: Path, rows: int) -> None:
    """10M rows: 3% null amounts, 0.5% off-list codes, 0.2% negative quantities."""
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
        pq.write_table(table, path / f"part-{start // chunk:03d}.parquet")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=REPO / ".cache" / "bench" / "quality")
    args = parser.parse_args()
    data = args.data / f"rows-{args.rows}"
    started = time.perf_counter()
    generate(data, args.rows)
    generated = time.perf_counter() - started
    spark = build_session(SparkConfig(shuffle_partitions=4, driver_memory="6g"), REPO / "output" / "logs")
    peak = PeakRss(jvm_pid())
    df = spark.read.parquet(str(data))
    rows = df.count()
    as_of = datetime(2024, 1, 1)
    runners = {"sampled": QualityConfig(sample_rows=10_000), "full": QualityConfig(sample_rows=rows + 1)}
    for cfg in runners.values():  # warm-up: class loading and the first Deequ run
        verify(df, "warm-up", CHECKS, cfg, rows=rows, as_of=as_of)

    def timed(runner: str, checks: list[CheckConfig]) -> tuple[dict, dict]:
        """The median of three runs, alternating with the other runner's, and the last run's results."""
        peak.reset()
        seconds = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            report = verify(df, "bench", checks, runners[runner], rows=rows, as_of=as_of)
            seconds.append(time.perf_counter() - t0)
        median = statistics.median(seconds)
        row = {
            "runner": runner,
            "seconds": round(median, 2),
            "runs": [round(x, 2) for x in seconds],
            "rows_per_second": round(rows / median),
            "jvm_peak_rss_mib": round(peak.read()),
        }
        return row, {c.name: c for c in report.checks}

    results, reports = [], {}
    for runner in runners:
        row, reports[runner] = timed(runner, CHECKS)
        results.append(row)
    with_borderline = [BORDERLINE if c.name == "code_pattern" else c for c in CHECKS]
    borderline = [timed(runner, with_borderline) for runner in runners]
    decided_by = borderline[0][1][BORDERLINE.name].decided_by
    borderline = [row for row, _ in borderline]
    stop_callbacks(spark)
    spark.stop()
    checks = []
    for check in CHECKS:
        s, f = reports["sampled"][check.name], reports["full"][check.name]
        checks.append(
            {
                "check": check.name,
                "expected": s.expected,
                "sampled_by": s.decided_by,
                "sample_interval": s.interval,
                "sampled_verdict": s.status,
                "full_metric": f.metric,
                "full_verdict": f.status,
                "agree": s.status == f.status,
            }
        )
    ratio = results[1]["seconds"] / results[0]["seconds"]
    out = {
        "rows": rows,
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "generate_seconds": round(generated, 1),
        "runners": results,
        "full_over_sampled": round(ratio, 2),
        "checks": checks,
        "with_a_borderline_check": {"runners": borderline, "decided_by": decided_by},
    }
    bench = REPO / "bench"
    bench.mkdir(exist_ok=True)
    (bench / "quality.json").write_text(json.dumps(out, indent=2, default=str))
    lines = [
        f"# Sampled vs full Deequ verification, {rows:,} rows ({out['machine']})",
        "",
        "`sampled`: Deequ on a 10,000-row sample with confidence intervals, borderline checks on the full data; "
        "`full`: one Deequ VerificationSuite over every row. Same 10 checks, same process "
        "(`.venv/bin/python scripts/bench_quality.py`).",
        "",
        "| runner | seconds | rows/s | JVM peak RSS |",
        "|---|---:|---:|---:|",
        *[
            f"| {r['runner']} | {r['seconds']} | {r['rows_per_second']:,} | {r['jvm_peak_rss_mib']:,} MiB |"
            for r in results
        ],
        "",
        f"Sampled takes **{results[0]['seconds'] / results[1]['seconds']:.0%}** of the full Deequ time "
        f"(full over sampled: {ratio:.2f}x); verdicts equal: **{sum(c['agree'] for c in checks)} of {len(checks)}**.",
        "",
        "Times are the median of three runs after a warm-up of each runner.",
        "",
        "| check | bound | decided by | sample interval | sampled | full metric | full | agree |",
        "|---|---|---|---|---|---:|---|---|",
    ]
    for c in checks:
        interval = f"[{c['sample_interval'][0]:.5g}, {c['sample_interval'][1]:.5g}]" if c["sample_interval"] else ""
        lines.append(
            f"| {c['check']} | {c['expected']} | {c['sampled_by']} | {interval} | {c['sampled_verdict']} "
            f"| {c['full_metric']:.6g} | {c['full_verdict']} | {'yes' if c['agree'] else 'NO'} |"
        )
    b_sampled, b_full = borderline
    lines += [
        "",
        f"With a borderline check: `code_pattern` at `>= {BORDERLINE.threshold}` instead of `>= 0.98` (true share "
        f"0.99498, inside the sample's interval), the sample cannot decide it (decided by: {decided_by}): sampled "
        f"{b_sampled['seconds']} s against full {b_full['seconds']} s "
        f"(**{b_sampled['seconds'] / b_full['seconds']:.0%}**). A borderline check costs one full-data scan of its "
        "columns; the other nine stay decided by the sample.",
    ]
    (bench / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(c["agree"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
