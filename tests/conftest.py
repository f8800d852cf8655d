"""One real local SparkSession (with Delta) per test session, and temp-dir configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from engine.config.loader import load_config
from engine.config.schema import FeaturelakeConfig, SparkConfig
from engine.runtime.session import build_session

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    cfg = SparkConfig(shuffle_partitions=2, driver_memory="3g", jar_cache=str(REPO / ".cache" / "jars"))
    session = build_session(cfg, tmp_path_factory.mktemp("spark-logs"))
    yield session
    session.stop()


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
            *overrides,
        ]
    )
