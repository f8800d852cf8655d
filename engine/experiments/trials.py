"""Trials: a variant's rows are read and split by time once, into float matrices its trials share; a
trial fits one model on them and scores it on the validation rows.

Variants on the same table version and filters are read together, in one delta-rs read of all their
columns, where they are prepared (a Ray task, or the driver when serial). When that read fails (a
variant names a column the table lacks), each variant is read alone, so only the one at fault fails.

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
from engine.experiments.dataset import VariantsRead, read_arrow_table, time_split
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
    """A trial's score (None when it failed, with the error), row counts, time, fitted model and the Ray
    node that ran it (empty when serial)."""

    trial: Trial
    score: float | None
    train_rows: int = 0
    valid_rows: int = 0
    seconds: float = 0.0
    error: str | None = None
    model: Any = None
    example: pd.DataFrame | None = None
    node: str = ""

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
        # Filled a column at a time: besides the Arrow columns, the rows are held once, as the two matrices.
        at_train, at_valid = train.index.to_numpy(), valid.index.to_numpy()
        x_train, x_valid = np.empty((len(at_train), len(features))), np.empty((len(at_valid), len(features)))
        for i, feature in enumerate(features):
            column = _floats(data.column(feature))
            x_train[:, i], x_valid[:, i] = column[at_train], column[at_valid]
        return VariantRows(features, x_train, train[spec.label].to_numpy(), x_valid, valid[spec.label].to_numpy())
    except Exception as err:  # the variant's trials report it
        return describe(err)


def _columns(features: tuple[str, ...], spec: TrialSpec) -> list[str]:
    return list(dict.fromkeys([*features, spec.label, spec.split.time_column]))


def _read(read: VariantsRead, spec: TrialSpec) -> list[pa.Table | str]:
    """Each variant's columns, from one read of them all or, when that fails, from a read of each alone
    (the error text for a variant whose own read fails)."""
    filters = list(read.filters)
    every = tuple(c for features in read.features.values() for c in features)
    try:
        data = read_arrow_table(read.table, _columns(every, spec), filters)
        return [data.select(_columns(f, spec)) for f in read.features.values()]
    except FeaturelakeError:
        tables: list[pa.Table | str] = []
        for features in read.features.values():
            try:
                tables.append(read_arrow_table(read.table, _columns(features, spec), filters))
            except FeaturelakeError as err:
                tables.append(describe(err))
        return tables


def prepare_variants(read: VariantsRead, spec: TrialSpec) -> list[VariantRows | str]:
    """The rows of each variant of `read`, in its order, read where this runs; the error text for a
    variant that cannot be read or split, which its trials report."""
    tables = _read(read, spec)
    return [
        data if isinstance(data, str) else prepare_rows(data, features, spec)
        for data, features in zip(tables, read.features.values(), strict=True)
    ]


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
