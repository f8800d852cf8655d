"""What the checks beyond the constraints find, as typed rows of the validation report: a tracked
metric's anomaly against its history, and a feature's drift (and leakage) against a reference."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.config.quality import AnomalyStrategy


@dataclass(frozen=True)
class Anomaly:
    """A tracked metric whose newest value the configured Deequ strategy finds anomalous."""

    dataset: str
    metric: str
    previous: float
    current: float
    rate: float | None
    strategy: AnomalyStrategy
    message: str


class FeatureKind(StrEnum):
    """How a feature's distributions are compared: binned (numeric) or by value shares (categorical)."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


@dataclass(frozen=True)
class FeatureDrift:
    """One feature against its reference: PSI and JS distance (numeric) or L-inf (categorical), the binned
    AUC of the label, whether it drifted, and leakage (late rows, or an AUC that ranks the label alone).
    `table` names the serving table of a training-serving skew comparison."""

    feature: str
    kind: FeatureKind
    psi: float | None
    js: float | None
    linf: float | None
    auc: float | None
    drifted: bool
    late_rows: int | None
    leakage: bool
    table: str | None = None
