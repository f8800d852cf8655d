"""Benchmark: 16 sweep trials run serially in this process and as Ray tasks on every local core.

Both runners score the same 16 trials (4 feature-set variants (15 to 60 features) x gradient boosting and logistic
regression, 2 settings each) on the same pinned Delta version, read once with delta-rs where the
variants are prepared (in this process when serial, in a Ray task otherwise). Each trial is held to
one thread, so the serial runner is one core's work and Ray's speed-up is what running trials side
by side buys. The Ray time includes starting and stopping Ray, the read and starting the workers.
Reported: wall time, trials/s, rows/s (training rows scored per second), peak memory (this process,
and Ray's worker processes), the speed-up, and the overhead per trial. Results go to
bench/experiments.{json,md}. With `--memory`, it measures instead the driver's peak RSS on a wide
table (`driver_memory`), and only prints it.

    .venv/bin/python scripts/bench_experiments.py                 # 600,000 rows, 2 CPUs
    .venv/bin/python scripts/bench_experiments.py --rows 300000 --cpus 4
    .venv/bin/python scripts/bench_experiments.py --memory --rows 10000000 --features 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config.experiment import ExperimentConfig, ModelConfig, SplitConfig, VariantConfig  # noqa: E402
from engine.experiments.dataset import TableVersion, VariantsRead  # noqa: E402
from engine.experiments.runner import ray_runtime, run_on_ray, run_serially  # noqa: E402
from engine.experiments.space import plan_trials  # noqa: E402
from engine.experiments.trials import TrialResult, TrialSpec  # noqa: E402
from scripts.benchlib import PeakRss  # noqa: E402

FEATURES = 60  # about the width of the flights feature table
CHUNK = 1_000_000
VARIANTS = {
    "first_15": [f"f{i:02d}" for i in range(15)],
    "first_30": [f"f{i:02d}" for i in range(30)],
    "odd_30": [f"f{i:02d}" for i in range(1, FEATURES, 2)],
    "all_60": [f"f{i:02d}" for i in range(FEATURES)],
}


def generate(path: Path, rows: int, features: int = FEATURES) -> TableVersion:
    """A Delta table of `rows` events: `features` features with 5% nulls, a time column and a label,
    written a million rows at a time (so a wide table is never in memory whole)."""
    if (path / "_delta_log").exists():
        return TableVersion(str(path), DeltaTable(str(path)).version())
    weights = np.random.default_rng(11).normal(size=features) / np.sqrt(features)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    for first in range(0, rows, CHUNK):
        rng = np.random.default_rng([11, first])
        n = min(CHUNK, rows - first)
        values = rng.normal(size=(n, features))
        label = (values @ weights + np.sin(values[:, 0] * 2) + rng.normal(size=n) > 0).astype("int32")
        columns = {f"f{i:02d}": pa.array(values[:, i], mask=rng.random(n) < 0.05) for i in range(features)}
        times = start + rng.integers(0, 365 * 24 * 3600, n).astype("timedelta64[s]")
        chunk = pa.table({"event_ts": pa.array(times).cast(pa.timestamp("us", tz="UTC")), **columns, "label": label})
        write_deltalake(str(path), chunk, mode="overwrite" if first == 0 else "append")
    return TableVersion(str(path), DeltaTable(str(path)).version())


def worker_peak_mib() -> float:
    """Peak RSS summed over Ray's worker processes (read while they are alive)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"default_worker.py" not in cmdline and not cmdline.startswith(b"ray::"):
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0.0)
    return total


def summary(name: str, seconds: float, results: list[TrialResult], peak: float, workers: float | None) -> dict:
    rows = sum(r.train_rows for r in results)
    return {
        "runner": name,
        "seconds": round(seconds, 2),
        "trials_per_s": round(len(results) / seconds, 3),
        "train_rows_per_s": round(rows / seconds),
        "trial_seconds_sum": round(sum(r.seconds for r in results), 2),
        "driver_peak_rss_mib": round(peak),
        "ray_workers_peak_rss_mib": None if workers is None else round(workers),
        "failed": sum(r.failed for r in results),
    }


def driver_memory(args: argparse.Namespace) -> int:
    """`--memory`: the driver's peak RSS while a Ray sweep reads a table of `--rows` x `--features`
    (one variant of every feature, two short boosting trials), then the same sweep serially in this
    process, which reads the rows itself: its scores must be the same (`--no-serial` skips it, for a
    table the driver's memory cannot hold). Prints the numbers only."""
    path = args.data / f"events_{args.rows}x{args.features}"
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as child:  # this process's peak is the sweep's
        version = child.submit(generate, path, args.rows, args.features).result()
    variants = {"all": [f"f{i:02d}" for i in range(args.features)]}
    cfg = ExperimentConfig(
        enabled=True,
        name="memory",
        split=SplitConfig(time_column="event_ts", valid_fraction=0.2),
        variants=[VariantConfig(name="all")],
        models=[ModelConfig(name="gradient_boosting", params={"max_iter": [5, 10]})],
        num_cpus=args.cpus,
    )
    trials = plan_trials(cfg, variants)
    spec = TrialSpec(cfg.label, cfg.metric, cfg.split, cfg.seed)
    reads = [VariantsRead(version, {v: tuple(cols) for v, cols in variants.items()})]
    driver = PeakRss(os.getpid())
    driver.reset()
    started = time.perf_counter()
    with ray_runtime(cfg):
        on_ray = run_on_ray(reads, trials, spec, cfg)
        workers = worker_peak_mib()
    rows = [summary(f"Ray tasks ({args.cpus} CPUs)", time.perf_counter() - started, on_ray, driver.read(), workers)]
    same = None
    if not args.no_serial:
        driver.reset()
        started = time.perf_counter()
        serial = run_serially(reads, trials, spec)
        rows.append(summary("serial (one process)", time.perf_counter() - started, serial, driver.read(), None))
        same = [r.score for r in serial] == [r.score for r in on_ray]
    print(f"{args.rows:,} rows x {args.features} features, {len(trials)} trials; scores identical: {same}")
    for row in rows:
        print(
            f"{row['runner']}: {row['seconds']:.1f} s, driver peak RSS {row['driver_peak_rss_mib']:,} MiB, "
            f"Ray workers peak RSS {row['ray_workers_peak_rss_mib'] or 0:,} MiB, failed {row['failed']}"
        )
    return 0 if same is not False and not any(r.failed for r in on_ray) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO / ".cache" / "bench" / "experiments")
    parser.add_argument(
        "--memory", action="store_true", help="the driver's peak RSS on a wide table (see driver_memory)"
    )
    parser.add_argument("--features", type=int, default=50, help="the table's width with --memory")
    parser.add_argument("--no-serial", action="store_true", help="with --memory, skip the serial sweep")
    args = parser.parse_args()

    if args.memory:
        return driver_memory(args)
    version = generate(args.data / f"events_{args.rows}x{FEATURES}", args.rows)
    cfg = ExperimentConfig(
        enabled=True,
        name="bench",
        split=SplitConfig(time_column="event_ts", valid_fraction=0.2),
        variants=[VariantConfig(name=v) for v in VARIANTS],
        models=[
            ModelConfig(name="gradient_boosting", params={"max_iter": [100, 200]}),
            ModelConfig(name="logistic_regression", params={"C": [0.1, 1.0]}),
        ],
        num_cpus=args.cpus,
    )
    trials = plan_trials(cfg, VARIANTS)
    spec = TrialSpec(cfg.label, cfg.metric, cfg.split, cfg.seed)
    reads = [VariantsRead(version, {v: tuple(cols) for v, cols in VARIANTS.items()})]
    print(f"{len(trials)} trials on {args.rows:,} rows; the columns are read with delta-rs where they are prepared")

    driver = PeakRss(os.getpid())
    driver.reset()
    started = time.perf_counter()
    serial = run_serially(reads, trials, spec)
    serial_seconds = time.perf_counter() - started
    serial_row = summary("serial (one process)", serial_seconds, serial, driver.read(), None)
    print(f"serial: {serial_seconds:.1f} s")

    driver.reset()
    started = time.perf_counter()
    with ray_runtime(cfg):  # the sweep's own runtime, held open here to time its start and stop apart
        up = time.perf_counter()
        on_ray = run_on_ray(reads, trials, spec, cfg)
        workers = worker_peak_mib()
        ran = time.perf_counter()
    ray_seconds = time.perf_counter() - started
    phases = {"start": up - started, "trials": ran - up, "stop": started + ray_seconds - ran}
    ray_row = summary(f"Ray tasks ({args.cpus} CPUs)", ray_seconds, on_ray, driver.read(), workers)
    print(f"ray: {ray_seconds:.1f} s")

    same = all(a.trial == b.trial and a.score == b.score for a, b in zip(serial, on_ray, strict=True))
    speedup = serial_seconds / ray_seconds
    overhead = (ray_seconds - serial_seconds / args.cpus) * args.cpus / len(trials)
    out = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": args.rows,
        "trials": len(trials),
        "runners": [serial_row, ray_row],
        "speedup": round(speedup, 2),
        "overhead_per_trial_seconds": round(overhead, 3),
        "ray_phases_seconds": {k: round(v, 2) for k, v in phases.items()},
        "speedup_trials_phase": round(serial_seconds / phases["trials"], 2),
        "identical_scores": same,
        "scores": [{"trial": r.trial.name, "auc": r.score, "seconds": round(r.seconds, 2)} for r in serial],
    }
    bench = REPO / "bench"
    bench.mkdir(exist_ok=True)
    (bench / "experiments.json").write_text(json.dumps(out, indent=2))
    lines = [
        f"# 16 sweep trials: serial vs Ray, {args.rows:,} rows ({out['machine']})",
        "",
        "Each trial fits one model on one core. The 4 variants' columns are read once with delta-rs where they are "
        "prepared: in the driver when serial, in a Ray task otherwise (the driver reads no rows); the read is in "
        "the times below. Ray's time includes starting and stopping Ray.",
        "",
        "| runner | seconds | trials/s | training rows/s | sum of trial seconds | driver peak RSS "
        "| Ray workers peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in out["runners"]:
        workers = "" if row["ray_workers_peak_rss_mib"] is None else f"{row['ray_workers_peak_rss_mib']:,} MiB"
        lines.append(
            f"| {row['runner']} | {row['seconds']:.1f} | {row['trials_per_s']:.3f} | {row['train_rows_per_s']:,} "
            f"| {row['trial_seconds_sum']:.1f} | {row['driver_peak_rss_mib']:,} MiB | {workers} |"
        )
    lines += [
        "",
        f"Speed-up of Ray over serial: **{speedup:.2f}x**. Overhead per trial: **{overhead:.2f} s** of core time "
        f"(Ray's wall time minus the ideal serial/{args.cpus}, times {args.cpus} cores, over {len(trials)} trials).",
        f"Ray's wall time splits into starting Ray {phases['start']:.1f} s, the trials {phases['trials']:.1f} s "
        f"(workers start with the first tasks) and stopping Ray {phases['stop']:.1f} s; with Ray already running "
        f"(a cluster at `experiment.ray_address`) the speed-up is {serial_seconds / phases['trials']:.2f}x.",
        f"Scores identical in both runners: {'yes' if same else 'no'}.",
        "",
        "| trial | AUC | serial seconds |",
        "|---|---:|---:|",
        *(f"| {s['trial']} | {s['auc']:.4f} | {s['seconds']:.2f} |" for s in out["scores"]),
    ]
    (bench / "experiments.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))
    return 0 if same and not any(r["failed"] for r in out["runners"]) else 1


if __name__ == "__main__":
    sys.exit(main())
