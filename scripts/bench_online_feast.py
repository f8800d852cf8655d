"""Feast's side of the online benchmark, run by `bench_online.py` in Feast's own virtual environment
(Feast pins libraries the project's environment cannot share).

    <feast venv>/bin/python scripts/bench_online_feast.py --parquet F --entities N --features 50 --as-of T --wrk W

The same rows as featurelake's table, as one Parquet file; a SQLite online store; `materialize` up to
the as-of time; then 1 and 100 entities x all features through the Python SDK and through
`feast serve` (one worker, worker recycling off). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency import call_latency, wrk_latency
from loopback import free_port, wait_port

STORE_YAML = """\
project: bench
registry: {folder}/registry.db
provider: local
online_store:
  type: sqlite
  path: {folder}/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def main() -> None:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    parser = argparse.ArgumentParser()
    parser.add_argument("--parquet", required=True)
    parser.add_argument("--entities", type=int, required=True)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--wrk", required=True)
    args = parser.parse_args()
    as_of = datetime.fromisoformat(args.as_of)
    folder = Path(tempfile.mkdtemp(prefix="feast-repo-"))
    (folder / "feature_store.yaml").write_text(STORE_YAML.format(folder=folder))
    store = FeatureStore(repo_path=str(folder))
    entity = Entity(name="entity", join_keys=["entity"], value_type=ValueType.INT64)
    names = [f"f{j:03d}" for j in range(args.features)]
    view = FeatureView(
        name="entity",
        entities=[entity],
        schema=[Field(name=n, dtype=Float64) for n in names],
        source=FileSource(path=args.parquet, timestamp_field="event_ts"),
        online=True,
    )
    store.apply([entity, view])
    started = time.perf_counter()
    store.materialize(start_date=as_of - timedelta(days=30), end_date=as_of)
    result = {"materialize_seconds": time.perf_counter() - started, "latency": []}
    refs = [f"entity:{n}" for n in names]
    rng = random.Random(7)
    for batch in (1, 100):
        figures = call_latency(
            lambda b=batch: store.get_online_features(
                features=refs, entity_rows=[{"entity": rng.randrange(args.entities)} for _ in range(b)]
            ).to_dict(),
            requests=3000 if batch == 1 else 30,
            warm_up=300 if batch == 1 else 10,
        )
        result["latency"].append({"via": "python", "batch": batch, "clients": 1, **figures})
    port = free_port()
    feast = str(Path(sys.executable).parent / "feast")
    command = [feast, "-c", str(folder), "serve", "-p", str(port), "--no-access-log", "--workers", "1"]
    server = subprocess.Popen(
        [*command, "--max-requests", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the server and its worker: one process group, stopped together
    )
    try:
        wait_port(port, server, timeout=120)
        for batch in (1, 100):
            body = json.dumps(
                {"features": refs, "entities": {"entity": [i * 7919 % args.entities for i in range(batch)]}}
            )
            for clients in (1, 8):
                figures = wrk_latency(args.wrk, f"http://127.0.0.1:{port}/get-online-features", body, clients)
                result["latency"].append({"via": "http", "batch": batch, "clients": clients, **figures})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
