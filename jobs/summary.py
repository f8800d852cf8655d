"""The concise console summary of a run."""

from __future__ import annotations

from engine.pipeline.flights import RunResult
from engine.pipeline.stages import StageLog
from engine.pipeline.training_set import TrainingSetResult
from engine.pipeline.versioning import VersionResult


def _stages(stages: StageLog) -> list[str]:
    return ["stages:"] + [
        f"  {s.name:<14}{s.seconds:>8.1f} s" + (f"{s.rows:>12,} rows" if s.rows is not None else "")
        for s in stages.runs
    ]


def _leaderboard(trials: list) -> list[str]:
    if not trials:
        return []
    lines = ["experiment leaderboard (AUC, time-based split):"]
    for rank, t in enumerate(trials, 1):
        score = f"{t.auc:.4f}" if t.auc is not None else f"failed: {t.error}"
        lines.append(f"  {rank}. {t.variant:<28}{score}  ({len(t.features)} features)")
    return lines


def format_summary(result: RunResult) -> str:
    failed = result.report.failed
    lines = ["", "featurelake run summary", *_stages(result.stages)]
    lines.append("rows read:     " + ", ".join(f"{k} {v:,}" for k, v in result.rows_read.items()))
    lines.append(
        f"checks:        {len(result.report.checks) - len(failed)} passed, {len(failed)} failed"
        + (f" ({', '.join(f'{c.name} [{c.severity}]' for c in failed)})" if failed else "")
    )
    if result.commit:
        lines.append(f"features:      {result.commit.rows_written:,} rows written")
        lines.append(f"delta table:   {result.commit.path} (version {result.commit.version})")
        lines.append(
            f"training set:  scripts/run job=training_set training_set.spine.version={result.commit.version}"
        )
    lines.append(f"mlflow run:    {result.run_id}")
    lines += _leaderboard(result.trials)
    lines.append(f"run record:    {result.record_path}")
    return "\n".join(lines)


def format_training_summary(result: TrainingSetResult) -> str:
    lines = ["", "featurelake training set", *_stages(result.stages), "inputs (pinned):"]
    lines += [f"  {p.role:<9}{p.name:<20}{p.path} @ version {p.version}" for p in result.inputs]
    written = "already written, skipped" if result.commit.skipped else f"{result.commit.rows_written:,} rows written"
    lines.append(f"training set:  {written}, {len(result.features)} features")
    lines.append(f"delta table:   {result.commit.path} (version {result.commit.version})")
    lines.append(f"mlflow run:    {result.run_id}")
    lines += _leaderboard(result.trials)
    lines.append(f"run record:    {result.record_path}")
    return "\n".join(lines)


def format_version_summary(result: VersionResult) -> str:
    return "\n".join(["", f"featurelake version {result.action}: {result.table}", *result.lines])
