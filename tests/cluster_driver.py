"""A sweep's driver in a process of its own, as a user's job is: Ray reads the token mode when it loads,
so a driver joining a token-mode cluster has it in its environment from the start.

    python -m tests.cluster_driver '{"address": ..., "path": ..., "version": 0, "tracking": ..., "models": [...]}'

Prints each trial's number, score and error as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.config.experiment import ModelConfig
from engine.experiments.dataset import TableVersion
from engine.experiments.sweep import VariantData, run_sweep
from engine.tracking.mlflow_runs import tracked_run
from tests.test_experiments import _config, _tracking

VARIANTS = {"signal_count": ["signal", "count"], "signal_flag": ["signal", "flag"]}


def variants(table: TableVersion) -> dict[str, VariantData]:
    return {name: VariantData(table, features) for name, features in VARIANTS.items()}


def main(args: dict) -> None:
    models = [ModelConfig(**m) for m in args["models"]]
    cfg = _config(ray_address=args.get("address", ""), models=models)
    table = TableVersion(args["path"], args["version"])
    with tracked_run(_tracking(Path(args["tracking"])), run_name="cluster-driver"):
        sweep = run_sweep(cfg, variants(table), parallel=bool(args.get("address")))
    print(json.dumps([{"trial": r.trial.number, "score": r.score, "error": r.error} for r in sweep.results]))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
