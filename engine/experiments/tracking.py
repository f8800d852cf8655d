"""A sweep in MLflow: a nested run per trial, the leaderboard (CSV, markdown, PNG), the best model."""

from __future__ import annotations

import math
from importlib.metadata import version

import mlflow
import mlflow.sklearn
import pandas as pd
from matplotlib.figure import Figure
from mlflow.models import infer_signature
from skops.io import dumps, get_untrusted_types

from engine.experiments.dataset import TableVersion
from engine.experiments.models import METRICS, predict
from engine.experiments.trials import TrialResult
from engine.tracking.mlflow_runs import log_delta_input

MODEL_REQUIREMENTS = [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "numpy", "pandas", "scipy")]
LEADERBOARD_COLUMNS = [
    "rank",
    "trial",
    "variant",
    "model",
    "params",
    "score",
    "n_features",
    "train_rows",
    "valid_rows",
    "seconds",
    "delta_path",
    "delta_version",
    "error",
]


def leaderboard_table(results: list[TrialResult], tables: dict[str, TableVersion], metric: str) -> pd.DataFrame:
    """One row per trial, best first and failed trials last (`rank` empty for them)."""
    rows = [
        {
            "trial": r.trial.name,
            "variant": r.trial.variant,
            "model": r.trial.model,
            "params": ", ".join(f"{k}={v}" for k, v in sorted(r.trial.params.items())),
            "score": r.score,
            "n_features": len(r.trial.features),
            "train_rows": r.train_rows,
            "valid_rows": r.valid_rows,
            "seconds": round(r.seconds, 3),
            "delta_path": tables[r.trial.variant].path,
            "delta_version": tables[r.trial.variant].version,
            "error": r.error or "",
        }
        for r in results
    ]
    frame = pd.DataFrame(rows, columns=[c for c in LEADERBOARD_COLUMNS if c != "rank"])
    scored = frame["score"].notna().sum()
    frame.insert(0, "rank", pd.array([*range(1, scored + 1), *([None] * (len(frame) - scored))], dtype="Int64"))
    return frame.rename(columns={"score": metric})


def _markdown(frame: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.4f}" if isinstance(value, float) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _plot(frame: pd.DataFrame, metric: str) -> Figure:
    """Each scored trial as a point over its variant; the variant's best (highest or lowest) as a bar."""
    scored = frame.dropna(subset=[metric])
    variants = list(dict.fromkeys(frame["variant"]))
    figure = Figure(figsize=(max(6.0, 1.6 * len(variants)), 4.0), layout="constrained")
    axes = figure.subplots()
    positions = {v: i for i, v in enumerate(variants)}
    by_variant = scored.groupby("variant")[metric]
    best = by_variant.max() if METRICS[metric].greater_is_better else by_variant.min()
    axes.bar([positions[v] for v in best.index], best.to_numpy(), color="#c6dbef", label="best of variant")
    axes.scatter([positions[v] for v in scored["variant"]], scored[metric], color="#08519c", label="trial", zorder=3)
    axes.set_xticks(range(len(variants)), variants, rotation=20, ha="right")
    if not scored.empty:
        low, high = scored[metric].min(), scored[metric].max()
        pad = max((high - low) * 0.2, 0.01)
        axes.set_ylim(low - pad, high + pad)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} per variant ({len(scored)} scored, {len(frame) - len(scored)} failed)")
    axes.legend(loc="best")
    return figure


def log_trial(result: TrialResult, table: TableVersion, metric: str) -> None:
    """A nested run: parameters, metrics (or the error), the feature list and the Delta version read."""
    trial = result.trial
    with mlflow.start_run(run_name=trial.name, nested=True):
        mlflow.log_params(
            {
                "trial": trial.number,
                "variant": trial.variant,
                "model": trial.model,
                "n_features": len(trial.features),
                "delta_path": table.path,
                "delta_version": table.version,
                **{f"model.{k}": v for k, v in trial.params.items()},
            }
        )
        mlflow.log_text("\n".join(trial.features), "features.txt")
        log_delta_input(table.path, table.version, f"variant_{trial.variant}", "training")
        mlflow.log_metric("seconds", result.seconds)
        if result.node:
            mlflow.set_tag("ray_node", result.node)
        if result.failed:
            mlflow.set_tags({"status": "failed", "error": result.error or ""})
        else:
            mlflow.log_metrics({metric: result.score, "train_rows": result.train_rows, "valid_rows": result.valid_rows})
            mlflow.set_tag("status", "scored")


def log_leaderboard(frame: pd.DataFrame, metric: str) -> None:
    mlflow.log_text(frame.to_csv(index=False), "leaderboard.csv")
    mlflow.log_text(_markdown(frame), "leaderboard.md")
    mlflow.log_figure(_plot(frame, metric), "leaderboard.png")


def log_best_model(best: TrialResult, metric: str) -> str:
    """Log the best trial's fitted model with the signature of its float inputs; return its model URI."""
    assert best.example is not None
    signature = infer_signature(best.example, predict(best.model, metric, best.example))
    # MLflow stores the model with skops, which loads only listed types; these are scikit-learn's own.
    trusted = get_untrusted_types(data=dumps(best.model))
    info = mlflow.sklearn.log_model(
        best.model,
        name="best_model",
        signature=signature,
        input_example=best.example,
        skops_trusted_types=trusted,
        pip_requirements=MODEL_REQUIREMENTS,  # known; inferring them costs seconds per model
    )
    mlflow.log_metric(f"best_{metric}", best.score)
    mlflow.set_tags({"best_trial": best.trial.name, "best_variant": best.trial.variant, "best_model": info.model_uri})
    return info.model_uri
