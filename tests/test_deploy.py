"""Deployment: the wheel and the Databricks bundle. (The default job through spark-submit on a real
standalone cluster is the last test of tests/test_end_to_end.py, beside the local run it must equal.)
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
import zipfile
from pathlib import Path

import pyspark
import yaml

from engine.config.loader import load_config
from engine.runtime.jars import load_runtime
from engine.runtime.package import wheel_name
from tests.conftest import REPO

SPARK_HOME = Path(pyspark.__file__).parent
VENV_BIN = Path(sys.executable).parent


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
    deequ = load_runtime().deequ
    assert task["libraries"] == [
        {"whl": f"./dist/{wheel_name()}"},
        {"maven": {"coordinates": deequ, "exclusions": load_runtime().exclusions()}},
    ]
    (cluster,) = job["job_clusters"]
    assert cluster["new_cluster"]["spark_version"].startswith(("15.4.x-scala2.12", "16.4.x-scala2.12"))
    assert bundle["artifacts"]["featurelake_wheel"]["build"] == "scripts/package"
    assert task["job_cluster_key"] in {c["job_cluster_key"] for c in job["job_clusters"]}

    parameters = [_resolve(p, variables) for p in wheel_task["parameters"]]
    cfg = load_config(parameters)  # every override names a real key with a valid value
    assert (cfg.job.name, cfg.spark.mode, cfg.tracking.uri) == ("features", "databricks", "databricks")
    assert cfg.tracking.experiment_name.startswith("/") and cfg.tracking.artifact_location == ""
    root = _resolve("${var.root}", variables)
    written = [
        cfg.pipeline.staging_dir,
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
