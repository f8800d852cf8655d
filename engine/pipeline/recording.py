"""What the jobs record of the values their stages return, one function per kind of value, so a commit or a
sweep is recorded the same way by every job that makes one."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from engine.experiments.sweep import SweepResult
from engine.pipeline.runner import DeltaInput, Recorded
from engine.sinks.delta import Commit


def commit_recorded(commit: Commit, dataset: str | None = None, **metrics: float) -> Recorded:
    """A Delta commit: in the run record, its path and version as MLflow params, rows written (and `metrics`) as
    metrics, and, named `dataset`, the version as the run's output dataset (lineage)."""
    path = str(Path(commit.path).resolve())
    return Recorded(
        record={"delta": asdict(commit)},
        params={"delta_path": path, "delta_version": commit.version},
        metrics={"rows_written": commit.rows_written, "delta_version": commit.version, **metrics},
        inputs=(DeltaInput(path, commit.version, dataset, "features"),) if dataset else (),
    )


def sweep_recorded(sweep: SweepResult) -> Recorded:
    """A sweep as the run record keeps it: its MLflow run and the leaderboard rows."""
    rows = sweep.leaderboard.astype(object).where(sweep.leaderboard.notna(), None).to_dict(orient="records")
    record = {"run_id": sweep.run_id, "metric": sweep.metric, "best_model": sweep.model_uri, "leaderboard": rows}
    return Recorded(record={"experiment": record})
