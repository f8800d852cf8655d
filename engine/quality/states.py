"""The closed sets of states a check and a validation report take.

Both are StrEnums: each member equals (and serialises as) its lower-case string, so JSON reports,
logs and comparisons with plain strings read the same as before.
"""

from __future__ import annotations

from enum import StrEnum


class CheckStatus(StrEnum):
    """A check's verdict.

    `borderline` is transient: a sampled check whose interval straddles its bound, which is then
    measured on the full data and ends passed or failed. `warning` is only displayed: the report
    shows a failed warning-severity check as `warning` (and a drifted feature likewise).
    """

    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"
    SKIPPED = "skipped"
    BORDERLINE = "borderline"


class Outcome(StrEnum):
    """What a validation report tells the job to do, in rising gravity: a merged report takes the gravest."""

    CONTINUE = "continue"
    USE_CACHED_FEATURES = "use_cached_features"
    HALT = "halt"

    @property
    def gravity(self) -> int:
        return list(Outcome).index(self)


class DecidedBy(StrEnum):
    """What decided a check: a sample's interval, the full data, or nothing to measure (no rows)."""

    SAMPLE = "sample"
    FULL = "full"
    NO_DATA = "no data"
