"""Deployment: the wheel, the default job through spark-submit on a real standalone cluster, the Databricks bundle.

The cluster is a master and two one-core workers started from the pyspark installation on loopback;
the job is submitted with exactly the line `scripts/package` prints, and its Delta table must hold
what local mode wrote.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen

import pandas as pd
import pyspark
import pytest
import yaml
from pyspark.sql import SparkSession

from engine.config.loader import load_config
from engine.runtime.package import wheel_name
from tests.conftest import REPO

SPARK_HOME = Path(pyspark.__file__).parent
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, week_source: list[str]) -> tuple[Path, str]:
    """`scripts/package` run as a person runs it: the wheel it built and the spark-submit line it printed."""
    dist = tmp_path_factory.mktemp("dist")
    out = subprocess.run(
        [str(REPO / "scripts" / "package"), "--dist", str(dist), "--master", "MASTER", *week_source],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    (wheel,) = [line.removeprefix("wheel: ") for line in lines if line.startswith("wheel: ")]
    return Path(wheel), lines[-1]


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """A Spark standalone master and two workers (1 core, 1.5 GiB each) on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("cluster")
    port, ui = _free_port(), _free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    master = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
    master += ["--webui-port", str(ui)]
    worker = ["org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1"]
    worker += ["--cores", "1", "--memory", "1536m"]
    daemons = [master] + [
        [*worker, "--webui-port", str(_free_port()), "--work-dir", str(tmp / f"w{i}")] for i in range(2)
    ]
    processes = []
    try:
        for i, args in enumerate(daemons):
            log = (tmp / f"daemon{i}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            if i == 0:
                _wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, "master up")
        status = f"http://127.0.0.1:{ui}/json/"
        _wait(lambda: json.load(urlopen(status, timeout=2))["aliveworkers"] == 2, "two workers registered")
        yield f"spark://127.0.0.1:{port}", tmp, ui
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def test_the_wheel_holds_the_code_the_configs_and_the_entry_point(built: tuple[Path, str]) -> None:
    wheel, _ = built
    assert wheel.name == wheel_name()
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"engine/conf/{p.relative_to(REPO / 'conf')}" for p in (REPO / "conf").rglob("*.yaml")}
    assert configs <= names and "engine/conf/__init__.py" in names
    assert {"engine/runtime/session.py", "jobs/run.py"} <= names
    meta = zipfile.ZipFile(wheel)
    info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "featurelake = jobs.run:main" in meta.read(info).decode()
    requires = [
        line
        for line in meta.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode().splitlines()
        if line.startswith("Requires-Dist: pyspark")
    ]
    assert requires and all('extra == "spark"' in line for line in requires)  # never replaces a cluster's Spark


def test_the_default_job_on_a_standalone_cluster_writes_what_local_mode_writes(
    spark: SparkSession,
    first_run,
    week: pd.DataFrame,
    built: tuple[Path, str],
    standalone_cluster: tuple[str, Path, int],
    tmp_path: Path,
) -> None:
    local_cfg, _ = first_run
    master, cluster_dir, ui = standalone_cluster
    _, printed = built
    command = shlex.split(printed)
    assert command[0] == "spark-submit" and "--py-files" in command and "--jars" in command
    command[0] = str(VENV_BIN / "spark-submit")
    command[command.index("MASTER")] = master
    command += ["experiment=none", "spark.shuffle_partitions=4", "spark.app_name=featurelake-cluster-test"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env["SPARK_HOME"] = str(SPARK_HOME)
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "featurelake run summary" in run.stdout and f"{len(week):,} rows written" in run.stdout
    assert not re.search(r"\bWARN\b|\bINFO\b", run.stderr), run.stderr[-2000:]  # JVM logging went to the file
    assert (tmp_path / "output" / "logs" / "spark.log").exists()

    apps = json.load(urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5))["completedapps"]
    assert [a["name"] for a in apps] == ["featurelake-cluster-test"]
    executors = [p for worker in ("w0", "w1") for p in (cluster_dir / worker).glob("app-*/*")]
    assert {p.parts[-3] for p in executors} == {"w0", "w1"}  # both workers ran an executor

    on_cluster = spark.read.format("delta").load(str(tmp_path / "output" / "delta" / "flights_features"))
    local = spark.read.format("delta").option("versionAsOf", 0).load(local_cfg.sink.path)
    assert on_cluster.schema == local.schema
    ours = on_cluster.toPandas().sort_values("flight_id", ignore_index=True)
    theirs = local.toPandas().sort_values("flight_id", ignore_index=True)
    assert len(ours) == len(theirs) == len(week)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-12)


def _resolve(value: str, variables: dict[str, str]) -> str:
    """Substitute `${var.name}` as the Databricks CLI does (variables may refer to each other)."""
    while (match := re.search(r"\$\{var\.(\w+)\}", value)) is not None:
        value = value.replace(match[0], variables[match[1]])
    return value


def test_the_databricks_bundle_runs_the_wheel_entry_point_with_parameters_the_code_accepts() -> None:
    bundle = yaml.safe_load((REPO / "databricks.yml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    variables = {name: spec["default"] for name, spec in bundle["variables"].items()}
    (job,) = bundle["resources"]["jobs"].values()
    (task,) = job["tasks"]
    wheel_task = task["python_wheel_task"]
    assert wheel_task["package_name"] == project["name"]
    module, function = project["scripts"][wheel_task["entry_point"]].split(":")
    assert getattr(importlib.import_module(module), function) is importlib.import_module("jobs.run").main
    assert task["libraries"] == [{"whl": f"./dist/{wheel_name()}"}]
    assert bundle["artifacts"]["featurelake_wheel"]["build"] == "scripts/package"
    assert task["job_cluster_key"] in {c["job_cluster_key"] for c in job["job_clusters"]}

    parameters = [_resolve(p, variables) for p in wheel_task["parameters"]]
    cfg = load_config(parameters)  # every override names a real key with a valid value
    assert (cfg.job.name, cfg.spark.mode, cfg.tracking.uri) == ("flights", "databricks", "databricks")
    assert cfg.tracking.experiment_name.startswith("/") and cfg.tracking.artifact_location == ""
    root = _resolve("${var.root}", variables)
    written = [
        cfg.source.staging_dir,
        cfg.sink.path,
        cfg.quality.quarantine_path,
        cfg.quality.metrics_path,
        cfg.quality.report_dir,
        cfg.experiment.variants_path,
        cfg.job.run_record_dir,
        cfg.observability.metrics.textfile_dir,
        cfg.resilience.state_dir,
    ]
    assert root == "/Volumes/main/featurelake/featurelake"
    assert all(path.startswith(root + "/") for path in written), written
