"""The concise console summary of a run."""

from __future__ import annotations

from engine.pipeline.flights import RunResult


def format_summary(result: RunResult) -> str:
    failed = result.report.failed
    lines = ["", "featurelake run summary", "stages:"]
    lines += [
        f"  {s.name:<14}{s.seconds:>8.1f} s" + (f"{s.rows:>12,} rows" if s.rows is not None else "")
        for s in result.stages.runs
    ]
    lines.append("rows read:     " + ", ".join(f"{k} {v:,}" for k, v in result.rows_read.items()))
    lines.append(
        f"checks:        {len(result.report.checks) - len(failed)} passed, {len(failed)} failed"
        + (f" ({', '.join(f'{c.name} [{c.severity}]' for c in failed)})" if failed else "")
    )
    if result.commit:
        lines.append(f"features:      {result.commit.rows_written:,} rows written")
        lines.append(f"delta table:   {result.commit.path} (version {result.commit.version})")
    lines.append(f"mlflow run:    {result.run_id}")
    if result.trials:
        lines.append("experiment leaderboard (AUC, time-based split):")
        for rank, t in enumerate(result.trials, 1):
            score = f"{t.auc:.4f}" if t.auc is not None else f"failed: {t.error}"
            lines.append(f"  {rank}. {t.variant:<28}{score}  ({len(t.features)} features)")
    lines.append(f"run record:    {result.record_path}")
    return "\n".join(lines)
