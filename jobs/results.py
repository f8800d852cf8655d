"""Each job's result as a dataclass of the values its stages wrote, by name (`JobResult.typed`), so what a run
reports is read from named, typed fields. A field with a default is a value a skipped stage may not write.

The types are imported for annotations only: importing this module loads no job's libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.experiments.sweep import SweepResult
    from engine.online.materialize import Written
    from engine.pipeline.features import Located
    from engine.pipeline.materialize import Plan, Served
    from engine.pipeline.quality import Published
    from engine.pipeline.suggest import ChecksFile, Suggested
    from engine.pipeline.training_set import Planned
    from engine.pipeline.versioning import VersionResult
    from engine.quality.findings import FeatureDrift
    from engine.quality.validation import Validated
    from engine.runtime.datasets import SourceData
    from engine.sinks.delta import Commit
    from engine.training.build import PinnedInput


@dataclass(frozen=True)
class FeaturesRun:
    """The feature job: its pipeline, the sources read, the published report, the version written or served
    (none when nothing was), and the sweep."""

    prepared: Located
    sources: dict[str, SourceData]
    published: Published
    commit: Commit | None = None
    sweep: SweepResult | None = None


@dataclass(frozen=True)
class TrainingSetRun:
    """The training-set job: the pinned inputs, the features planned, the version written, the serving skew,
    and the sweep."""

    inputs: list[PinnedInput]
    planned: Planned
    commit: Commit
    skew: list[FeatureDrift]
    sweep: SweepResult | None = None


@dataclass(frozen=True)
class MaterializeRun:
    """The materialization: its plan, the version served and what each group wrote."""

    prepared: Plan
    served: Served
    written: list[Written]


@dataclass(frozen=True)
class VersionRun:
    """The versioning job: what its action did."""

    result: VersionResult


@dataclass(frozen=True)
class ValidateRun:
    """The validation job: the published report, the rows that passed, and the quarantine and output versions
    (none when nothing was written)."""

    published: Published
    passed: Validated
    quarantine: Commit | None = None
    output: Commit | None = None


@dataclass(frozen=True)
class SuggestRun:
    """The check suggestion: the source profiled, the checks suggested, and the checks file written."""

    source: SourceData
    suggested: Suggested
    written: ChecksFile
