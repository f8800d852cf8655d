"""MLflow edge: one run per job, nested runs per experiment trial."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import mlflow
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Run

from engine.config.schema import FeaturelakeConfig, JobConfig, TrackingConfig
from engine.observability.context import current_pipeline


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
        # An empty location leaves artifacts where the store puts them (Databricks manages its own).
        location = Path(cfg.artifact_location).resolve().as_uri() if cfg.artifact_location else None
        mlflow.create_experiment(cfg.experiment_name, artifact_location=location)
    mlflow.set_experiment(cfg.experiment_name)
    with mlflow.start_run(run_name=run_name) as run:
        pipeline = current_pipeline()
        if pipeline is not None:  # the run's metrics are logged to it when the pipeline ends
            mlflow.set_tag("pipeline_id", pipeline.pipeline_id)
            pipeline.mlflow_run_ids.append(run.info.run_id)
        yield run


def config_hash(cfg: FeaturelakeConfig) -> str:
    """A short, stable hash of the whole config: part of every commit's metadata and write identity."""
    return hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]


def log_delta_input(path: str, version: int, name: str, context: str) -> None:
    """Log a Delta table version as a dataset input of the active run (lineage), without profiling it."""
    digest = hashlib.sha256(f"{path}@{version}".encode()).hexdigest()[:16]
    # The version as a string, as MLflow drops a falsy version 0.
    source = DeltaDatasetSource(path=path, delta_table_version=str(version))
    mlflow.log_input(MetaDataset(source, name=name, digest=digest), context=context)


def write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str))


def write_run_record(job: JobConfig, run_id: str, record: dict, label: str) -> Path:
    """Write the run record JSON (`<label>-<run id>.json`) under the job's record dir and attach it to the
    active run."""
    path = Path(job.run_record_dir) / f"{label}-{run_id}.json"
    write_json(path, record)
    mlflow.log_artifact(str(path), artifact_path="run_record")
    return path


def commit_metadata(cfg: FeaturelakeConfig, run_id: str) -> dict[str, str]:
    """What every Delta commit of a run carries: run id, job, config hash and code version."""
    return {
        "run_id": run_id,
        "job": cfg.job.name,
        "config_hash": config_hash(cfg),
        "code_version": metadata.version("featurelake"),
    }
