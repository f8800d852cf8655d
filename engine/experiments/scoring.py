"""Score feature sets over one pinned Delta version on Ray, each variant logged as a nested MLflow run."""

from __future__ import annotations

from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from pyspark.sql import SparkSession

from engine.config.schema import ExperimentConfig
from engine.experiments.sweep import TrialResult, leaderboard, plan_trials, run_trials
from engine.sinks.delta import Commit


def score_version(
    spark: SparkSession,
    cfg: ExperimentConfig,
    commit: Commit,
    feature_columns: list[str],
    label: str,
    time_column: str,
) -> list[TrialResult]:
    """Run the configured variants on the Parquet files of `commit`'s version; return the leaderboard."""
    uris = spark.read.format("delta").option("versionAsOf", commit.version).load(commit.path).inputFiles()
    files = [url2pathname(urlparse(u).path) if u.startswith("file:") else u for u in uris]
    trials = plan_trials(list(cfg.variants), feature_columns)
    results = leaderboard(run_trials(files, trials, label, time_column, cfg))
    for result in results:
        with mlflow.start_run(run_name=result.variant, nested=True):
            mlflow.log_params(
                {
                    "variant": result.variant,
                    "model": cfg.model,
                    "n_features": len(result.features),
                    "delta_path": commit.path,
                    "delta_version": commit.version,
                }
            )
            mlflow.log_text("\n".join(result.features), "features.txt")
            if result.auc is not None:
                mlflow.log_metrics(
                    {"auc": result.auc, "train_rows": result.train_rows, "valid_rows": result.valid_rows}
                )
            else:
                mlflow.set_tag("error", result.error or "")
    table = "| rank | variant | auc | features | error |\n|---|---|---|---|---|\n" + "".join(
        f"| {i} | {r.variant} | {'' if r.auc is None else f'{r.auc:.4f}'} | {len(r.features)} | {r.error or ''} |\n"
        for i, r in enumerate(results, 1)
    )
    mlflow.log_text(table, "leaderboard.md")
    return results
