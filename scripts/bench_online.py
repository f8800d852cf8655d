"""Online features benchmark: materialization time, and lookup latency through the Python API and HTTP.

    .venv/bin/python scripts/bench_online.py [--entities 100000,1000000] [--features 50] [--out bench/online.md]

Materialization: a Delta feature table of N entities x F double features (two rows per entity, nulls
in 5% of values), materialized as of a time into each store: full, then an incremental run after a
new version changes 1% of the entities. Lookups (on the first size): 1 entity x F features and 100
entities x F features, through `OnlineClient` in this process (single thread) and through
`scripts/serve` (uvicorn, one process) loaded by `wrk` on loopback with 1 and 8 connections, each
after a warm-up; the median of three runs of each is reported. Redis is a `redis-server` started here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
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
from engine.sinks.delta import write_delta  # noqa: E402

AS_OF = datetime(2024, 6, 1, tzinfo=UTC)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY")
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %f\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(port)


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
    return write_delta(frame, sink, {"run_id": "bench"}, {"bench": f"{entities}-{changed}-{seed}"}).version


def timed(func):
    started = time.perf_counter()
    result = func()
    return time.perf_counter() - started, result


def materialization(spark, tmp: Path, entities: int, features: int, stores: dict) -> list[dict]:
    group = OnlineGroup("entity", ("entity",), tuple(f"f{j:03d}" for j in range(features)), None)
    path = tmp / f"table_{entities}"
    v0 = feature_table(spark, path, entities, features)
    rows = []
    for name, store in stores.items():
        full_s, full = timed(lambda s=store: materialize_group(spark, s, str(path), v0, group, "event_ts", AS_OF, True))
        rows.append(
            {"store": name, "entities": entities, "run": "full", "seconds": full_s, "written": full.rows_written}
        )
    v1 = feature_table(spark, path, entities, features, changed=0.01, seed=2)
    for name, store in stores.items():
        inc_s, inc = timed(lambda s=store: materialize_group(spark, s, str(path), v1, group, "event_ts", AS_OF))
        rows.append(
            {
                "store": name,
                "entities": entities,
                "run": "incremental 1%",
                "seconds": inc_s,
                "written": inc.rows_written,
            }
        )
    return rows


def python_latency(store, entities: int, features: int, batch: int, requests: int = 3000) -> dict:
    client = OnlineClient(store)
    names = [f"entity:f{j:03d}" for j in range(features)]
    rng = random.Random(7)
    for _ in range(300):  # warm-up
        client.get_online_features([{"entity": rng.randrange(entities)} for _ in range(batch)], names, AS_OF)
    runs = []
    for _ in range(3):
        samples = []
        for _ in range(requests // batch if batch > 1 else requests):
            rows = [{"entity": rng.randrange(entities)} for _ in range(batch)]
            started = time.perf_counter()
            client.get_online_features(rows, names, AS_OF)
            samples.append(time.perf_counter() - started)
        samples.sort()
        runs.append(
            {
                "p50": samples[len(samples) // 2] * 1e3,
                "p95": samples[int(len(samples) * 0.95)] * 1e3,
                "p99": samples[int(len(samples) * 0.99)] * 1e3,
                "rps": len(samples) / sum(samples),
            }
        )
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def http_latency(port: int, entities: int, features: int, batch: int, connections: int, wrk: str) -> dict:
    names = [f"entity:f{j:03d}" for j in range(features)]
    body = json.dumps(
        {
            "entities": [{"entity": i * 7919 % entities} for i in range(batch)],
            "features": names,
            "at": AS_OF.isoformat(),
        }
    )
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BODY": body}
    base = [wrk, "-t", "1", "-c", str(connections), "-s", str(script), f"http://127.0.0.1:{port}/features"]
    subprocess.run([*base[:1], "-d", "3s", *base[1:]], env=env, capture_output=True, check=True)  # warm-up
    runs = []
    for _ in range(3):
        out = subprocess.run([*base[:1], "-d", "10s", *base[1:]], env=env, capture_output=True, text=True, check=True)
        line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
        n, seconds, p50, p95, p99 = (float(v) for v in line.split()[1:])
        runs.append({"p50": p50, "p95": p95, "p99": p99, "rps": n / seconds})
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def serve(tmp: Path, store_args: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.serve", "--port", str(port), f"job.log_dir={tmp / 'logs'}", *store_args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return process, port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", default="100000,1000000")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--out", default=str(REPO / "bench" / "online.md"))
    args = parser.parse_args()
    sizes = [int(n) for n in args.entities.split(",")]
    wrk, redis_server = shutil.which("wrk"), shutil.which("redis-server")
    if not wrk or not redis_server:
        sys.exit("error: the benchmark needs wrk and redis-server (apt-get install wrk redis-server)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-online-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_port(redis_port)
    spark = build_session(
        SparkConfig(shuffle_partitions=4, driver_memory="8g", jar_cache=str(REPO / ".cache" / "jars")), tmp / "logs"
    )
    materialized, latency = [], []
    try:
        for size in sizes:
            stores = {
                "sqlite": SqliteStore(SqliteStoreConfig(str(tmp / f"online_{size}.db"))),
                "redis": RedisStore(RedisStoreConfig(port=redis_port, key_prefix=f"bench{size}")),
            }
            materialized += materialization(spark, tmp, size, args.features, stores)
            if size != sizes[0]:
                continue
            for name, store in stores.items():
                for batch in (1, 100):
                    latency.append(
                        {
                            "store": name,
                            "via": "python",
                            "batch": batch,
                            "clients": 1,
                            **python_latency(store, size, args.features, batch),
                        }
                    )
                store_args = (
                    [f"online.sqlite.path={tmp / f'online_{size}.db'}"]
                    if name == "sqlite"
                    else ["online=redis", f"online.redis.port={redis_port}", f"online.redis.key_prefix=bench{size}"]
                )
                process, port = serve(tmp, store_args)
                try:
                    for batch in (1, 100):
                        for clients in (1, 8):
                            latency.append(
                                {
                                    "store": name,
                                    "via": "http",
                                    "batch": batch,
                                    "clients": clients,
                                    **http_latency(port, size, args.features, batch, clients, wrk),
                                }
                            )
                finally:
                    process.send_signal(signal.SIGINT)
                    process.wait(timeout=30)
    finally:
        spark.stop()
        redis.terminate()
    write_report(Path(args.out), args.features, materialized, latency)


def write_report(path: Path, features: int, materialized: list[dict], latency: list[dict]) -> None:
    lines = [
        "# Online features benchmark",
        "",
        f"`scripts/bench_online.py` on {os.cpu_count()} cores, Python {sys.version.split()[0]}, local[2]; "
        f"{features} double features per entity; loopback only. Each latency figure is the median of three runs "
        "after a warm-up; HTTP load from `wrk` (one thread) against `scripts/serve` (one uvicorn process).",
        "",
        "## Materialization (Spark computes the values as of a time; the store write is one atomic write per group)",
        "",
        "| store | entities | run | seconds | entities written | entities/s |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in materialized:
        lines.append(
            f"| {r['store']} | {r['entities']:,} | {r['run']} | {r['seconds']:.1f} | {r['written']:,} | "
            f"{r['written'] / r['seconds']:,.0f} |"
        )
    lines += [
        "",
        "## Lookups",
        "",
        "| store | via | entities per request | clients | p50 ms | p95 ms | p99 ms | requests/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in latency:
        lines.append(
            f"| {r['store']} | {r['via']} | {r['batch']} | {r['clients']} | {r['p50']:.2f} | {r['p95']:.2f} | "
            f"{r['p99']:.2f} | {r['rps']:,.0f} |"
        )
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"materialized": materialized, "latency": latency}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
