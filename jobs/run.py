"""`python -m jobs.run job=flights [group=option] [key=value ...]`: run one featurelake job.

Config errors are reported before Spark starts. Every expected failure is one line on stderr
and a non-zero exit; stack traces go to the log file.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config.loader import load_config
from engine.config.schema import FeaturelakeConfig
from engine.errors import ConfigError, FeaturelakeError
from engine.observability.logs import configure_logging
from engine.observability.run import observed_pipeline
from engine.pipeline.flights import check_flights_job, run_flights
from engine.pipeline.suggest import check_suggest_job, run_suggest
from engine.pipeline.training_set import check_inputs, run_training_set
from engine.pipeline.validate import check_validate_job, run_validate
from engine.pipeline.versioning import check_version_job, run_version
from jobs.summary import (
    format_suggest_summary,
    format_summary,
    format_training_summary,
    format_validate_summary,
    format_version_summary,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class Job:
    """A job: checks that need no Spark (run first), the Spark run, and its console summary."""

    prepare: Callable[[FeaturelakeConfig], Any]
    run: Callable[..., Any]
    summary: Callable[[Any], str]


JOBS = {
    "flights": Job(check_flights_job, run_flights, format_summary),
    "training_set": Job(check_inputs, run_training_set, format_training_summary),
    "version": Job(check_version_job, run_version, format_version_summary),
    "validate": Job(check_validate_job, run_validate, format_validate_summary),
    "suggest_checks": Job(check_suggest_job, run_suggest, format_suggest_summary),
}
log_file_only = logging.getLogger("featurelake.failures")  # not a console logger: traces stay in the file


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run(cfg: FeaturelakeConfig, spark: SparkSession | None = None) -> str:
    """Run the selected job as one observed pipeline: checks that need no Spark first, then Spark.

    Without `spark`, the session the config asks for is started (and a local one stopped at the end);
    a caller that passes its own session keeps it.
    """
    job = JOBS.get(cfg.job.name)
    if job is None:
        raise ConfigError(f"job.name: '{cfg.job.name}' is not one of {', '.join(JOBS)}")
    with observed_pipeline(cfg.observability, cfg.tracking, cfg.job.name):
        try:
            prepared = job.prepare(cfg)
            if spark is not None:
                return job.summary(job.run(spark, cfg, prepared))
            from engine.runtime.session import build_session

            session = build_session(cfg.spark, Path(cfg.job.log_dir))
            try:
                return job.summary(job.run(session, cfg, prepared))
            finally:
                if cfg.spark.mode == "local":
                    session.stop()
        except Exception:
            log_file_only.error("run failed", exc_info=True)  # inside the run: the line carries its pipeline id
            raise


def main(argv: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load_config(overrides)
    except ConfigError as err:
        print(f"error: config: {err}", file=sys.stderr)
        return 2
    try:
        log_file = configure_logging(Path(cfg.job.log_dir), cfg.observability.level)
    except OSError as err:
        print(f"error: job.log_dir: cannot write logs to {cfg.job.log_dir}: {err.strerror}", file=sys.stderr)
        return 2
    try:
        summary = run(cfg)
    except ConfigError as err:
        print(f"error: config: {err}", file=sys.stderr)
        return 2
    except FeaturelakeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # anything unexpected still gets one line; the trace is in the log
        print(f"error: {type(err).__name__}: {_one_line(err)} (details in {log_file})", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
