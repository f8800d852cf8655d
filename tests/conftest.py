"""One real local SparkSession (with Delta) per test session, and temp-dir configs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from engine.config.loader import load_config
from engine.config.schema import FeaturelakeConfig, SparkConfig
from engine.observability.logs import JsonFormatter
from engine.observability.run import observed_pipeline
from engine.pipeline.flights import run_flights
from engine.runtime.session import build_session
from engine.sources.nycflights13 import locate_sources

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    cfg = SparkConfig(shuffle_partitions=2, driver_memory="3g", jar_cache=str(REPO / ".cache" / "jars"))
    session = build_session(cfg, tmp_path_factory.mktemp("spark-logs"))
    yield session
    session.stop()


def observed(cfg: FeaturelakeConfig):
    """The job's observed pipeline (pipeline id, metrics file, spans), as `jobs.run` wraps a run."""
    return observed_pipeline(cfg.observability, cfg.tracking, cfg.job.name)


@pytest.fixture(scope="session")
def first_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory):
    """The default flights job on January in local mode, observed: shared by the end-to-end and cluster tests."""
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = job_config(tmp, "source.months=[1]", "observability.tracing.sampling_ratio=1.0")
    with json_log(Path(cfg.job.log_dir) / "featurelake.log"), observed(cfg):
        return cfg, run_flights(spark, cfg, locate_sources(cfg.source))


def job_config(tmp_path: Path, *overrides: str) -> FeaturelakeConfig:
    """The flights job's config with every output under tmp_path."""
    return load_config(
        [
            f"sink.path={tmp_path / 'delta' / 'features'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            f"job.run_record_dir={tmp_path / 'runs'}",
            f"job.log_dir={tmp_path / 'logs'}",
            f"quality.report_dir={tmp_path / 'reports'}",
            f"quality.quarantine_path={tmp_path / 'delta' / 'quarantine'}",
            f"quality.metrics_path={tmp_path / 'delta' / 'quality_metrics'}",
            f"experiment.variants_path={tmp_path / 'delta' / 'variants'}",
            f"source.staging_dir={REPO / '.cache' / 'data'}",
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
