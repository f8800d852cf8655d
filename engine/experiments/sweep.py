"""Feature-set experiments on Ray: each variant is scored in its own task, in parallel.

Trials read the Parquet files of one pinned Delta version with pyarrow, so Spark is not on their
path and every trial sees the same rows. A failing trial returns its error instead of raising,
so the others finish.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pyarrow.parquet as pq
import ray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from engine.config.schema import ExperimentConfig, VariantConfig


@dataclass(frozen=True)
class Trial:
    """What one variant is scored on."""

    variant: str
    features: list[str]


@dataclass(frozen=True)
class TrialResult:
    variant: str
    features: list[str]
    auc: float | None
    train_rows: int
    valid_rows: int
    seconds: float
    error: str | None = None


def plan_trials(variants: list[VariantConfig], feature_columns: list[str]) -> list[Trial]:
    """Each variant's features: the table's feature columns that start with one of its prefixes."""
    return [Trial(v.name, [c for c in feature_columns if c.startswith(tuple(v.prefixes))]) for v in variants]


def _model(name: str, seed: int):
    if name == "gradient_boosting":
        return HistGradientBoostingClassifier(random_state=seed, max_iter=100)
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=500))


def score_trial(files: list[str], trial: Trial, label: str, time_column: str, cfg: ExperimentConfig) -> TrialResult:
    """Train on the earliest `train_fraction` of labelled rows by time, report AUC on the rest."""
    started = time.perf_counter()
    try:
        if not trial.features:
            raise ValueError(f"variant {trial.variant} selects no feature column")
        table = pq.read_table(files, columns=[*trial.features, label, time_column], partitioning=None)
        frame = table.to_pandas().dropna(subset=[label]).sort_values(time_column, kind="stable")
        cut = int(len(frame) * cfg.train_fraction)
        train, valid = frame.iloc[:cut], frame.iloc[cut:]
        if train[label].nunique() < 2 or valid[label].nunique() < 2:
            raise ValueError("both splits need both label classes")
        model = _model(cfg.model, cfg.seed).fit(train[trial.features], train[label])
        auc = float(roc_auc_score(valid[label], model.predict_proba(valid[trial.features])[:, 1]))
        return TrialResult(trial.variant, trial.features, auc, len(train), len(valid), time.perf_counter() - started)
    except Exception as err:  # a trial's failure is its result, never the sweep's
        message = f"{type(err).__name__}: {err}"
        return TrialResult(trial.variant, trial.features, None, 0, 0, time.perf_counter() - started, message)


def run_trials(
    files: list[str], trials: list[Trial], label: str, time_column: str, cfg: ExperimentConfig
) -> list[TrialResult]:
    """Score all trials as parallel Ray tasks on a local Ray (started and stopped here unless one runs)."""
    started_here = not ray.is_initialized()
    if started_here:
        # Ray warns on the console about its default token authentication; keep that in the log file.
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        ray.init(
            num_cpus=cfg.num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=False,
        )
    try:
        task = ray.remote(score_trial)
        futures = [task.remote(files, trial, label, time_column, cfg) for trial in trials]
        return ray.get(futures)
    finally:
        if started_here:
            ray.shutdown()


def leaderboard(results: list[TrialResult]) -> list[TrialResult]:
    """Scored trials best first, failed ones last."""
    return sorted(results, key=lambda r: (r.auc is None, -(r.auc or 0.0)))
