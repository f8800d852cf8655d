"""MLflow edge: one run per job, nested runs per experiment trial."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import mlflow
from mlflow.entities import Run

from engine.config.schema import FeaturelakeConfig, TrackingConfig


def _flatten(prefix: str, value: object) -> dict[str, str]:
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _flatten(f"{prefix}.{key}" if prefix else key, item).items()
        }
    return {prefix: str(value)[:500]}


def config_params(cfg: FeaturelakeConfig) -> dict[str, str]:
    """The config as flat MLflow parameters (lists become their text)."""
    return _flatten("", asdict(cfg))


@contextmanager
def tracked_run(cfg: TrackingConfig, run_name: str) -> Iterator[Run]:
    """Start a run in the configured store and experiment; the experiment is created on first use."""
    mlflow.set_tracking_uri(cfg.uri)
    if mlflow.get_experiment_by_name(cfg.experiment_name) is None:
        mlflow.create_experiment(cfg.experiment_name, artifact_location=Path(cfg.artifact_location).resolve().as_uri())
    mlflow.set_experiment(cfg.experiment_name)
    with mlflow.start_run(run_name=run_name) as run:
        yield run
