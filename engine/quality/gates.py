"""Gates: what a failed check does to the run.

- `halt_pipeline`: nothing is written downstream; the report is still written; non-zero exit.
- `quarantine_data`: rows failing the check's row predicate (and every malformed line) are set
  aside with the names of the checks they failed; the rest continue. Passed plus quarantined
  equals the input, because both come from one tagging of the same rows.
- `use_cached_features`: the job serves the feature table's last good version.
Warning checks only warn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from engine.config.quality import CheckConfig, GateAction
from engine.quality.deequ import row_predicate
from engine.quality.states import Outcome
from engine.quality.verify import CheckResult, ValidationReport
from engine.runtime.datasets import CORRUPT

FAILED_CHECKS = "failed_checks"
MALFORMED = "malformed_record"


@dataclass(frozen=True)
class Gates:
    """The blocking failures of a report, grouped by the action they take."""

    halt: list[CheckResult]
    quarantine: list[CheckResult]
    stale: list[CheckResult]

    @property
    def outcome(self) -> Outcome:
        if self.halt:
            return Outcome.HALT
        return Outcome.USE_CACHED_FEATURES if self.stale else Outcome.CONTINUE


def gates(report: ValidationReport) -> Gates:
    blocking = [c for c in report.checks if c.blocking]
    return Gates(
        halt=[c for c in blocking if c.action == GateAction.HALT_PIPELINE],
        quarantine=[c for c in blocking if c.action == GateAction.QUARANTINE_DATA],
        stale=[c for c in blocking if c.action == GateAction.USE_CACHED_FEATURES],
    )


def tag_failures(df: DataFrame, checks: list[CheckConfig], as_of: datetime) -> DataFrame:
    """Add `failed_checks`: the names of the given row checks a row fails, and `malformed_record`."""
    reasons: list[Column] = [F.when(~row_predicate(c, as_of), F.lit(c.name)) for c in checks]
    if CORRUPT in df.columns:
        reasons.append(F.when(F.col(CORRUPT).isNotNull(), F.lit(MALFORMED)))
    if not reasons:
        return df.withColumn(FAILED_CHECKS, F.array().cast("array<string>"))
    return df.withColumn(FAILED_CHECKS, F.array_compact(F.array(*reasons)))


def count_failures(tagged: DataFrame, names: list[str]) -> tuple[int, int, dict[str, int]]:
    """Passed rows, quarantined rows and rows per failed check, in one pass."""
    failed = F.size(F.col(FAILED_CHECKS)) > 0
    per_check = [F.count_if(F.array_contains(FAILED_CHECKS, n)).alias(f"q{i}") for i, n in enumerate(names)]
    row = tagged.agg(F.count_if(~failed).alias("passed"), F.count_if(failed).alias("quarantined"), *per_check).first()
    return row["passed"], row["quarantined"], {n: row[f"q{i}"] for i, n in enumerate(names)}


def passed_rows(tagged: DataFrame) -> DataFrame:
    """The rows that failed nothing, without the bookkeeping columns."""
    kept = tagged.where(F.size(F.col(FAILED_CHECKS)) == 0).drop(FAILED_CHECKS)
    return kept.drop(CORRUPT) if CORRUPT in kept.columns else kept


def quarantine_rows(tagged: DataFrame, dataset: str, run_id: str) -> DataFrame:
    """Failed rows in the quarantine table's shape: the raw line when malformed, else the row as JSON."""
    data = [c for c in tagged.columns if c not in (FAILED_CHECKS, CORRUPT)]
    as_json = F.to_json(F.struct(*data), {"ignoreNullFields": "false"})
    raw = F.col(CORRUPT) if CORRUPT in tagged.columns else F.lit(None).cast("string")
    return tagged.where(F.size(F.col(FAILED_CHECKS)) > 0).select(
        F.lit(run_id).alias("run_id"),
        F.lit(dataset).alias("dataset"),
        F.col(FAILED_CHECKS),
        F.coalesce(raw, as_json).alias("record"),
        F.current_timestamp().alias("quarantined_at"),
    )
