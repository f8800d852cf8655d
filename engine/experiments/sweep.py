"""A feature-set sweep: plan the trials, run them on Ray (whose tasks read the variants' pinned Delta
versions; variants on the same version and filters share one read) or serially, rank them and record
everything in MLflow under one parent run."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import mlflow
import pandas as pd

from engine.config.experiment import ExperimentConfig
from engine.experiments.dataset import TableVersion, VariantsRead
from engine.experiments.models import METRICS
from engine.experiments.runner import ray_runtime, run_on_ray, run_serially
from engine.experiments.space import Trial, plan_trials
from engine.experiments.tracking import leaderboard_table, log_best_model, log_leaderboard, log_trial
from engine.experiments.trials import TrialResult, TrialSpec

log = logging.getLogger("engine.experiments")


@dataclass(frozen=True)
class VariantData:
    """Where a variant's trials read (a pinned table version) and the feature columns they use."""

    table: TableVersion
    features: list[str]
    filters: list[tuple] = field(default_factory=list)


@dataclass(frozen=True)
class SweepResult:
    """The sweep's MLflow run, its trials best first (failed last) and the leaderboard table."""

    run_id: str
    metric: str
    results: list[TrialResult]
    leaderboard: pd.DataFrame
    model_uri: str | None = None

    @property
    def best(self) -> TrialResult | None:
        return next((r for r in self.results if not r.failed), None)

    @property
    def failed(self) -> list[TrialResult]:
        return [r for r in self.results if r.failed]


def rank(results: list[TrialResult], metric: str) -> list[TrialResult]:
    """Scored trials best first (ties by trial number), failed ones last."""
    loss = METRICS[metric].loss
    return sorted(results, key=lambda r: (r.failed, loss(r.score or 0.0), r.trial.number))


def _reads(variants: dict[str, VariantData], trials: list[Trial]) -> list[VariantsRead]:
    """The planned variants grouped by table version and filters: each group is read once."""
    groups: dict[tuple, VariantsRead] = {}
    for name in sorted({t.variant for t in trials}):
        data = variants[name]
        read = groups.setdefault((data.table, repr(data.filters)), VariantsRead(data.table, {}, tuple(data.filters)))
        read.features[name] = tuple(data.features)
    return list(groups.values())


def run_sweep(cfg: ExperimentConfig, variants: dict[str, VariantData], *, parallel: bool = True) -> SweepResult:
    """Run the configured sweep over `variants` in one MLflow run (nested in the active run, if any)."""
    trials = plan_trials(cfg, {name: data.features for name, data in variants.items()})
    spec = TrialSpec(cfg.label, cfg.metric, cfg.split, cfg.seed)
    where = f"Ray at {cfg.ray_address}" if cfg.ray_address else f"{cfg.num_cpus} local CPUs"
    log.info(
        "experiment %s: %d trials (%s search) over %d variants, %s on %s",
        cfg.name,
        len(trials),
        cfg.search,
        len({t.variant for t in trials}),
        cfg.metric,
        where if parallel else "one core (serial)",
    )
    with mlflow.start_run(run_name=f"sweep-{cfg.name}", nested=mlflow.active_run() is not None) as run:
        mlflow.log_params(
            {
                "search": cfg.search,
                "trials": len(trials),
                "metric": cfg.metric,
                "seed": cfg.seed,
                "split.time_column": cfg.split.time_column,
                "split.valid_fraction": cfg.split.valid_fraction,
                "split.valid_from": cfg.split.valid_from or "",
                "ray_address": cfg.ray_address or "local",
            }
        )
        reads = _reads(variants, trials)
        with ray_runtime(cfg) if parallel else nullcontext():
            results = run_on_ray(reads, trials, spec, cfg) if parallel else run_serially(reads, trials, spec)
        ranked = rank(results, cfg.metric)
        versions = {name: data.table for name, data in variants.items()}
        for result in ranked:
            log_trial(result, versions[result.trial.variant], cfg.metric)
        frame = leaderboard_table(ranked, versions, cfg.metric)
        log_leaderboard(frame, cfg.metric)
        sweep = SweepResult(run.info.run_id, cfg.metric, ranked, frame)
        mlflow.log_metrics({"trials_scored": len(ranked) - len(sweep.failed), "trials_failed": len(sweep.failed)})
        if sweep.best is not None:
            sweep = replace(sweep, model_uri=log_best_model(sweep.best, cfg.metric))
    return sweep
