"""`python -m jobs.run [-h] [--cfg job] [--config-dir DIR] [job=features] [pipeline=NAME] [key=value ...]`: run a job.

Config errors are reported before Spark starts, and before any job's code is imported. Every
expected failure is one line on stderr and a non-zero exit (2 for config, 1 for data or runtime);
stack traces go to the log file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from engine.config.loader import load_config, resolved_yaml
from engine.config.paths import check_table_paths, tables_written
from engine.errors import ConfigError, FeaturelakeError, describe, first_line

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from engine.config.schema import FeaturelakeConfig
    from engine.pipeline.runner import Job

failures = logging.getLogger("featurelake.failures")  # not a console logger: traces stay in the file

# Each job's declaration, imported only when that job is selected.
JOBS = {
    "features": "engine.pipeline.features:FEATURES",
    "training_set": "engine.pipeline.training_set:TRAINING_SET",
    "validate": "engine.pipeline.validate:VALIDATE",
    "suggest_checks": "engine.pipeline.suggest:SUGGEST_CHECKS",
    "version": "engine.pipeline.versioning:VERSION",
    "materialize": "engine.pipeline.materialize:MATERIALIZE",
}


def check_job_name(name: str) -> None:
    if name not in JOBS:
        raise ConfigError(f"job.name: '{name}' is not one of {', '.join(JOBS)}")


def job_for(name: str) -> Job:
    """The declaration of job `name`, importing its module only now."""
    check_job_name(name)
    module, attribute = JOBS[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def run(cfg: FeaturelakeConfig, spark: SparkSession | None = None) -> str:
    """Run the selected job and return its console summary."""
    from engine.pipeline.runner import execute
    from jobs.summary import summary

    result = execute(job_for(cfg.job.name), cfg, spark)
    try:
        return summary(result)
    except Exception:
        failures.error("the summary of run %s failed", result.run_id, exc_info=True)
        raise


def _one_line(err: Exception) -> str:
    """What went wrong, in one line: for an error Spark raised, its deepest Spark error and root cause
    (a JVM error's own first line names only the py4j call)."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    if isinstance(err, Py4JJavaError | PySparkException):
        from engine.sources.materialize import root_cause

        return root_cause(err)
    return f"{type(err).__name__}: {first_line(err)}"


class _OneLineParser(argparse.ArgumentParser):
    """Command-line flags whose errors are one line, like every other config error."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The flags a Hydra user expects (-h, --cfg job, --config-dir DIR); the rest are overrides."""
    parser = _OneLineParser(prog="scripts/run", add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--cfg", choices=["job"])
    parser.add_argument("-cd", "--config-dir", action="append", type=Path, default=[], dest="config_dirs")
    parser.add_argument("overrides", nargs="*")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    """The command line: exit 0 (done), 1 (a run or data failure), 2 (bad config); one line on stderr on failure.
    `spark`, a session to run in (a notebook's); without it the config's session is started."""
    try:
        args = parse_arguments(list(sys.argv[1:] if argv is None else argv))
        if args.help:
            from jobs.usage import usage

            print(usage(args.config_dirs))
            return 0
        if args.cfg:
            print(resolved_yaml(args.overrides, args.config_dirs), end="")
            return 0
        cfg = load_config(args.overrides, config_dirs=args.config_dirs)
        check_job_name(cfg.job.name)
        check_table_paths(tables_written(cfg))
    except ConfigError as err:
        print(f"error: config: {err}", file=sys.stderr)
        return 2
    try:  # the job's libraries load now, before logging is set up (MLflow configures its loggers on import)
        job_for(cfg.job.name)
    except Exception as err:
        print(f"error: job {cfg.job.name} cannot be loaded: {describe(err)}", file=sys.stderr)
        return 1
    from engine.observability.logs import configure_logging

    try:
        log_file = configure_logging(Path(cfg.job.log_dir), cfg.observability.level)
    except OSError as err:
        print(f"error: job.log_dir: cannot write logs to {cfg.job.log_dir}: {err.strerror}", file=sys.stderr)
        return 2
    try:
        text = run(cfg, spark)
    except ConfigError as err:
        print(f"error: config: {err}", file=sys.stderr)
        return 2
    except FeaturelakeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # anything unexpected still gets one line; the trace is in the log
        print(f"error: {_one_line(err)} (details in {log_file})", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
