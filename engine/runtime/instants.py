"""Instants as Spark and the online stores hold them: microseconds since the Unix epoch, in UTC.

Plain Python (no Spark): the feature server reads stored instants too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def epoch_micros(when: datetime) -> int:
    """Microseconds since the epoch; a naive time is read as UTC, as the session's time zone is."""
    return ((when if when.tzinfo else when.replace(tzinfo=UTC)) - EPOCH) // MICROSECOND


def from_epoch_micros(micros: int) -> datetime:
    return EPOCH + micros * MICROSECOND
