"""The search space of a sweep (variants x models x hyperparameters) and the trials drawn from it."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from engine.config.experiment import ExperimentConfig, ModelConfig


@dataclass(frozen=True)
class Trial:
    """One point of the space: a variant's features, a model and its parameters."""

    number: int
    variant: str
    model: str
    params: dict[str, Any] = field(hash=False)
    features: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.number:03d}-{self.variant}-{self.model}"


def _grid(model: ModelConfig) -> list[dict[str, Any]]:
    names = sorted(model.params)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(model.params[n] for n in names))]


def _draw(space: Any, rng: random.Random) -> Any:
    """A choice from a list, or a value in a range: an integer when both ends are integers."""
    if isinstance(space, list):
        return space[rng.randrange(len(space))]
    low, high = float(space["low"]), float(space["high"])
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if space.get("log") else rng.uniform(low, high)
    if isinstance(space["low"], int) and isinstance(space["high"], int):
        return min(max(round(value), int(low)), int(high))
    return value


def plan_trials(cfg: ExperimentConfig, features: dict[str, list[str]]) -> list[Trial]:
    """The sweep's trials, in a stable order fixed by `cfg.seed`.

    Grid: every (variant, model, parameters) combination, or `trials` of them drawn without
    replacement. Random: `trials` draws; discrete spaces are drawn without replacement while
    combinations last, ranges independently.
    """
    rng = random.Random(cfg.seed)
    variants = [v for v in cfg.variants if v.name in features]  # those the caller could serve
    if not variants:
        return []
    has_range = any(isinstance(s, dict) for m in cfg.models for s in m.params.values())
    points: list[tuple[str, str, dict[str, Any]]]
    if cfg.search == "random" and has_range:
        points = []
        for _ in range(cfg.trials):
            variant = variants[rng.randrange(len(variants))].name
            model = cfg.models[rng.randrange(len(cfg.models))]
            points.append((variant, model.name, {p: _draw(s, rng) for p, s in sorted(model.params.items())}))
    else:
        points = [(v.name, m.name, params) for v in variants for m in cfg.models for params in _grid(m)]
        if cfg.trials and cfg.trials < len(points):
            points = [points[i] for i in sorted(rng.sample(range(len(points)), cfg.trials))]
    return [Trial(i, v, m, params, tuple(features[v])) for i, (v, m, params) in enumerate(points, 1)]
