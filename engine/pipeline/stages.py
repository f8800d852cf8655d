"""Stage bookkeeping: each stage is timed, logged and traced (one span)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from engine.observability.tracing import span

T = TypeVar("T")
log = logging.getLogger("engine.pipeline")


@dataclass
class StageRun:
    """One stage as it ran: wall time, rows produced, and bytes Spark read from storage meanwhile."""

    name: str
    seconds: float
    rows: int | None = None
    bytes_read: int | None = None


@dataclass
class StageLog:
    """Timings and row counts of the stages as they ran."""

    runs: list[StageRun] = field(default_factory=list)
    input_bytes: Callable[[], int | None] = lambda: None

    def run(self, name: str, step: Callable[[], T], rows: Callable[[T], int | None] | None = None) -> T:
        """Run one stage, record its wall time, (when given) the rows it produced, and Spark's input bytes."""
        started, before = time.perf_counter(), self.input_bytes()
        log.info("stage %s started", name)
        with span(f"stage {name}", stage=name) as current:
            result = step()
            seconds, after = time.perf_counter() - started, self.input_bytes()
            read = after - before if before is not None and after is not None else None
            stage = StageRun(name, seconds, rows(result) if rows else None, read)
            if current is not None and stage.rows is not None:
                current.set_attribute("rows", stage.rows)
        self.runs.append(stage)
        counted = f", {stage.rows:,} rows" if stage.rows is not None else ""
        read = f", Spark read {stage.bytes_read / 2**20:,.1f} MiB" if stage.bytes_read else ""
        log.info("stage %s done in %.1f s%s%s", name, stage.seconds, counted, read)
        return result
