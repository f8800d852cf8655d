"""Run a sweep's trials: as Ray tasks on every local core or on a running Ray cluster, or serially.

On Ray the driver holds no feature rows: one task per group of variants on the same table version
and filters reads their columns with delta-rs on whichever node runs it, splits and converts them,
and returns one object per variant; the variant's trials get it by reference and share it through
Ray's object store without copying. Reads and trials are placed with Ray's SPREAD strategy, so all
of a cluster's nodes take part. Serially, the same read runs in the driver.

A node that dies takes its running tasks and the objects it holds with it. Each task runs again up
to `experiment.task_retries` times on a live node, and Ray rebuilds a lost variant's rows by running
its read again; a trial whose task still fails, or whose rows cannot be rebuilt, is recorded as
failed with Ray's error in one line, and the others go on. The console shows progress as trials
finish: done, running, queued, failed, and the best score so far.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import ray
from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
from ray.exceptions import ObjectLostError, RayError, RayTaskError

import engine
from engine.config.experiment import ExperimentConfig
from engine.errors import ClusterError, describe, first_line
from engine.experiments.dataset import VariantsRead
from engine.experiments.models import METRICS
from engine.experiments.space import Trial
from engine.experiments.trials import TrialResult, TrialSpec, VariantRows, prepare_variants, run_trial

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


def _prepare(read: VariantsRead, spec: TrialSpec) -> VariantRows | str | list[VariantRows | str]:
    """`prepare_variants` as a Ray task of one return per variant (Ray returns a single one as itself)."""
    rows = prepare_variants(read, spec)
    return rows if len(rows) > 1 else rows[0]


def _trial(rows: VariantRows | str, trial: Trial, spec: TrialSpec) -> TrialResult:
    """`run_trial` as a Ray task: the result names the node that ran it."""
    return replace(run_trial(rows, trial, spec), node=ray.get_runtime_context().get_node_id())


def _ray_failure(error: RayError) -> str:
    """Why Ray could not finish a trial's task, in one line: its error type and first sentence, with the
    lost node's id when Ray names one (Ray's messages go on with advice on where to look)."""
    if isinstance(error, RayTaskError):
        return describe(error.cause)
    if isinstance(error, ObjectLostError):
        return f"{type(error).__name__}: the trial's rows or result were lost with the node that held them"
    node = re.search(r"node ID: (\w+)", str(error))
    return f"{type(error).__name__}: {first_line(error).split('. ')[0]}" + (f" (node {node[1]})" if node else "")


def run_on_ray(
    reads: list[VariantsRead], trials: list[Trial], spec: TrialSpec, cfg: ExperimentConfig
) -> list[TrialResult]:
    """Every group's read and every trial as one-CPU Ray tasks; a trial whose task fails past its
    retries (a crashed worker, a lost node, rows lost with it) is recorded as failed."""
    progress = Progress(len(trials), spec.metric)
    options = {"num_cpus": 1, "max_retries": cfg.task_retries, "scheduling_strategy": "SPREAD"}
    with ray_runtime(cfg):
        prepare = ray.remote(**options)(_prepare)
        rows: dict[str, ray.ObjectRef] = {}
        for read in reads:
            refs = prepare.options(num_returns=len(read.features)).remote(read, spec)
            rows |= dict(zip(read.features, refs if len(read.features) > 1 else [refs], strict=True))
        slots = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        task = ray.remote(**options)(_trial)
        pending = {task.remote(rows[t.variant], t, spec): t for t in sorted(trials, key=expected_cost)}
        results: dict[int, TrialResult] = {}
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            trial = pending.pop(ready)
            try:
                result = ray.get(ready)
            except RayError as err:  # the task itself failed (a crashed worker, a lost node), not the trial's code
                result = TrialResult(trial, None, error=_ray_failure(err))
            results[trial.number] = result
            progress.record(result, len(pending), slots)
    return [results[t.number] for t in trials]


def run_serially(reads: list[VariantsRead], trials: list[Trial], spec: TrialSpec) -> list[TrialResult]:
    """The same trials one after another in this process (the baseline that Ray is measured against)."""
    progress = Progress(len(trials), spec.metric)
    rows = {name: r for read in reads for name, r in zip(read.features, prepare_variants(read, spec), strict=True)}
    results = []
    for i, trial in enumerate(trials, 1):
        results.append(run_trial(rows[trial.variant], trial, spec))
        progress.record(results[-1], len(trials) - i, 1)
    return results
