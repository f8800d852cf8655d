"""Sweeps on a real Ray cluster on loopback: a head node and a second node, joined in token mode, with
this process as the sweep's driver, connected through `experiment.ray_address`.

Each node is a `ray start --block` process leading a process group of its own, so a test can kill a
node (its raylet, agents and workers) mid-sweep, and the fixture stops both whatever happens. The
token is the user's (`ray get-auth-token --generate`), which the nodes and this process all read.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
from pyspark.sql import SparkSession

from engine.config.experiment import ExperimentConfig, ModelConfig, VariantConfig
from engine.experiments.dataset import TableVersion
from engine.experiments.runner import start_ray
from engine.experiments.sweep import VariantData, run_sweep
from engine.experiments.trials import TrialResult
from engine.tracking.mlflow_runs import tracked_run
from scripts.loopback import free_port
from tests.test_experiments import SCHEMA, _config, _rows, _tracking

RAY = str(Path(sys.executable).with_name("ray"))
START_SECONDS = 60
SWEEP_SECONDS = 120
# Two long trials (a second or two each, so a node can be killed while it runs one; they start first)
# and four short ones.
MODELS = [ModelConfig(name="gradient_boosting", params={"max_iter": [1200, 200, 250], "learning_rate": [0.05]})]
# A lost node is declared dead within about a second (Ray's default takes tens of seconds).
HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "300",
    "RAY_health_check_timeout_ms": "300",
    "RAY_health_check_failure_threshold": "3",
}
VARIANTS = ("signal_count", "signal_flag")


def _processes() -> dict[int, tuple[int, int, str]]:
    """Every process: pid -> (parent pid, process group, title)."""
    found = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid, pgid = (int(f) for f in stat[stat.rindex(")") + 2 :].split()[1:3])
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            found[int(entry.name)] = (ppid, pgid, title)
    return found


@dataclass
class Node:
    """A `ray start --block` process, the leader of the node's process group."""

    process: subprocess.Popen

    def pids(self) -> list[int]:
        """The node's processes and their children (Ray starts each worker in a session of its own)."""
        table = _processes()
        group = {pid for pid, (_, pgid, _) in table.items() if pgid == self.process.pid}
        return [pid for pid, (ppid, _, _) in table.items() if pid in group or ppid in group]

    def running(self, title: str) -> bool:
        table = _processes()
        return any(table[pid][2].startswith(title) for pid in self.pids() if pid in table)

    def kill(self) -> None:
        """All the node's processes at once, as when its machine is lost."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@dataclass
class Cluster:
    """The head node at `address` (Ray's files under `temp`) and the second node, with their Ray node ids."""

    address: str
    temp: Path
    env: dict[str, str]
    head: Node
    second: Node | None = None
    ids: tuple[str, str] = ("", "")

    def start_second(self) -> None:
        """(Re)start the second node and wait until the cluster has two nodes alive."""
        self.second = _start(["--address", self.address], self.env, self.temp / "second.log")
        start_ray(ExperimentConfig(ray_address=self.address))
        try:
            deadline = time.monotonic() + START_SECONDS
            while len(alive := [n for n in ray.nodes() if n["Alive"]]) < 2:
                assert self.second.process.poll() is None, (self.temp / "second.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the second node did not join"
                time.sleep(0.2)
            head = [n["NodeID"] for n in alive if "node:__internal_head__" in n["Resources"]]
            self.ids = (*head, *(n["NodeID"] for n in alive if n["NodeID"] not in head))
        finally:
            ray.shutdown()


def _start(args: list[str], env: dict[str, str], log: Path) -> Node:
    with log.open("a") as out:
        return Node(
            subprocess.Popen(
                [RAY, "start", "--block", "--num-cpus=1", "--object-store-memory=100000000", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )


def _start_local_ray() -> None:
    """A local Ray as `ray_session` starts it."""
    ray.init(
        num_cpus=2,
        object_store_memory=500 * 2**20,
        configure_logging=False,
        include_dashboard=False,
        log_to_driver=False,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two one-CPU nodes in token mode (Ray 2.60 lets a second node join only so). A local Ray
    already running in this process (`ray_session`, for other test modules) is shut down first, as a
    process joins one Ray at a time, and started again at the end."""
    local = ray.is_initialized()
    if local:
        ray.shutdown()
    subprocess.run([RAY, "get-auth-token", "--generate"], check=True, capture_output=True)
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0", **HEALTH_CHECKS}
    port = free_port()
    head = _start(
        ["--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false"], env, temp / "head.log"
    )
    cluster = Cluster(f"127.0.0.1:{port}", temp, env, head)
    try:
        cluster.start_second()
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for node in (cluster.second, cluster.head):
            if node is not None and node.process.poll() is None:
                node.kill()
        shutil.rmtree(temp, ignore_errors=True)
        if local:
            _start_local_ray()


@pytest.fixture(scope="module")
def table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> TableVersion:
    path = str(tmp_path_factory.mktemp("cluster") / "delta")
    spark.createDataFrame(_rows(1200, 1), SCHEMA).write.format("delta").save(path)
    return TableVersion(path, 0)


def _variants(table: TableVersion) -> dict[str, VariantData]:
    return {
        "signal_count": VariantData(table, ["signal", "count"]),
        "signal_flag": VariantData(table, ["signal", "flag"]),
    }


def _sweep_config(**changes: object) -> ExperimentConfig:
    return _config(variants=[VariantConfig(name=v) for v in VARIANTS], **changes)


@pytest.fixture(scope="module")
def serial_scores(table: TableVersion, tmp_path_factory: pytest.TempPathFactory) -> dict[int, float | None]:
    """The sweep's scores, run serially in this process: what every trial scored on the cluster must match."""
    with tracked_run(_tracking(tmp_path_factory.mktemp("serial")), run_name="serial"):
        results = run_sweep(_sweep_config(models=MODELS), _variants(table), parallel=False).results
    return {r.trial.number: r.score for r in results}


def test_a_sweep_on_a_two_node_cluster_runs_on_both_and_scores_what_the_serial_run_scores(
    cluster: Cluster, table: TableVersion, tmp_path: Path, serial_scores: dict[int, float | None]
) -> None:
    """The driver connects through `experiment.ray_address`; the trials run on both nodes."""
    cfg = _sweep_config(models=MODELS, ray_address=cluster.address)
    with tracked_run(_tracking(tmp_path), run_name="cluster"):
        results = run_sweep(cfg, _variants(table)).results
    assert [r.error for r in results] == [None] * len(serial_scores)
    assert {r.trial.number: r.score for r in results} == serial_scores
    assert {r.node for r in results} == set(cluster.ids)


def _sweep_killing_the_second_node(
    cluster: Cluster, cfg: ExperimentConfig, table: TableVersion, tmp_path: Path
) -> list[TrialResult]:
    """Run the sweep in a thread on the connected runtime and kill the second node as soon as both nodes
    run a trial; the results, or an assertion error if the sweep does not end in time."""
    if cluster.second is None or cluster.second.process.poll() is not None:
        cluster.start_second()
    second = cluster.second
    start_ray(cfg)  # the sweep joins this runtime: Ray connects only from the main thread
    outcome: list[list[TrialResult] | BaseException] = []

    def sweep() -> None:
        try:
            with tracked_run(_tracking(tmp_path), run_name="cluster"):
                outcome.append(run_sweep(cfg, _variants(table)).results)
        except BaseException as err:  # reported by the test
            outcome.append(err)

    runner = threading.Thread(target=sweep, daemon=True)
    try:
        runner.start()
        deadline = time.monotonic() + SWEEP_SECONDS
        # Once both nodes run a trial, the head holds a copy of the rows its trial reads.
        while not (second.running("ray::_trial") and cluster.head.running("ray::_trial")):
            assert runner.is_alive(), outcome
            assert time.monotonic() < deadline, "the two nodes never ran trials at once"
            time.sleep(0.05)
        second.kill()
        runner.join(timeout=max(deadline - time.monotonic(), 1))
        assert not runner.is_alive(), "the sweep did not end after the node was lost"
    finally:
        ray.shutdown()
    (results,) = outcome
    if isinstance(results, BaseException):
        raise results
    return results


def test_a_lost_nodes_trials_run_again_on_the_other_node(
    cluster: Cluster, table: TableVersion, tmp_path: Path, serial_scores: dict[int, float | None]
) -> None:
    """With a retry (the default), the trial the lost node was running, and any whose rows it held,
    run again on the head node and score what the serial run scores."""
    cfg = _sweep_config(models=MODELS, ray_address=cluster.address)
    results = _sweep_killing_the_second_node(cluster, cfg, table, tmp_path)
    assert [r.error for r in results] == [None] * len(serial_scores)
    assert {r.trial.number: r.score for r in results} == serial_scores


def test_without_retries_a_lost_nodes_trials_fail_in_one_line_and_the_sweep_ends(
    cluster: Cluster, table: TableVersion, tmp_path: Path, serial_scores: dict[int, float | None]
) -> None:
    """With `task_retries: 0`, the trial the lost node was running (and any whose rows it held) fail
    with Ray's error naming the lost worker or node; every other trial scores what the serial run scores."""
    cfg = _sweep_config(models=MODELS, ray_address=cluster.address, task_retries=0)
    results = _sweep_killing_the_second_node(cluster, cfg, table, tmp_path)
    assert sorted(r.trial.number for r in results) == sorted(serial_scores)
    failed = [r for r in results if r.failed]
    assert failed and len(failed) < len(results), [r.error for r in results]
    for result in failed:
        assert re.fullmatch(r"(NodeDied|WorkerCrashed|Object\w*)Error: [^\n]*\b(node|worker)\b[^\n]*", result.error)
    assert any(f"(node {cluster.ids[1]})" in r.error for r in failed)  # the trial the lost node was running
    assert all(r.score == serial_scores[r.trial.number] for r in results if not r.failed)
