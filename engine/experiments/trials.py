"""Trials: a variant's rows are read and split by time once, into float matrices its trials share; a
trial fits one model on them and scores it on the validation rows.

A trial runs on one core (its math libraries are held to one thread), so parallelism comes from
running trials side by side. A failure, of the variant's rows or of the trial, is the trial's
result, never the sweep's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from engine.config.experiment import SplitConfig
from engine.errors import FeaturelakeError, describe
from engine.experiments.dataset import ColumnsRead, time_split
from engine.experiments.models import METRICS, build_model, predict
from engine.experiments.space import Trial

EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a sweep shares: the label, the metric, the split and the seed."""

    label: str
    metric: str
    split: SplitConfig
    seed: int


@dataclass(frozen=True)
class VariantRows:
    """A variant's training and validation rows: features as float64 (a null as NaN, a boolean as
    0/1), in the order of `features`. Ray shares the arrays with every trial without copying."""

    features: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray

    def frame(self, x: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(x, columns=list(self.features), copy=False)


@dataclass(frozen=True)
class TrialResult:
    """A trial's score (None when it failed, with the error), row counts, time and fitted model."""

    trial: Trial
    score: float | None
    train_rows: int = 0
    valid_rows: int = 0
    seconds: float = 0.0
    error: str | None = None
    model: Any = None
    example: pd.DataFrame | None = None

    @property
    def failed(self) -> bool:
        return self.score is None


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(column, pa.float64()).to_numpy()


def prepare_rows(data: pa.Table, features: tuple[str, ...], spec: TrialSpec) -> VariantRows | str:
    """Split a variant's rows by time and convert its features; the error text when that fails."""
    try:
        frame = data.select([spec.label, spec.split.time_column]).to_pandas()
        train, valid = time_split(frame, spec.label, spec.split)
        if train.empty or valid.empty:
            raise ValueError(f"the time split left {len(train)} training and {len(valid)} validation rows")
        matrix = np.column_stack([_floats(data.column(f)) for f in features])
        positions = train.index.to_numpy(), valid.index.to_numpy()
        return VariantRows(
            features,
            matrix[positions[0]],
            train[spec.label].to_numpy(),
            matrix[positions[1]],
            valid[spec.label].to_numpy(),
        )
    except Exception as err:  # the variant's trials report it
        return describe(err)


def prepare_variant(source: ColumnsRead, features: tuple[str, ...], spec: TrialSpec) -> VariantRows | str:
    """Read a variant's columns where this runs (a Ray task, or the driver when serial), then split and
    convert them; the error text when either fails, which the variant's trials report."""
    try:
        data = source.read()
    except FeaturelakeError as err:
        return describe(err)
    return prepare_rows(data, features, spec)


def run_trial(rows: VariantRows | str, trial: Trial, spec: TrialSpec) -> TrialResult:
    """Fit and score one trial on its variant's rows; errors are returned, not raised."""
    if isinstance(rows, str):
        return TrialResult(trial, None, error=rows)
    started = time.perf_counter()
    try:
        if METRICS[spec.metric].task == "classification" and (
            len(np.unique(rows.y_train)) < 2 or len(np.unique(rows.y_valid)) < 2
        ):
            raise ValueError("both splits need both label classes")
        with threadpool_limits(limits=1):
            model = build_model(trial.model, spec.metric, trial.params, spec.seed)
            model.fit(rows.frame(rows.x_train), rows.y_train)
            valid = rows.frame(rows.x_valid)
            score = METRICS[spec.metric].score(rows.y_valid, predict(model, spec.metric, valid))
        return TrialResult(
            trial,
            score,
            len(rows.y_train),
            len(rows.y_valid),
            time.perf_counter() - started,
            model=model,
            example=valid.head(EXAMPLE_ROWS).copy(),
        )
    except Exception as err:  # a trial's failure is its result, never the sweep's
        return TrialResult(trial, None, seconds=time.perf_counter() - started, error=describe(err))
