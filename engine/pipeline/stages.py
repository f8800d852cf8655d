"""Stage bookkeeping: each stage is timed, logged and traced (one span)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from engine.observability.tracing import span

T = TypeVar("T")
log = logging.getLogger("engine.pipeline")


@dataclass
class StageRun:
    name: str
    seconds: float
    rows: int | None = None


@dataclass
class StageLog:
    """Timings and row counts of the stages as they ran."""

    runs: list[StageRun] = field(default_factory=list)

    def run(self, name: str, step: Callable[[], T], rows: Callable[[T], int | None] | None = None) -> T:
        """Run one stage, record its wall time and (when given) the rows it produced."""
        started = time.perf_counter()
        log.info("stage %s started", name)
        with span(f"stage {name}", stage=name) as current:
            result = step()
            stage = StageRun(name, time.perf_counter() - started, rows(result) if rows else None)
            if current is not None and stage.rows is not None:
                current.set_attribute("rows", stage.rows)
        self.runs.append(stage)
        log.info(
            "stage %s done in %.1f s%s", name, stage.seconds, f", {stage.rows:,} rows" if stage.rows is not None else ""
        )
        return result

    def to_list(self) -> list[dict]:
        return [asdict(r) for r in self.runs]
