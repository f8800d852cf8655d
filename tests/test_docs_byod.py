"""Every snippet of docs/bring-your-own-data.md, run against a folder outside the repository holding the
declaration: the packaging and its spark-submit line as a person runs them, the `scripts/run` commands
through the entry point `scripts/run` calls, in this process. Only where the outputs go differs (under the
test's folder)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from engine.config.loader import load_config
from jobs.run import parse_arguments
from tests.conftest import REPO

PAGE = REPO / "docs" / "bring-your-own-data.md"
_BLOCK = re.compile(r"^```(\w+)(?: file=(\S+))?\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets(language: str) -> list[tuple[str | None, str]]:
    """The page's fenced blocks in `language`: (the file it names, its text)."""
    return [(file, text) for lang, file, text in _BLOCK.findall(PAGE.read_text()) if lang == language]


def _outputs(folder: Path) -> list[str]:
    """Overrides that put everything a run writes under `folder/output`, where the page's paths point."""
    out = folder / "output"
    return [
        f"sink.path={out / 'delta' / 'purchases_features'}",
        f"tracking.uri=sqlite:///{out / 'mlflow.db'}",
        f"tracking.artifact_location={out / 'mlartifacts'}",
        f"job.run_record_dir={out / 'runs'}",
        f"job.log_dir={out / 'logs'}",
        f"quality.report_dir={out / 'reports'}",
        f"quality.quarantine_path={out / 'delta' / 'quarantine'}",
        f"quality.metrics_path={out / 'delta' / 'quality_metrics'}",
        f"observability.metrics.textfile_dir={out / 'metrics'}",
        f"observability.tracing.console_file={out / 'logs' / 'traces.jsonl'}",
        f"resilience.state_dir={out / 'state'}",
    ]


def _run(line: str, folder: Path, cli, spark: SparkSession) -> str:
    """One command of the page: `scripts/package` from `folder`, in a process of its own; `scripts/run`
    through its entry point in this process, from the repository as `scripts/run` runs it, with `my_conf`
    made absolute as it makes it."""
    args = shlex.split(line.replace('"$PWD/my_conf"', str(folder / "my_conf")))
    if args[0] == "scripts/package":
        args[1:1] = [f"--dist={folder / 'dist'}"]
    if args[0] == "scripts/run" and "--cfg" not in args:
        args += _outputs(folder)
    if "job=training_set" in args:
        args.append(f"training_set.output.path={folder / 'output' / 'delta' / 'purchases_training'}")
    if args[0] == "scripts/run":
        args[args.index("--config-dir") + 1] = str(folder / "my_conf")
        code, out, err = cli(*args[1:], spark=spark)
        assert code == 0, f"{line}: {err}"
        return out
    result = subprocess.run([str(REPO / args[0]), *args[1:]], cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, f"{line}: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the repository holding the page's files."""
    folder = tmp_path_factory.mktemp("byod")
    for file, text in [*snippets("yaml")]:
        assert file, "every YAML block of the page names its file"
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_text(text)
    return folder


def test_the_page_declares_a_pipeline_and_runs_every_command(
    folder: Path, cli, spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = [line for _, text in snippets("bash") for line in text.strip().splitlines()]
    assert [shlex.split(c)[0] for c in commands] == ["scripts/run"] * 3 + ["scripts/package"]
    monkeypatch.chdir(REPO)
    config, run, training, package = (_run(line, folder, cli, spark) for line in commands)
    assert yaml.safe_load(config)["pipeline"]["name"] == "purchases"
    purchases = pq.read_table(REPO / "examples" / "transactions.parquet").num_rows
    assert f"features:      {purchases:,} rows written" in run
    assert f"{purchases:,} rows written" in training

    monkeypatch.chdir(folder)
    ((_, reading),) = snippets("python")
    exec(compile(reading, str(PAGE), "exec"), {})  # the page's own read of the table
    features = DeltaTable("output/delta/purchases_features", version=0).to_pandas()
    assert len(features) == purchases and features["txn_id"].is_unique
    assert {c for c in features.columns if c.startswith("customer_amount_")} == {
        f"customer_amount_{f}_{w}" for w in ("30d", "90d", "365d") for f in ("sum", "count", "mean")
    }

    submit = shlex.split(package.strip().splitlines()[-1])
    assert submit[0] == "spark-submit" and f"--config-dir={folder / 'my_conf'}" in submit
    submit[0] = str(Path(sys.executable).parent / "spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    composed = subprocess.run([*submit, "--cfg", "job"], cwd=folder, env=env, capture_output=True, text=True)
    assert composed.returncode == 0, composed.stderr[-2000:]
    resolved = yaml.safe_load(composed.stdout)
    assert resolved["pipeline"]["name"] == "purchases" and resolved["spark"]["mode"] == "cluster"


def test_the_databricks_parameters_compose_with_the_users_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (parameters,) = [yaml.safe_load(text)["parameters"] for file, text in snippets("yaml") if "databricks" in file]
    monkeypatch.chdir(folder)
    args = parse_arguments(parameters)
    cfg = load_config(args.overrides, config_dirs=args.config_dirs)
    assert (cfg.pipeline.name, cfg.spark.mode, cfg.tracking.uri) == ("purchases", "databricks", "databricks")
    assert cfg.features.groups[0].windows == ["30d", "90d", "365d"]
