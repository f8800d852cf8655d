"""Run a sweep's trials: as Ray tasks on every local core or on a running Ray cluster, or serially.

One Ray task per variant reads its columns of the pinned version (delta-rs, on whichever node runs
it), splits and converts them; its trials share the result through Ray's object store without
copying. The driver sends only where to read, never rows. Tasks are spread over the nodes (Ray's
default would pack them where the rows are, leaving other nodes idle). A node that dies takes its running tasks
and the objects it held with it: each task is retried once, elsewhere (a lost variant's rows are
read again by Ray's lineage reconstruction), and a trial that fails again is recorded as failed
with Ray's error. The console shows progress as trials finish: done, running, queued, failed, and
the best score so far.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ray
from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
from ray.exceptions import RayError

import engine
from engine.config.experiment import ExperimentConfig
from engine.errors import ClusterError, describe, first_line
from engine.experiments.dataset import ColumnsRead
from engine.experiments.models import METRICS
from engine.experiments.space import Trial
from engine.experiments.trials import TrialResult, TrialSpec, prepare_variant, run_trial

log = logging.getLogger("engine.experiments")


@dataclass
class Progress:
    """Counts of a running sweep, logged as each trial finishes."""

    total: int
    metric: str
    done: int = 0
    failed: int = 0
    best: TrialResult | None = None

    def record(self, result: TrialResult, left: int, slots: int) -> None:
        """Count a finished trial; `left` trials remain, of which up to `slots` run at once."""
        self.done += 1
        if result.failed:
            self.failed += 1
            log.info("  trial %s failed: %s", result.trial.name, result.error)
        elif self.best is None or better(result, self.best, self.metric):
            self.best = result
        best = f"{self.best.score:.4f} ({self.best.trial.name})" if self.best else "-"
        log.info(
            "  trials %d/%d done, %d running, %d queued, %d failed; best %s %s",
            self.done,
            self.total,
            min(left, slots),
            max(left - slots, 0),
            self.failed,
            self.metric,
            best,
        )


def better(a: TrialResult, b: TrialResult, metric: str) -> bool:
    """Whether trial `a` scored better than trial `b` on the metric."""
    assert a.score is not None and b.score is not None
    return METRICS[metric].loss(a.score) < METRICS[metric].loss(b.score)


def expected_cost(trial: Trial) -> tuple:
    """Sort key putting the trials expected to run longest first (boosting before linear models,
    wider variants and more iterations first), so that no long trial starts last and runs alone."""
    return trial.model != "gradient_boosting", -len(trial.features), -float(trial.params.get("max_iter", 100))


def start_ray(cfg: ExperimentConfig) -> bool:
    """Start the sweep's Ray runtime: the cluster at `ray_address` (shipping `engine` to it), or a local
    one with `num_cpus` CPUs. An already running one is kept; True when this call started one (the
    caller then stops it). Ray starts only from the main thread."""
    if ray.is_initialized():
        return False
    # Ray's own warnings (token authentication, metrics agent) belong in the log file.
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if cfg.ray_address:
        # Ray 2.60 sends its token to an explicit address only in token mode, which a local start
        # turns on by itself; this is Ray's own switch for "token mode when a token is available".
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        try:
            ray.init(address=cfg.ray_address, runtime_env={"py_modules": [engine]}, configure_logging=False, **quiet)
        except (ConnectionError, RuntimeError) as err:
            raise ClusterError(f"experiment.ray_address: no Ray at {cfg.ray_address}: {first_line(err)}") from None
    else:
        ray.init(num_cpus=cfg.num_cpus, configure_logging=False, **quiet)
    return True


def stop_ray() -> None:
    ray.shutdown()


@contextmanager
def ray_runtime(cfg: ExperimentConfig) -> Iterator[None]:
    """A Ray runtime for the sweep, started and stopped here; an already running one is reused."""
    started = start_ray(cfg)
    try:
        yield
    finally:
        if started:
            stop_ray()


# A task whose worker or node dies runs once more (a trial's own exception is its result, never retried).
TASK_RETRIES = 1


def run_on_ray(
    sources: dict[str, ColumnsRead], trials: list[Trial], spec: TrialSpec, cfg: ExperimentConfig
) -> list[TrialResult]:
    """Every variant's read and every trial as one-CPU Ray tasks; a task that fails twice (a crashed
    worker, a lost node) is recorded as a failed trial."""
    progress = Progress(len(trials), spec.metric)
    with ray_runtime(cfg):
        features = {t.variant: t.features for t in trials}
        prepare = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, scheduling_strategy="SPREAD")(prepare_variant)
        rows = {v: prepare.remote(source, features[v], spec) for v, source in sources.items()}
        slots = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, scheduling_strategy="SPREAD")(run_trial)
        pending = {task.remote(rows[t.variant], t, spec): t for t in sorted(trials, key=expected_cost)}
        results: dict[int, TrialResult] = {}
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            trial = pending.pop(ready)
            try:
                result = ray.get(ready)
            except RayError as err:  # the task itself failed (a crashed worker), not the trial's code
                result = TrialResult(trial, None, error=describe(err))
            results[trial.number] = result
            progress.record(result, len(pending), slots)
    return [results[t.number] for t in trials]


def run_serially(sources: dict[str, ColumnsRead], trials: list[Trial], spec: TrialSpec) -> list[TrialResult]:
    """The same trials one after another in this process (the baseline that Ray is measured against)."""
    progress = Progress(len(trials), spec.metric)
    features = {t.variant: t.features for t in trials}
    rows = {v: prepare_variant(source, features[v], spec) for v, source in sources.items()}
    results = []
    for i, trial in enumerate(trials, 1):
        results.append(run_trial(rows[trial.variant], trial, spec))
        progress.record(results[-1], len(trials) - i, 1)
    return results
