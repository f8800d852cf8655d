"""Benchmark: sampled verification vs a full Deequ VerificationSuite, the same 10 checks at 10M and 100M rows.

Both runners verify the same checks on the same Parquet data in one process. `sampled`: the default
sample (10,000 rows from at least 50 whole row groups, drawn by the footers' row counts and read
alone) at 95% confidence with the engine's intervals, and the borderline checks in one full-data
Deequ run. `full`: sampling off, so all 10 checks run in one Deequ VerificationSuite over every row.
The data is written in row groups of 32,768 rows. The script reports each runner's time, rows/s and
the driver JVM's peak RSS, and compares every verdict. Results go to bench/quality.{json,md}.

Then the whole command, as a user runs it: `python -m jobs.run job=validate` on the same table in its
own process, sampled against sampling off, each with (a) the 10 sample-decidable checks and (b) those
plus a `unique` key check and a `size` check. Each run's process wall time, its stages' time (the run
record's; Spark start-up and imports are the rest), and the bytes read from storage: Spark's (its input
metrics, per stage in the run record) plus the stored column chunks the row-group sample read.

    .venv/bin/python scripts/bench_quality.py                      # 10M and 100M rows
    .venv/bin/python scripts/bench_quality.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
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
from engine.quality.verify import verify  # noqa: E402
from engine.runtime.py4j_bridge import stop_callbacks  # noqa: E402
from engine.runtime.session import build_session  # noqa: E402
from engine.sources.row_groups import RowGroups, parquet_row_groups  # noqa: E402
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


MIXED = [
    *CHECKS,
    CheckConfig(name="id_unique", kind="unique", columns=["id"]),
    CheckConfig(name="table_size", kind="size", min=1),
]
COMMAND_SCHEMA = "id BIGINT, amount DOUBLE, code STRING, qty BIGINT"


def _check_yaml(check: CheckConfig) -> str:
    """One check as the inline YAML a `validate.checks=[...]` override takes, at warning severity: the
    benchmark's data fails four checks on purpose, and the run should go through every stage."""
    fields = {"name": check.name, "kind": check.kind, "severity": "warning"}
    for key in ("columns", "values", "pattern", "threshold", "min", "max", "quantile"):
        value = getattr(check, key)
        if value not in (None, [], "") and not (key == "threshold" and check.kind in ("mean", "size")):
            fields[key] = value
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()) + "}"


def _command(data: Path, checks: list[CheckConfig], sampled: bool, work: Path) -> dict:
    """One `job=validate` run in its own process: wall time, the stages' time and bytes read."""
    work.mkdir(parents=True)
    overrides = [
        "job=validate",
        "validate.source.name=bench",
        "validate.source.format=parquet",
        f"validate.source.path={data}",
        f"validate.source.schema='{COMMAND_SCHEMA}'",
        "validate.source.options={}",
        "validate.output_path=''",
        "validate.checks=[" + ",".join(_check_yaml(c) for c in checks) + "]",
        "quality.as_of=2024-01-01T00:00:00",
        f"quality.report_dir={work / 'reports'}",
        f"quality.metrics_path={work.parent / 'metrics'}",
        f"quality.quarantine_path={work / 'quarantine'}",
        f"tracking.uri=sqlite:///{work.parent / 'mlflow.db'}",
        f"tracking.artifact_location={work / 'artifacts'}",
        f"job.run_record_dir={work / 'runs'}",
        f"job.log_dir={work / 'logs'}",
        f"observability.metrics.textfile_dir={work / 'metrics_textfile'}",
        *([] if sampled else ["quality.sample_rows=1000000000"]),
    ]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jobs.run", *overrides], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"job=validate failed: {done.stderr.strip()[-2000:]}")
    record = json.loads(next((work / "runs").glob("*.json")).read_text())
    report = json.loads(Path(record["reports"]["json"]).read_text())
    stages = sum(s["seconds"] for s in record["stages"])
    spark_bytes = sum(s.get("bytes_read") or 0 for s in record["stages"])
    sample_bytes = sum(report.get("sample_bytes", {}).values())
    return {
        "wall": wall,
        "stages": stages,
        "spark_bytes": spark_bytes,
        "sample_bytes": sample_bytes,
        "decided_by_sample": sum(c["decided_by"] == "sample" for c in report["checks"]),
        "checks": len(report["checks"]),
    }


def bench_command(data: Path, rows: int, stored_bytes: int, work: Path) -> list[dict]:
    """Each check set sampled and with sampling off: a warm-up run of each (untimed), then the median of
    three alternating runs."""
    out = []
    for label, checks in (("sample-decidable checks only", CHECKS), ("with a unique and a size check", MIXED)):
        runs: dict[str, list[dict]] = {"sampled": [], "sampling off": []}
        for repeat in range(REPEATS + 1):
            for mode in runs:
                folder = work / f"{rows}-{len(checks)}-{mode.replace(' ', '_')}" / f"run-{repeat}"
                result = _command(data, checks, mode == "sampled", folder)
                if repeat:
                    runs[mode].append(result)
                print(json.dumps({"rows": rows, "checks": label, "mode": mode, "repeat": repeat, **result}), flush=True)
        for mode, results in runs.items():
            middle = sorted(results, key=lambda r: r["stages"])[len(results) // 2]
            read = middle["spark_bytes"] + middle["sample_bytes"]
            out.append(
                {
                    "checks": label,
                    "mode": mode,
                    "wall_seconds": round(statistics.median(r["wall"] for r in results), 2),
                    "stages_seconds": round(middle["stages"], 2),
                    "stages_runs": [round(r["stages"], 2) for r in results],
                    "spark_bytes": middle["spark_bytes"],
                    "sample_bytes": middle["sample_bytes"],
                    "read_share": round(read / stored_bytes, 4),
                    "decided_by_sample": f"{middle['decided_by_sample']} of {middle['checks']}",
                }
            )
    return out


def _read(result: dict) -> int:
    return result["spark_bytes"] + result["sample_bytes"]


def _command_lines(rows: int, stored_bytes: int, results: list[dict]) -> list[str]:
    lines = [
        f"### `job=validate`, {rows:,} rows ({stored_bytes / 2**20:,.0f} MiB stored)",
        "",
        "| checks | mode | process wall s | stages s | start-up and the rest s | Spark read | sample read "
        "| read / stored | decided by the sample |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['checks']} | {r['mode']} | {r['wall_seconds']} | {r['stages_seconds']} "
            f"| {r['wall_seconds'] - r['stages_seconds']:.2f} | {r['spark_bytes'] / 2**20:,.1f} MiB "
            f"| {r['sample_bytes'] / 2**20:,.1f} MiB | {r['read_share']:.2%} | {r['decided_by_sample']} |"
        )
    lines.append("")
    for label in dict.fromkeys(r["checks"] for r in results):
        sampled, full = (
            next(r for r in results if r["checks"] == label and r["mode"] == m) for m in ("sampled", "sampling off")
        )
        lines.append(
            f"- {label}: the sampled job's stages take **{sampled['stages_seconds'] / full['stages_seconds']:.1%}** "
            f"of the stages with sampling off ({sampled['stages_seconds']} s against {full['stages_seconds']} s; runs "
            f"{sampled['stages_runs']} and {full['stages_runs']}), the whole process "
            f"{sampled['wall_seconds'] / full['wall_seconds']:.0%}, and it reads "
            f"**{_read(sampled) / max(_read(full), 1):.1%}** of the bytes."
        )
    return [*lines, ""]


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
    work = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        for result, path in zip(results, datasets, strict=True):
            stored = sum(f.stat().st_size for f in path.iterdir())
            result["stored_bytes"] = stored
            result["command"] = bench_command(path, result["rows"], stored, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
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
    lines += [
        "## The whole command",
        "",
        "`python -m jobs.run job=validate` on the same Parquet table, each run in its own process (set-up "
        "excluded: the venv and jars are in place), with the default sample (sampled) and with "
        "`quality.sample_rows` above the row count (sampling off: every check in one full Deequ pass). "
        "`stages` is the sum of the run record's stage times (read, verify, publish, gate, ...); the process's "
        "other time is Python and Spark start-up and the MLflow run. `Spark read` is Spark's input metrics over "
        "the stages, `sample read` the stored column chunks of the drawn row groups (pyarrow). Medians of "
        "three alternating runs after an untimed run of each.",
        "",
    ]
    for result in results:
        lines += _command_lines(result["rows"], result["stored_bytes"], result["command"])
    for result in results:
        lines += _size_lines(result)
    (bench_dir / "quality.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if all(c["agree"] for r in results for c in r["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
