"""Latency measurement shared by the online benchmark and its competitor's side (the standard library
only): in-process calls timed one by one, and HTTP load from `wrk`, each the median of three runs
after a warm-up."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY")
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %f\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def call_latency(call: Callable[[], object], requests: int, warm_up: int = 300) -> dict:
    """p50/p95/p99 in milliseconds and calls per second of `call`, one at a time in this thread."""
    for _ in range(warm_up):
        call()
    runs = []
    for _ in range(3):
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            call()
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
    return _median(runs)


def wrk_latency(wrk: str, url: str, body: str, connections: int, seconds: int = 10) -> dict:
    """p50/p95/p99 in milliseconds and requests per second of POSTs of `body` from `connections` clients."""
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BODY": body}
    base = [wrk, "-t", "1", "-c", str(connections), "-s", str(script), url]
    subprocess.run([*base[:1], "-d", "3s", *base[1:]], env=env, capture_output=True, check=True)  # warm-up
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [*base[:1], "-d", f"{seconds}s", *base[1:]], env=env, capture_output=True, text=True, check=True
        )
        line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
        n, duration, p50, p95, p99 = (float(v) for v in line.split()[1:])
        runs.append({"p50": p50, "p95": p95, "p99": p99, "rps": n / duration})
    return _median(runs)
