"""The concise console summary of a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.config.quality import GateAction
from engine.quality.states import DecidedBy, Outcome
from jobs.results import FeaturesRun, MaterializeRun, SuggestRun, TrainingSetRun, ValidateRun, VersionRun

if TYPE_CHECKING:
    from engine.experiments.sweep import SweepResult
    from engine.pipeline.runner import JobResult
    from engine.pipeline.stages import StageLog
    from engine.quality.verify import ValidationReport


def _stages(stages: StageLog) -> list[str]:
    return ["stages:"] + [
        f"  {s.name:<18}{s.seconds:>8.1f} s" + (f"{s.rows:>12,} rows" if s.rows is not None else "")
        for s in stages.runs
    ]


def _leaderboard(sweep: SweepResult | None, top: int = 5) -> list[str]:
    if sweep is None:
        return []
    if not sweep.results:
        return [f"experiment:    no trials (no variant could be served; MLflow run {sweep.run_id})"]
    scored = len(sweep.results) - len(sweep.failed)
    lines = [f"experiment:    {scored} trials scored, {len(sweep.failed)} failed (MLflow run {sweep.run_id})"]
    shown = [*sweep.results[: min(top, scored)], *sweep.failed]
    width = max(len(r.trial.name) for r in shown) + 2
    for r in shown:
        score = f"{sweep.metric} {r.score:.4f}  ({len(r.trial.features)} features)" if not r.failed else "failed"
        lines.append(f"  {r.trial.name:<{width}}{score}" + (f": {r.error}" if r.failed else ""))
    if scored > top:
        lines.append(f"  ... {scored - top} more in the leaderboard artifacts (leaderboard.csv, .md, .png)")
    return lines


def _quality(report: ValidationReport) -> list[str]:
    failed = report.failed
    lines = [f"checks:        {len(report.checks) - len(failed)} passed, {len(failed)} failed (verified with Deequ)"]
    lines += [f"  failed {c.name} [{c.severity}, {c.action}]: {c.message or c.detail}" for c in failed]
    sampled = sum(1 for c in report.checks if c.decided_by == DecidedBy.SAMPLE)
    lines.append(f"               {sampled} decided on a sample, {len(report.checks) - sampled} on the full data")
    if sum(report.malformed.values()) or sum(report.quarantined.values()):
        lines.append(
            f"quarantined:   {sum(report.quarantined.values()):,} rows ({sum(report.malformed.values()):,} malformed)"
        )
    lines += [f"anomaly:       {a.message}" for a in report.anomalies]
    drifted = [d.feature for d in report.drift if d.drifted]
    leaking = [d.feature for d in report.drift if d.leakage]
    if report.drift:
        lines.append(
            f"drift:         {len(drifted)} of {len(report.drift)} features drifted"
            + (f" ({', '.join(drifted[:5])}{', ...' if len(drifted) > 5 else ''})" if drifted else "")
        )
    if leaking:
        lines.append(f"leakage:       {', '.join(leaking)} (predict the label alone, or known after it)")
    return lines


def _features(result: JobResult) -> str:
    run = result.typed(FeaturesRun)
    published, commit = run.published, run.commit
    report = published.report
    lines = ["", "featurelake run summary", *_stages(result.stages)]
    lines.append("rows read:     " + ", ".join(f"{s.name} {s.rows:,}" for s in run.sources.values()))
    lines += _quality(report)
    lines.append(f"report:        {published.html_path}")
    if commit and report.outcome == Outcome.USE_CACHED_FEATURES:
        stale = ", ".join(c.name for c in report.failed if c.action == GateAction.USE_CACHED_FEATURES)
        lines.append(f"features:      source stale ({stale}); served the last good version instead of computing")
        lines.append(f"delta table:   {commit.path} (version {commit.version}, cached)")
    elif commit:
        lines.append(f"features:      {commit.rows_written:,} rows written")
        lines.append(f"delta table:   {commit.path} (version {commit.version})")
        if run.prepared.pipeline.label:
            lines.append(f"training set:  scripts/run job=training_set training_set.spine.version={commit.version}")
    lines.append(f"mlflow run:    {result.run_id}")
    lines += _leaderboard(run.sweep)
    lines.append(f"run record:    {result.record_path}")
    return "\n".join(lines)


def _training_set(result: JobResult) -> str:
    run = result.typed(TrainingSetRun)
    commit, features, skew = run.commit, run.planned.features, run.skew
    lines = ["", "featurelake training set", *_stages(result.stages), "inputs (pinned):"]
    lines += [f"  {p.role:<9}{p.name:<20}{p.path} @ version {p.version}" for p in run.inputs]
    written = "already written, skipped" if commit.skipped else f"{commit.rows_written:,} rows written"
    lines.append(f"training set:  {written}, {len(features)} features")
    skewed = [d.feature for d in skew if d.drifted]
    if skew:
        lines.append(
            f"skew:          {len(skewed)} of {len(skew)} features differ from the serving tables"
            + (f" ({', '.join(skewed[:5])})" if skewed else "")
        )
    lines.append(f"delta table:   {commit.path} (version {commit.version})")
    lines.append(f"mlflow run:    {result.run_id}")
    lines += _leaderboard(run.sweep)
    lines.append(f"run record:    {result.record_path}")
    return "\n".join(lines)


def _materialize(result: JobResult) -> str:
    run = result.typed(MaterializeRun)
    plan, served = run.prepared, run.served
    lines = ["", "featurelake materialization", *_stages(result.stages)]
    lines.append(f"table:         {plan.table} @ version {served.version}, as of {served.as_of.isoformat()}")
    for w in run.written:
        how = "changed entities" if w.incremental else "all entities"
        lines.append(f"  {w.group:<16}{w.rows_written:>10,} written, {w.deleted:,} removed ({how})")
    lines.append(f"online store:  {plan.store.location}")
    lines.append("serve:         scripts/serve")
    lines.append(f"mlflow run:    {result.run_id}")
    return "\n".join(lines)


def _version(result: JobResult) -> str:
    action = result.typed(VersionRun).result
    return "\n".join(["", f"featurelake version {action.action}: {action.table}", *action.lines])


def _validate(result: JobResult) -> str:
    run = result.typed(ValidateRun)
    published = run.published
    report = published.report
    lines = ["", "featurelake validation summary", *_stages(result.stages)]
    lines.append("rows:          " + ", ".join(f"{d} {n:,}" for d, n in report.rows.items()))
    lines += _quality(report)
    lines.append(f"passed rows:   {run.passed.passed_rows:,}")
    if run.quarantine:
        lines.append(f"quarantine:    {run.quarantine.path} (version {run.quarantine.version})")
    if run.output:
        lines.append(f"output:        {run.output.path} (version {run.output.version})")
    lines.append(f"report:        {published.html_path}")
    lines.append(f"mlflow run:    {result.run_id}")
    return "\n".join(lines)


def _suggest(result: JobResult) -> str:
    run = result.typed(SuggestRun)
    suggested, source, path = run.suggested, run.source, run.written.path
    lines = ["", f"featurelake suggested checks for {source.name} ({suggested.rows:,} rows profiled by Deequ)"]
    lines += [
        f"  {p.name:<16}{p.type:<10}{p.completeness:>8.1%} complete{p.approx_distinct:>10,} distinct (approx)"
        for p in suggested.profiles
    ]
    left_out = f"; left out, not holding on this data: {', '.join(suggested.left_out)}" if suggested.left_out else ""
    lines.append(
        f"checks:        {len(suggested.checks)} from {len(suggested.suggestions)} Deequ suggestions{left_out} "
        f"-> {path}"
    )
    lines.append(f"validate:      scripts/run job=validate validate.checks_file={path}")
    return "\n".join(lines)


SUMMARIES: dict[str, Callable[[JobResult], str]] = {
    "features": _features,
    "training_set": _training_set,
    "version": _version,
    "materialize": _materialize,
    "validate": _validate,
    "suggest_checks": _suggest,
}


def summary(result: JobResult) -> str:
    """The console summary of a finished run, by its job."""
    return SUMMARIES[result.job](result)
