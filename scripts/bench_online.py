"""Online features benchmark: materialization time, and lookup latency through the Python API and HTTP,
side by side with Feast.

    .venv/bin/python scripts/bench_online.py [--entities 100000,1000000] [--features 50] [--out bench/online.md]

Materialization: a Delta feature table of N entities x F double features (two rows per entity, nulls
in 5% of values), materialized as of a time into each store: full (after an untimed warm-up run; the
median of three on the first size), then one incremental run after a new version changes 1% of the
entities. Lookups (on the first size): 1 entity x F features and 100
entities x F features, through `OnlineClient` in this process (single thread) and through
`scripts/serve` (uvicorn, one process) loaded by `wrk` on loopback with 1 and 8 connections, each
after a warm-up; the median of three runs of each is reported. Redis is a `redis-server` started here.

Feast (its pinned version, in a virtual environment of its own under .cache/bench, made on first use)
gets the same rows of the first size as one Parquet file, a SQLite online store, and the same lookups
through its Python SDK and `feast serve` (`bench_online_feast.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config.online import RedisStoreConfig, SqliteStoreConfig  # noqa: E402
from engine.config.schema import SinkConfig, SparkConfig  # noqa: E402
from engine.online.groups import OnlineGroup  # noqa: E402
from engine.online.lookup import OnlineClient  # noqa: E402
from engine.online.materialize import materialize_group  # noqa: E402
from engine.online.redis_store import RedisStore  # noqa: E402
from engine.online.sqlite_store import SqliteStore  # noqa: E402
from engine.runtime.session import build_session  # noqa: E402
from engine.sinks.sink import DELTA  # noqa: E402
from scripts.benchlib import PeakRss, jvm_pid  # noqa: E402
from scripts.latency import call_latency, wrk_latency  # noqa: E402
from scripts.loopback import free_port, redis_server, wait_port  # noqa: E402

AS_OF = datetime(2024, 6, 1, tzinfo=UTC)
FEAST = "feast[redis]==0.67.0"
FEAST_VENV = REPO / ".cache" / "bench" / "feast-0.67.0"


def feature_table(spark, path: Path, entities: int, features: int, changed: float = 0.0, seed: int = 1) -> int:
    """Two rows per entity (an older and a newer one), or, with `changed`, one new row for that share."""
    from pyspark.sql import functions as F

    ids = spark.range(entities).withColumnRenamed("id", "entity")
    if changed:
        ids = ids.where(F.rand(seed) < changed)
        times = [AS_OF - timedelta(minutes=30)]
    else:
        times = [AS_OF - timedelta(days=2), AS_OF - timedelta(hours=3)]
    frames = []
    for i, when in enumerate(times):
        values = {
            f"f{j:03d}": F.when(F.rand(seed * 100 + i * 10 + j) < 0.05, None).otherwise(F.rand(seed + j))
            for j in range(features)
        }
        frames.append(ids.withColumn("event_ts", F.lit(when)).withColumns(values))
    frame = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    sink = SinkConfig(path=str(path), mode="append")
    return DELTA.write(frame, sink, {"run_id": "bench"}, {"bench": f"{entities}-{changed}-{seed}"}).version


def timed(func, peaks: tuple[PeakRss, PeakRss]) -> tuple[float, object, float]:
    """Seconds, result, and the peak resident memory (MiB) of the driver JVM plus this process."""
    for peak in peaks:
        peak.reset()
    started = time.perf_counter()
    result = func()
    return time.perf_counter() - started, result, sum(p.read() for p in peaks)


def materialization(spark, tmp: Path, entities: int, features: int, stores: dict, runs: int) -> list[dict]:
    """Full runs (the median of `runs`, after an untimed warm-up one), then one incremental run after a
    new version changes 1% of the entities."""
    group = OnlineGroup("entity", ("entity",), tuple(f"f{j:03d}" for j in range(features)), None)
    path = tmp / f"table_{entities}"
    peaks = (PeakRss(jvm_pid()), PeakRss(os.getpid()))
    v0 = feature_table(spark, path, entities, features)
    warm_up = SqliteStore(SqliteStoreConfig(str(tmp / f"warm_up_{entities}.db")))
    materialize_group(spark, warm_up, str(path), v0, group, "event_ts", AS_OF, True)
    rows = []
    for name, store in stores.items():
        timings = [
            timed(lambda s=store: materialize_group(spark, s, str(path), v0, group, "event_ts", AS_OF, True), peaks)
            for _ in range(runs)
        ]
        seconds, full, mib = sorted(timings, key=lambda t: t[0])[len(timings) // 2]
        rows.append(
            {"system": "featurelake", "store": name, "entities": entities, "run": "full", "seconds": seconds}
            | {"written": full.rows_written, "peak_mib": mib, "runs": runs}
        )
    v1 = feature_table(spark, path, entities, features, changed=0.01, seed=2)
    for name, store in stores.items():
        seconds, inc, mib = timed(
            lambda s=store: materialize_group(spark, s, str(path), v1, group, "event_ts", AS_OF), peaks
        )
        rows.append(
            {"system": "featurelake", "store": name, "entities": entities, "run": "incremental 1%"}
            | {"seconds": seconds, "written": inc.rows_written, "peak_mib": mib, "runs": 1}
        )
    return rows


def python_latency(store, entities: int, features: int, batch: int) -> dict:
    client = OnlineClient(store)
    names = [f"entity:f{j:03d}" for j in range(features)]
    rng = random.Random(7)
    return call_latency(
        lambda: client.get_online_features([{"entity": rng.randrange(entities)} for _ in range(batch)], names, AS_OF),
        requests=3000 if batch == 1 else 300,
    )


def http_latency(port: int, entities: int, features: int, batch: int, connections: int, wrk: str) -> dict:
    names = [f"entity:f{j:03d}" for j in range(features)]
    rows = [{"entity": i * 7919 % entities} for i in range(batch)]
    body = json.dumps({"entities": rows, "features": names, "at": AS_OF.isoformat()})
    return wrk_latency(wrk, f"http://127.0.0.1:{port}/features", body, connections)


def feast_side(spark, tmp: Path, entities: int, features: int, wrk: str) -> dict:
    """Feast's materialization and lookups on the same rows (version 0 of the table), in its own venv."""
    python = FEAST_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", FEAST], check=True)
    source = tmp / "feast_source"
    table = spark.read.format("delta").option("versionAsOf", 0).load(str(tmp / f"table_{entities}"))
    table.coalesce(1).write.parquet(str(source))
    (parquet,) = source.glob("*.parquet")
    out = subprocess.run(
        [
            *(str(python), str(REPO / "scripts" / "bench_online_feast.py"), "--parquet", str(parquet)),
            *("--entities", str(entities), "--features", str(features), "--as-of", AS_OF.isoformat(), "--wrk", wrk),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def serve(tmp: Path, store_args: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.serve", "--port", str(port), f"job.log_dir={tmp / 'logs'}", *store_args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, process)
    return process, port


def lookups(tmp: Path, name: str, store, size: int, features: int, store_args: list[str], wrk: str) -> list[dict]:
    """One store's lookups: the Python API, then HTTP through scripts/serve."""
    rows = [
        {"system": "featurelake", "store": name, "via": "python", "batch": batch, "clients": 1}
        | python_latency(store, size, features, batch)
        for batch in (1, 100)
    ]
    process, port = serve(tmp, store_args)
    try:
        for batch in (1, 100):
            for clients in (1, 8):
                rows.append(
                    {"system": "featurelake", "store": name, "via": "http", "batch": batch, "clients": clients}
                    | http_latency(port, size, features, batch, clients, wrk)
                )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", default="100000,1000000")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--out", default=str(REPO / "bench" / "online.md"))
    args = parser.parse_args()
    sizes = [int(n) for n in args.entities.split(",")]
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("error: the benchmark needs wrk (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-online-"))
    spark = build_session(
        SparkConfig(shuffle_partitions=4, driver_memory="8g", jar_cache=str(REPO / ".cache" / "jars")), tmp / "logs"
    )
    materialized, latency = [], []
    try:
        with redis_server(tmp) as redis_port:
            for size in sizes:
                stores = {
                    "sqlite": SqliteStore(SqliteStoreConfig(str(tmp / f"online_{size}.db"))),
                    "redis": RedisStore(RedisStoreConfig(port=redis_port, key_prefix=f"bench{size}")),
                }
                runs = 3 if size == sizes[0] else 1
                materialized += materialization(spark, tmp, size, args.features, stores, runs)
                if size != sizes[0]:
                    continue
                store_args = {
                    "sqlite": [f"online.sqlite.path={tmp / f'online_{size}.db'}"],
                    "redis": [
                        "online=redis",
                        f"online.redis.port={redis_port}",
                        f"online.redis.key_prefix=bench{size}",
                    ],
                }
                for name, store in stores.items():
                    latency += lookups(tmp, name, store, size, args.features, store_args[name], wrk)
                feast = feast_side(spark, tmp, size, args.features, wrk)
                materialized.append(
                    {"system": "feast 0.67.0", "store": "sqlite", "entities": size, "run": "full", "runs": 1}
                    | {"seconds": feast["materialize_seconds"], "written": size, "peak_mib": feast["peak_mib"]}
                )
                latency += [{"system": "feast 0.67.0", "store": "sqlite"} | r for r in feast["latency"]]
    finally:
        spark.stop()
    write_report(Path(args.out), args.features, materialized, latency)


def write_report(path: Path, features: int, materialized: list[dict], latency: list[dict]) -> None:
    lines = [
        "# Online features benchmark",
        "",
        f"`scripts/bench_online.py` on {os.cpu_count()} cores, Python {sys.version.split()[0]}, local[2]; "
        f"{features} double features per entity; loopback only. Each latency figure is the median of three runs "
        "after a warm-up; HTTP load from `wrk` (one thread) against `scripts/serve` (one uvicorn process) and "
        "`feast serve` (one worker, worker recycling off). Feast reads the same rows as one Parquet file.",
        "",
        "## Materialization (what a user waits for: the whole call, from the Delta version to the store)",
        "",
        "| system | store | entities | run | seconds | runs (median) | entities written | entities/s | peak MiB |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in materialized:
        lines.append(
            f"| {r['system']} | {r['store']} | {r['entities']:,} | {r['run']} | {r['seconds']:.1f} | {r['runs']} | "
            f"{r['written']:,} | {r['written'] / r['seconds']:,.0f} | {r['peak_mib']:,.0f} |"
        )
    lines += [
        "",
        "featurelake's full runs follow an untimed warm-up run; an incremental run is one run (it needs the "
        "state the full run left). Feast's materialization is its first and only run. Peak MiB: featurelake's "
        "driver JVM plus the Python process; Feast's process.",
        "",
        "## Lookups",
        "",
        "| system | store | via | entities per request | clients | p50 ms | p95 ms | p99 ms | requests/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in latency:
        lines.append(
            f"| {r['system']} | {r['store']} | {r['via']} | {r['batch']} | {r['clients']} | {r['p50']:.2f} | "
            f"{r['p95']:.2f} | {r['p99']:.2f} | {r['rps']:,.0f} |"
        )
    feast = {(r["via"], r["batch"], r["clients"]): r for r in latency if r["system"].startswith("feast")}
    ours = {
        (r["via"], r["batch"], r["clients"]): r
        for r in latency
        if r["system"] == "featurelake" and r["store"] == "sqlite"
    }
    if feast:
        lines += [
            "",
            "## Side by side on SQLite (Feast's figure divided by featurelake's: above 1, featurelake is faster)",
            "",
            "| via | entities per request | clients | p99 ratio | requests/s ratio (featurelake / Feast) |",
            "|---|---:|---:|---:|---:|",
        ]
        for key in sorted(feast.keys() & ours.keys()):
            f, o = feast[key], ours[key]
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {f['p99'] / o['p99']:.1f} | {o['rps'] / f['rps']:.1f} |")
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"materialized": materialized, "latency": latency}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
