"""Run a dataset's checks in layers, cheapest first, on Deequ, and decide each one with stated confidence.

1. schema: columns and types of the source as stored (the project's own: Deequ has no schema
   constraint); a failure here that halts skips the rest, before any data is read.
2. statistical: the checks' metrics on a random sample of about `sample_rows` rows (whole row
   groups read alone where the stored files have enough of them, else a row sample; `sampling.py`),
   measured by Deequ's constraint conditions with confidence intervals (`sampled.py`). A check passes when its
   whole interval is inside its bound and fails when the whole interval is outside; a straddling
   (borderline) check is measured again on the full data.
3. full data: primary keys (Deequ's uniqueness), SQL predicates, size, freshness and `not_in_future`,
   and references (Deequ's referential integrity).

The key checks, the borderline statistical checks and the business checks share one full-data
VerificationSuite, so a dataset costs one sample pass and one full pass (Deequ adds a grouping per
key check), plus one per reference check. The full pass reads what its checks' expressions use; with
only checks the sample decides, it does not run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from engine.config.check_kinds import Bound, Evaluator, Layer, Severity
from engine.config.quality import CheckConfig, GateAction, QualityConfig
from engine.quality.deequ import (
    ERROR,
    WARNING,
    Evaluated,
    referential_integrity,
    require_evaluable,
    run_checks,
)
from engine.quality.findings import Anomaly, FeatureDrift
from engine.quality.intervals import Estimate
from engine.quality.sampled import measure_sample
from engine.quality.sampling import Sample, draw_sample
from engine.quality.states import CheckStatus, DecidedBy, Outcome
from engine.runtime.datasets import StoredGroups


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, with the evidence: metric, interval, sample size and who decided."""

    dataset: str
    name: str
    kind: str
    layer: Layer
    severity: Severity
    action: GateAction
    columns: list[str]
    expected: str
    status: CheckStatus
    threshold: float | None = None
    min: float | None = None
    max: float | None = None
    metric: float | None = None
    interval: list[float] | None = None
    sample_size: int | None = None
    decided_by: DecidedBy = DecidedBy.FULL
    detail: str = ""
    message: str = ""
    quarantined: int = 0

    def __post_init__(self) -> None:  # plain strings in, members out
        for name, state in (
            ("action", GateAction),
            ("status", CheckStatus),
            ("layer", Layer),
            ("severity", Severity),
            ("decided_by", DecidedBy),
        ):
            object.__setattr__(self, name, state(getattr(self, name)))

    @property
    def passed(self) -> bool:
        return self.status != CheckStatus.FAILED

    @property
    def blocking(self) -> bool:
        return self.status == CheckStatus.FAILED and self.severity == Severity.ERROR


@dataclass(frozen=True)
class ValidationReport:
    """All check results of a run; `passed` is false when any error-severity check failed."""

    checks: list[CheckResult] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    drift: list[FeatureDrift] = field(default_factory=list)
    outcome: Outcome = Outcome.CONTINUE
    sources: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    sample_bytes: dict[str, int] = field(default_factory=dict)  # stored bytes a row-group sample read, per dataset

    def __post_init__(self) -> None:  # a plain string in, a member out
        object.__setattr__(self, "outcome", Outcome(self.outcome))

    @property
    def passed(self) -> bool:
        return not any(c.blocking for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == CheckStatus.FAILED]

    def merge(self, other: ValidationReport) -> ValidationReport:
        return ValidationReport(
            self.checks + other.checks,
            self.anomalies + other.anomalies,
            self.rows | other.rows,
            self.malformed | other.malformed,
            self.quarantined | other.quarantined,
            self.drift + other.drift,
            max(self.outcome, other.outcome, key=lambda o: o.gravity),
            self.sources | other.sources,
            self.run_id or other.run_id,
            self.sample_bytes | other.sample_bytes,
        )

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "sources": self.sources,
            "passed": self.passed,
            "outcome": self.outcome,
            "rows": self.rows,
            "malformed": self.malformed,
            "quarantined": self.quarantined,
            "checks": [asdict(c) for c in self.checks],
            "anomalies": [asdict(a) for a in self.anomalies],
            "drift": [asdict(d) for d in self.drift],
            "sample_bytes": self.sample_bytes,
        }


def bounds(check: CheckConfig) -> tuple[float | None, float | None]:
    """The interval a check's metric must lie in: [threshold, 1] for ratios, [min, max] or [0, max lag]."""
    bound = check.check_kind.bound
    if bound == Bound.LAG:
        return None, float(check.max_lag_seconds)
    if bound == Bound.RANGE:
        return check.min, check.max
    return check.threshold, None


def expected(check: CheckConfig) -> str:
    """The bound as a person reads it: `>= 0.95`, `in [0, 10]`, `lag <= 400d`."""
    low, high = bounds(check)
    if check.check_kind.bound == Bound.LAG:
        return f"lag <= {check.max_lag}"
    if low is not None and high is not None:
        return f"in [{low:g}, {high:g}]"
    return f">= {low:g}" if low is not None else f"<= {high:g}"


def _result(dataset: str, check: CheckConfig, status: CheckStatus, **evidence: object) -> CheckResult:
    bound = check.check_kind.bound
    return CheckResult(
        dataset=dataset,
        name=check.name,
        kind=check.kind,
        layer=check.layer,
        severity=check.severity,
        action=check.action,
        columns=list(check.columns),
        expected=expected(check),
        status=status,
        threshold=check.threshold if bound == Bound.RATIO else None,
        min=bounds(check)[0] if bound != Bound.RATIO else None,
        max=bounds(check)[1] if bound != Bound.RATIO else None,
        **evidence,
    )


def decide(estimate: Estimate, low: float | None, high: float | None) -> CheckStatus:
    """`passed` when the whole interval is inside [low, high], `failed` when wholly outside, else `borderline`."""
    inside = (low is None or estimate.low >= low) and (high is None or estimate.high <= high)
    outside = (low is not None and estimate.high < low) or (high is not None and estimate.low > high)
    if inside:
        return CheckStatus.PASSED
    return CheckStatus.FAILED if outside else CheckStatus.BORDERLINE


def _schema_check(dataset: str, check: CheckConfig, stored: T.StructType) -> CheckResult:
    """Required columns present and of the declared types, in the source as stored."""
    types = {f.name: f.dataType.simpleString() for f in stored.fields}
    wanted = {c: check.types.get(c) for c in check.columns} | dict(check.types)
    problems = [f"missing column {c}" for c in wanted if c not in types]
    problems += [f"{c} is {types[c]}, not {t}" for c, t in wanted.items() if t and c in types and types[c] != t]
    metric = 1 - len(problems) / len(wanted)
    status = CheckStatus.FAILED if problems else CheckStatus.PASSED
    return _result(dataset, check, status, metric=metric, detail="; ".join(problems), message="; ".join(problems))


def _level(check: CheckConfig) -> str:
    return ERROR if check.severity == Severity.ERROR else WARNING


def _on_full_data(
    dataset: str, checks: list[CheckConfig], df: DataFrame, *, rows: int, as_of: datetime
) -> dict[str, CheckResult]:
    """Run `checks` in one Deequ VerificationSuite over the full data."""
    if not checks:
        return {}
    evaluated = run_checks(df.sparkSession, df, [(c, _level(c)) for c in checks], as_of)
    return {c.name: _from_deequ(dataset, c, evaluated[c.name], rows=rows, as_of=as_of) for c in checks}


def _from_deequ(dataset: str, check: CheckConfig, outcome: Evaluated, *, rows: int, as_of: datetime) -> CheckResult:
    if outcome.metric is None and not rows:
        return _result(dataset, check, CheckStatus.PASSED, decided_by=DecidedBy.NO_DATA)
    metric, reported = outcome.metric, check.check_kind.metric
    if reported is not None and metric is not None:
        metric = reported(metric, check, as_of)  # e.g. Deequ's newest time -> lag
    status = CheckStatus.PASSED if outcome.passed else CheckStatus.FAILED
    return _result(dataset, check, status, metric=metric, message=outcome.message)


def _design(sample: Sample, estimate: Estimate) -> str:
    effect = f"; design effect {estimate.design_effect:.2f}" if estimate.design_effect is not None else ""
    return f"{sample.design}{effect}"


def _on_sample(
    dataset: str,
    checks: list[CheckConfig],
    df: DataFrame,
    cfg: QualityConfig,
    *,
    rows: int,
    as_of: datetime,
    row_groups: StoredGroups | None,
) -> tuple[dict[str, CheckResult], list[CheckConfig], dict[str, str], int]:
    """Decide what the sample can; return the results, the borderline checks, why each is borderline, and the
    stored bytes the sample read."""
    require_evaluable(df, checks)
    columns = list(dict.fromkeys(c for check in checks for c in check.columns))
    sample = draw_sample(
        df,
        columns,
        rows=rows,
        sample_rows=cfg.sample_rows,
        min_groups=cfg.sample_row_groups,
        seed=cfg.seed,
        row_groups=row_groups,
    )
    estimates = measure_sample(sample, checks, as_of, cfg.confidence)
    results, borderline, why = {}, [], {}
    for check in checks:
        estimate = estimates[check.name]
        if estimate is None:
            borderline.append(check)
            why[check.name] = "the sample cannot bound it; measured on the full data"
            continue
        status = decide(estimate, *bounds(check))
        if status == CheckStatus.BORDERLINE:
            borderline.append(check)
            why[check.name] = (
                f"borderline on {_design(sample, estimate)}: [{estimate.low:.6g}, {estimate.high:.6g}]; "
                "measured on the full data"
            )
            continue
        message = "" if status == CheckStatus.PASSED else _sample_message(check, estimate)
        results[check.name] = _result(
            dataset,
            check,
            status,
            metric=estimate.value,
            interval=[estimate.low, estimate.high],
            sample_size=estimate.n,
            decided_by=DecidedBy.SAMPLE,
            detail=_design(sample, estimate),
            message=message,
        )
    return results, borderline, why, sample.bytes_read


def _sample_message(check: CheckConfig, estimate: Estimate) -> str:
    """Deequ's message, and why the sample is enough: its whole interval is outside the bound."""
    return (
        f"Value: {estimate.value:.6g} does not meet the constraint requirement! (on a {estimate.n:,}-row sample: "
        f"the whole interval [{estimate.low:.6g}, {estimate.high:.6g}] is outside {expected(check)})"
    )


def _references(dataset: str, check: CheckConfig, df: DataFrame, datasets: dict[str, DataFrame]) -> CheckResult:
    """Deequ's referential integrity of the rows with a key against the referenced dataset."""
    target_columns = list(check.reference_columns) or list(check.columns)
    outcome = referential_integrity(df, list(check.columns), datasets[check.reference], target_columns, check)
    if outcome is None:
        return _result(dataset, check, CheckStatus.PASSED, decided_by=DecidedBy.NO_DATA)
    status = CheckStatus.PASSED if outcome.passed else CheckStatus.FAILED
    return _result(dataset, check, status, metric=outcome.metric, message=outcome.message)


def verify(
    df: DataFrame,
    dataset: str,
    checks: list[CheckConfig],
    cfg: QualityConfig,
    *,
    rows: int,
    as_of: datetime,
    stored_schema: T.StructType | None = None,
    datasets: dict[str, DataFrame] | None = None,
    row_groups: StoredGroups | None = None,
) -> ValidationReport:
    """Run `checks` on `df` (`rows` rows, already counted) layer by layer; see the module docstring.
    `row_groups` are the stored groups of `df`'s rows, which the statistical layer may sample."""
    results: dict[str, CheckResult] = {}
    for check in (c for c in checks if c.check_kind.evaluator == Evaluator.SCHEMA):
        results[check.name] = _schema_check(dataset, check, stored_schema or df.schema)
    if any(r.blocking and r.action == GateAction.HALT_PIPELINE for r in results.values()):
        skipped = [
            _result(dataset, c, CheckStatus.SKIPPED, detail="a schema check halted")
            for c in checks
            if c.name not in results
        ]
        return ValidationReport([*results.values(), *skipped], rows={dataset: rows})

    sampled = [c for c in checks if c.check_kind.sample is not None and c.layer == Layer.STATISTICAL]
    deequ = [c for c in checks if c.check_kind.evaluator == Evaluator.DEEQU]
    full = [c for c in deequ if c not in sampled]
    why: dict[str, str] = {}
    read = 0
    if sampled and rows > cfg.sample_rows:
        decided, borderline, why, read = _on_sample(
            dataset, sampled, df, cfg, rows=rows, as_of=as_of, row_groups=row_groups
        )
        results |= decided
        full += borderline
    else:
        full += sampled
    for name, result in _on_full_data(dataset, full, df, rows=rows, as_of=as_of).items():
        results[name] = replace(result, detail=why.get(name, ""))
    for check in (c for c in checks if c.check_kind.evaluator == Evaluator.REFERENCES):
        results[check.name] = _references(dataset, check, df, datasets or {})
    ordered = [results[c.name] for c in checks if c.name in results]
    return ValidationReport(ordered, rows={dataset: rows}, sample_bytes={dataset: read} if read else {})


def with_quarantined(report: ValidationReport, dataset: str, per_check: dict[str, int], total: int) -> ValidationReport:
    """The report with the rows each check sent to quarantine, and the dataset's total."""
    checks = [replace(c, quarantined=per_check.get(c.name, 0)) if c.dataset == dataset else c for c in report.checks]
    return replace(report, checks=checks, quarantined=report.quarantined | {dataset: total})
