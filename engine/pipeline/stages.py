"""Stage bookkeeping: each stage is timed, logged and traced (one span), and the pipeline's shape is recorded."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from engine.observability.tracing import span

T = TypeVar("T")
log = logging.getLogger("engine.pipeline")


@dataclass(frozen=True)
class Stage:
    name: str
    depends_on: tuple[str, ...] = ()


@dataclass
class StageRun:
    name: str
    seconds: float
    rows: int | None = None


@dataclass
class StageLog:
    """Timings and row counts of the stages as they ran."""

    runs: list[StageRun] = field(default_factory=list)

    def run(self, name: str, step: Callable[[], T], rows: Callable[[T], int | None] = lambda _: None) -> T:
        """Run one stage, record its wall time and (when given) the rows it produced."""
        started = time.perf_counter()
        log.info("stage %s started", name)
        with span(f"stage {name}", stage=name) as current:
            result = step()
            stage = StageRun(name, time.perf_counter() - started, rows(result))
            if current is not None and stage.rows is not None:
                current.set_attribute("rows", stage.rows)
        self.runs.append(stage)
        log.info(
            "stage %s done in %.1f s%s", name, stage.seconds, f", {stage.rows:,} rows" if stage.rows is not None else ""
        )
        return result

    def to_list(self) -> list[dict]:
        return [asdict(r) for r in self.runs]


def pipeline_definition(stages: list[Stage]) -> list[dict]:
    """Stages and their dependencies, as written to the run record."""
    return [{"stage": s.name, "depends_on": list(s.depends_on)} for s in stages]
