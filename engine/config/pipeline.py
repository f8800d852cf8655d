"""The declaration of a feature pipeline: sources, the entity, enrichment joins, the label and carried columns.

A pipeline YAML (`conf/pipeline/<name>.yaml`, or a user's folder given with `--config-dir`) names
everything the feature job reads; checks (`checks.<source>`), features (`features`) and the sink
(`sink`) sit beside it in their own groups. Shape checks run here; column checks need the sources'
schemas and run in `engine.pipeline.declaration`, still before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from omegaconf import MISSING

from engine.config.check_kinds import Evaluator
from engine.config.durations import duration_seconds
from engine.config.quality import FileSourceConfig, unique_names
from engine.errors import ConfigError


@dataclass
class EntityConfig:
    """The output row: one per row of the driving `source` (or per entity per period for snapshots),
    named by `keys`, at `timestamp`; its values enter windows at `known_at` (default: `timestamp`)."""

    source: str = MISSING
    keys: list[str] = field(default_factory=list)
    timestamp: str = MISSING
    known_at: str | None = None


@dataclass
class JoinConfig:
    """An as-of join: each driving row gets `columns` of the latest row of `source` with equal `keys` whose
    `timestamp` is at or before the row's time (and, with `ttl`, not older than it), as `prefix<column>`.
    A row of `source` is taken whole, so values of different rows never mix."""

    source: str = MISSING
    keys: list[str] = field(default_factory=list)
    timestamp: str = MISSING
    columns: list[str] = field(default_factory=list)
    prefix: str = ""
    ttl: str = ""

    def output_names(self) -> list[str]:
        return [f"{self.prefix}{c}" for c in self.columns]


@dataclass
class PipelineConfig:
    """One feature pipeline. `params` are the declaration's own variables (`${pipeline.params.data}`);
    `days` ([first, last], ISO, inclusive) reads only those days of every source that declares `day`."""

    name: str = MISSING
    params: dict[str, str] = field(default_factory=dict)
    sources: list[FileSourceConfig] = field(default_factory=list)
    entity: EntityConfig = field(default_factory=EntityConfig)
    joins: list[JoinConfig] = field(default_factory=list)
    label: str = ""
    carry: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    staging_dir: str = ".cache/data"

    def __post_init__(self) -> None:
        names = [s.name for s in self.sources]
        if not names:
            raise ConfigError("pipeline.sources: at least one source is required")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"pipeline.sources: two sources are named '{repeated[0]}'")
        unique_names([c for s in self.sources for c in s.checks], "pipeline.sources.checks")
        for i, source in enumerate(self.sources):
            for j, check in enumerate(source.checks):
                if check.check_kind.evaluator == Evaluator.REFERENCES and check.reference not in names:
                    key = f"pipeline.sources[{i}].checks[{j}].reference"
                    raise ConfigError(f"{key}: '{check.reference}' is not a declared source ({', '.join(names)})")
        if self.entity.source not in names:
            raise ConfigError(f"pipeline.entity.source: '{self.entity.source}' is not a declared source ({names})")
        if not self.entity.keys:
            raise ConfigError("pipeline.entity.keys: at least one key column is required")
        for i, join in enumerate(self.joins):
            key = f"pipeline.joins[{i}]"
            if join.source not in names:
                raise ConfigError(f"{key}.source: '{join.source}' is not a declared source ({', '.join(names)})")
            if join.source == self.entity.source:
                raise ConfigError(f"{key}.source: the driving source cannot be joined onto itself")
            if not join.keys or not join.columns:
                raise ConfigError(f"{key}: a join needs keys and columns")
            if join.ttl:
                duration_seconds(join.ttl, f"{key}.ttl")
        self._check_days()

    def _check_days(self) -> None:
        if not self.days:
            return
        if len(self.days) != 2:
            raise ConfigError(f"pipeline.days: {list(self.days)} should be [first, last] (ISO dates, inclusive)")
        try:
            first, last = (date.fromisoformat(str(d)) for d in self.days)
        except ValueError:
            raise ConfigError(f"pipeline.days: {list(self.days)} are not ISO dates like 2013-01-01") from None
        if first > last:
            raise ConfigError(f"pipeline.days: {first} is after {last}")

    def source(self, name: str) -> FileSourceConfig:
        return next(s for s in self.sources if s.name == name)

    @property
    def driving(self) -> FileSourceConfig:
        return self.source(self.entity.source)
