"""Sweeps on a real Ray cluster on loopback: a head node and a second node, joined in token mode.

The nodes are `ray start --block` processes, each the leader of its own process group, so the test
can kill one node (all its processes) mid-sweep, and stops both at the end whatever happens. The
sweep's driver runs in a process of its own (`tests/cluster_driver.py`) with the token in its
environment, as a user's job would: Ray reads the token mode when it loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from engine.experiments.dataset import TableVersion
from scripts.loopback import free_port
from tests.cluster_driver import main as drive
from tests.conftest import REPO
from tests.test_experiments import SCHEMA, _rows

RAY = str(Path(sys.executable).with_name("ray"))
JOIN_SECONDS = 90
SWEEP_SECONDS = 240
STORE = 200_000_000  # bytes of object store per node: the tests' tables are small


@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    head: subprocess.Popen
    node: subprocess.Popen


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [RAY, "start", "--num-cpus=1", "--disable-usage-stats", "--block", f"--object-store-memory={STORE}", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the node's processes share this group: one signal stops them all
        )


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _nodes(address: str, env: dict[str, str]) -> int:
    status = subprocess.run([RAY, "status", f"--address={address}"], env=env, capture_output=True, text=True)
    active = status.stdout.split("Pending:")[0]
    return active.count(" node_")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two one-CPU nodes in token mode (Ray lets a second node join only so), for the module: the
    node-failure test, which kills the second node, comes last."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    address = f"127.0.0.1:{free_port()}"
    head = _start(
        [
            "--head",
            f"--port={address.split(':')[1]}",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp}",
            "--include-dashboard=false",
        ],
        env,
        temp / "head.log",
    )
    node = None
    try:
        node = _start([f"--address={address}", "--node-ip-address=127.0.0.1"], env, temp / "node.log")
        deadline = time.monotonic() + JOIN_SECONDS
        while _nodes(address, env) < 2:
            if time.monotonic() > deadline or head.poll() is not None or node.poll() is not None:
                logs = " | ".join((temp / f).read_text()[-500:] for f in ("head.log", "node.log"))
                raise RuntimeError(f"the Ray cluster did not come up: {logs}")
            time.sleep(1)
        yield Cluster(address, env, head, node)
    finally:
        for process in (node, head):
            if process is not None:
                _stop(process)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> TableVersion:
    path = str(tmp_path_factory.mktemp("cluster") / "delta")
    spark.createDataFrame(_rows(1200, 1), SCHEMA).write.format("delta").save(path)
    return TableVersion(path, 0)


def _args(table: TableVersion, tmp_path: Path, models: list[dict], address: str = "") -> dict:
    return {
        "address": address,
        "path": table.path,
        "version": table.version,
        "tracking": str(tmp_path),
        "models": models,
    }


def _driver(cluster: Cluster, args: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cluster_driver", json.dumps(args)],
        cwd=REPO,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _results(driver: subprocess.Popen) -> list[dict]:
    try:
        out, err = driver.communicate(timeout=SWEEP_SECONDS)
    except subprocess.TimeoutExpired:
        driver.kill()
        raise AssertionError("the sweep did not end") from None
    assert driver.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def _serial(table: TableVersion, tmp_path: Path, models: list[dict], capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    drive(_args(table, tmp_path / "serial", models))
    return {r["trial"]: r["score"] for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}


def test_a_sweep_on_a_two_node_cluster_scores_what_the_serial_run_scores(
    cluster: Cluster, table: TableVersion, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Through `experiment.ray_address`; each node reads its variants' columns itself."""
    models = [{"name": "logistic_regression", "params": {"C": [0.1, 1.0]}}]
    on_cluster = _results(_driver(cluster, _args(table, tmp_path, models, cluster.address)))
    assert [r["error"] for r in on_cluster] == [None] * 4
    assert {r["trial"]: r["score"] for r in on_cluster} == _serial(table, tmp_path, models, capsys)


def _tasks_on(node: subprocess.Popen) -> list[int]:
    """The node's worker processes running one of the sweep's tasks: Ray starts each worker in a session of
    its own, as a child of the node's raylet (which is in the node's process group)."""
    listing = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in listing.splitlines() if len(line.split(None, 3)) == 4]
    group = {int(pid): int(pgid) for pid, _, pgid, _ in rows}
    tasks = ("ray::run_trial", "ray::prepare_variant")
    return [int(pid) for pid, ppid, _, args in rows if args.startswith(tasks) and group.get(int(ppid)) == node.pid]


def _kill_node(node: subprocess.Popen) -> None:
    """The node and its workers at once, as when its machine is lost."""
    for worker in _tasks_on(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
    _stop(node)


def test_a_node_dying_mid_sweep_ends_in_a_result_for_every_trial(
    cluster: Cluster, table: TableVersion, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The second node is killed (all its processes) while it runs a task: the sweep still ends, every
    trial has a result, and each one either scored what the serial run scores or failed with Ray's error."""
    models = [{"name": "gradient_boosting", "params": {"max_iter": [100, 150, 200, 250], "learning_rate": [0.1]}}]
    driver = _driver(cluster, _args(table, tmp_path, models, cluster.address))
    deadline = time.monotonic() + 90
    while not _tasks_on(cluster.node):
        assert driver.poll() is None, driver.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the second node never ran a task"
        time.sleep(0.1)
    _kill_node(cluster.node)
    results = _results(driver)
    serial = _serial(table, tmp_path, models, capsys)
    assert sorted(r["trial"] for r in results) == sorted(serial)
    for result in results:
        assert result["score"] == serial[result["trial"]] if result["error"] is None else result["score"] is None
    assert any(r["error"] is None for r in results)
