"""The models a sweep can fit and the metrics it scores them by, each known by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, roc_auc_score, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from engine.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    """A validation metric: the task it scores and whether larger is better."""

    task: str
    greater_is_better: bool
    score: Callable[[np.ndarray, np.ndarray], float]

    def loss(self, score: float) -> float:
        """The score as a quantity to minimise: how trials are ranked."""
        return -score if self.greater_is_better else score


METRICS = {
    "auc": Metric("classification", True, lambda y, p: float(roc_auc_score(y, p))),
    "log_loss": Metric("classification", False, lambda y, p: float(log_loss(y, p, labels=[0, 1]))),
    "rmse": Metric("regression", False, lambda y, p: float(root_mean_squared_error(y, p))),
}

# name -> task -> estimator class; linear models get median imputation and scaling in front.
ESTIMATORS: dict[str, dict[str, type[BaseEstimator]]] = {
    "logistic_regression": {"classification": LogisticRegression},
    "ridge": {"regression": Ridge},
    "gradient_boosting": {
        "classification": HistGradientBoostingClassifier,
        "regression": HistGradientBoostingRegressor,
    },
}
_LINEAR = ("logistic_regression", "ridge")
_DEFAULTS = {"logistic_regression": {"max_iter": 1000}}


def _is_range(value: Any) -> bool:
    return isinstance(value, dict)


def check_model(name: str, params: dict[str, Any], metric: str, search: str) -> None:
    """Fail in one line on an unknown model, a model that does not fit the metric's task, or a bad space."""
    key = f"experiment.models.{name}"
    if name not in ESTIMATORS:
        raise ConfigError(f"{key}: unknown model; known: {', '.join(ESTIMATORS)}")
    task = METRICS[metric].task
    if task not in ESTIMATORS[name]:
        fits = [m for m, tasks in ESTIMATORS.items() if task in tasks]
        raise ConfigError(f"{key}: metric {metric} needs a {task} model ({', '.join(fits)})")
    known = ESTIMATORS[name][task]().get_params()
    for param, space in params.items():
        if param not in known or param == "random_state":
            raise ConfigError(f"{key}.params.{param}: not a settable parameter of {ESTIMATORS[name][task].__name__}")
        if _is_range(space):
            if search != "random":
                raise ConfigError(f"{key}.params.{param}: a range needs random search; grid search takes a list")
            if set(space) - {"low", "high", "log"} or not {"low", "high"} <= set(space):
                raise ConfigError(f"{key}.params.{param}: a range is {{low, high}} with an optional log: true")
            if not isinstance(space.get("log", False), bool):
                raise ConfigError(f"{key}.params.{param}.log: '{space['log']}' is not true or false")
            if not float(space["low"]) < float(space["high"]) or (space.get("log") and float(space["low"]) <= 0):
                raise ConfigError(f"{key}.params.{param}: low must be below high (and above 0 with log)")
        elif not isinstance(space, list) or not space:
            raise ConfigError(f"{key}.params.{param}: give a non-empty list of choices")


def build_model(name: str, metric: str, params: dict[str, Any], seed: int) -> BaseEstimator:
    """A fresh estimator: the named model for the metric's task with the trial's parameters."""
    estimator_class = ESTIMATORS[name][METRICS[metric].task]
    settings = {**_DEFAULTS.get(name, {}), **params}
    if "random_state" in estimator_class().get_params():
        settings["random_state"] = seed
    estimator = estimator_class(**settings)
    if name in _LINEAR:
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), estimator)
    return estimator


def predict(model: BaseEstimator, metric: str, features: Any) -> np.ndarray:
    """What the metric scores: the positive class's probability, or the predicted value."""
    if METRICS[metric].task == "classification":
        return model.predict_proba(features)[:, 1]
    return model.predict(features)
