"""The pipeline run in progress: its id, metrics and tracer, reachable from any stage without passing it.

A context variable, so each run (and each test) sets and resets its own; threads the run starts
(thread pools, client libraries' workers) do not inherit it, so they see the process's run instead.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from engine.observability.metrics import PipelineMetrics


@dataclass
class Pipeline:
    """One job run as observability sees it."""

    pipeline_id: str
    job: str
    metrics: PipelineMetrics
    tracer: Tracer | None = None
    mlflow_run_ids: list[str] = field(default_factory=list)


_CURRENT: ContextVar[Pipeline | None] = ContextVar("featurelake_pipeline", default=None)
_PROCESS: list[Pipeline] = []  # the runs in progress in this process, innermost last


def current_pipeline() -> Pipeline | None:
    return _CURRENT.get() or (_PROCESS[-1] if _PROCESS else None)


def set_pipeline(pipeline: Pipeline) -> object:
    _PROCESS.append(pipeline)
    return _CURRENT.set(pipeline)


def reset_pipeline(token: object) -> None:
    pipeline = _CURRENT.get()
    _CURRENT.reset(token)  # type: ignore[arg-type]
    if pipeline in _PROCESS:
        _PROCESS.remove(pipeline)
