"""Run a dataset's checks in layers, cheapest first, and decide each one with stated confidence.

1. schema: columns and types of the source as stored, and primary keys; a failure here that
   halts skips every later layer.
2. statistical: one pass over a uniform random sample (Bernoulli, `sample_rows` expected rows).
   A check passes when its whole interval is inside its bound and fails when the whole interval
   is outside; a straddling (borderline) check is measured again on the full data.
3. business: SQL predicates, size, freshness and references, on the full data.

The borderline statistical checks and the business aggregates share one full pass, so a dataset
costs one sample pass, one full pass, and one grouping per key or reference check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.quality import BOUND_KINDS, RATIO_KINDS, SAMPLED_KINDS, CheckConfig, GateAction, QualityConfig
from engine.quality.intervals import Estimate, z_score
from engine.quality.measures import bounds, compile_measure, expected
from engine.quality.states import CheckStatus, Outcome


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, with the evidence: metric, interval, sample size and who decided."""

    dataset: str
    name: str
    kind: str
    layer: str
    severity: str
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
    decided_by: str = "full"
    detail: str = ""
    quarantined: int = 0

    def __post_init__(self) -> None:  # plain strings in, members out
        object.__setattr__(self, "action", GateAction(self.action))
        object.__setattr__(self, "status", CheckStatus(self.status))

    @property
    def passed(self) -> bool:
        return self.status != CheckStatus.FAILED

    @property
    def blocking(self) -> bool:
        return self.status == CheckStatus.FAILED and self.severity == "error"


@dataclass(frozen=True)
class ValidationReport:
    """All check results of a run; `passed` is false when any error-severity check failed."""

    checks: list[CheckResult] = field(default_factory=list)
    anomalies: list[dict] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    drift: list[dict] = field(default_factory=list)
    outcome: Outcome = Outcome.CONTINUE

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
        )

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "outcome": self.outcome,
            "rows": self.rows,
            "malformed": self.malformed,
            "quarantined": self.quarantined,
            "checks": [asdict(c) for c in self.checks],
            "anomalies": self.anomalies,
            "drift": self.drift,
        }


def _result(dataset: str, check: CheckConfig, status: CheckStatus, **evidence: object) -> CheckResult:
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
        threshold=check.threshold if check.kind in RATIO_KINDS or check.kind == "unique" else None,
        min=bounds(check)[0] if check.kind in BOUND_KINDS else None,
        max=bounds(check)[1] if check.kind in BOUND_KINDS else None,
        **evidence,
    )


def decide(estimate: Estimate, low: float | None, high: float | None) -> CheckStatus:
    """`passed` when the whole interval is inside [low, high], `failed` when wholly outside, else `borderline`."""
    inside = (low is None or estimate.low >= low) and (high is None or estimate.high <= high)
    outside = (low is not None and estimate.high < low) or (high is not None and estimate.low > high)
    if inside:
        return CheckStatus.PASSED
    return CheckStatus.FAILED if outside else CheckStatus.BORDERLINE


def _at_least(metric: float, threshold: float) -> CheckStatus:
    return CheckStatus.PASSED if metric >= threshold else CheckStatus.FAILED


def _schema_check(dataset: str, check: CheckConfig, stored: T.StructType) -> CheckResult:
    """Required columns present and of the declared types, in the source as stored."""
    types = {f.name: f.dataType.simpleString() for f in stored.fields}
    wanted = {c: check.types.get(c) for c in check.columns} | dict(check.types)
    problems = [f"missing column {c}" for c in wanted if c not in types]
    problems += [f"{c} is {types[c]}, not {t}" for c, t in wanted.items() if t and c in types and types[c] != t]
    metric = 1 - len(problems) / len(wanted)
    status = CheckStatus.FAILED if problems else CheckStatus.PASSED
    return _result(dataset, check, status, metric=metric, detail="; ".join(problems))


def _uniqueness(dataset: str, check: CheckConfig, df: DataFrame) -> CheckResult:
    """Share of rows whose key occurs exactly once (Deequ's uniqueness), over the full data."""
    counts = df.groupBy(*check.columns).count()
    row = counts.agg(
        F.sum(F.when(F.col("count") == 1, F.col("count"))).alias("unique"), F.sum("count").alias("n")
    ).first()
    if not row or not row["n"]:
        return _result(dataset, check, CheckStatus.PASSED, decided_by="no data")
    metric = (row["unique"] or 0) / row["n"]
    return _result(dataset, check, _at_least(metric, check.threshold), metric=metric)


def _references(dataset: str, check: CheckConfig, df: DataFrame, datasets: dict[str, DataFrame]) -> CheckResult:
    """Share of non-null keys found in the referenced dataset (referential integrity)."""
    target = datasets[check.reference]
    target_columns = list(check.reference_columns) or list(check.columns)
    keys = target.select(*[F.col(t).alias(f"_ref{i}") for i, t in enumerate(target_columns)]).distinct()
    rows = df.select(*check.columns).where(reduce(lambda a, c: a & F.col(c).isNotNull(), check.columns, F.lit(True)))
    condition = reduce(lambda a, b: a & b, [F.col(c) == F.col(f"_ref{i}") for i, c in enumerate(check.columns)])
    joined = rows.join(keys.withColumn("_found", F.lit(True)), condition, "left")
    row = joined.agg(F.count_if(F.col("_found")).alias("found"), F.count(F.lit(1)).alias("n")).first()
    if not row["n"]:
        return _result(dataset, check, CheckStatus.PASSED, decided_by="no data")
    metric = row["found"] / row["n"]
    return _result(dataset, check, _at_least(metric, check.threshold), metric=metric)


def _measure(
    checks: list[CheckConfig], df: DataFrame, *, z: float, n: int, as_of: datetime
) -> list[tuple[CheckConfig, Estimate | None]]:
    """Measure `checks` in one aggregation over `df` (`n` rows expected)."""
    measures = {c.name: compile_measure(c, f"c{i}", as_of=as_of, expected_n=n, z=z) for i, c in enumerate(checks)}
    row = df.agg(*[a for m in measures.values() for a in m.aggregates]).first()
    return [(c, measures[c.name].read(row, z)) for c in checks]


def _from_estimate(dataset: str, check: CheckConfig, estimate: Estimate | None, by: str) -> CheckResult:
    if estimate is None:
        return _result(dataset, check, CheckStatus.PASSED, decided_by="no data")
    interval = [estimate.low, estimate.high] if by == "sample" else None
    return _result(
        dataset,
        check,
        decide(estimate, *bounds(check)),
        metric=estimate.value,
        interval=interval,
        sample_size=estimate.n if by == "sample" else None,
        decided_by=by,
    )


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
) -> ValidationReport:
    """Run `checks` on `df` (`rows` rows, already counted) layer by layer; see the module docstring."""
    results: dict[str, CheckResult] = {}
    for check in (c for c in checks if c.layer == "schema"):
        if check.kind == "schema":
            results[check.name] = _schema_check(dataset, check, stored_schema or df.schema)
    halted = any(r.blocking and r.action == GateAction.HALT_PIPELINE for r in results.values())
    if not halted:
        for check in (c for c in checks if c.kind == "unique"):
            results[check.name] = _uniqueness(dataset, check, df)
        halted = any(r.blocking and r.action == GateAction.HALT_PIPELINE for r in results.values())
    if halted:
        skipped = [
            _result(dataset, c, CheckStatus.SKIPPED, detail="a schema check halted")
            for c in checks
            if c.name not in results
        ]
        return ValidationReport([*results.values(), *skipped], rows={dataset: rows})

    sampled = [c for c in checks if c.kind in SAMPLED_KINDS and c.layer == "statistical"]
    full = [c for c in checks if c.name not in results and c not in sampled and c.kind != "references"]
    borderline: dict[str, str] = {}
    if sampled and rows > cfg.sample_rows:
        sample = df.sample(withReplacement=False, fraction=cfg.sample_rows / rows, seed=cfg.seed)
        for check, estimate in _measure(sampled, sample, z=z_score(cfg.confidence), n=cfg.sample_rows, as_of=as_of):
            result = _from_estimate(dataset, check, estimate, "sample")
            if result.status == CheckStatus.BORDERLINE:
                full.append(check)
                borderline[check.name] = (
                    f"borderline on {result.sample_size:,} sampled rows: "
                    f"[{result.interval[0]:.6g}, {result.interval[1]:.6g}]; measured on the full data"
                )
            else:
                results[check.name] = result
    else:
        full += sampled
    if full:
        for check, estimate in _measure(full, df, z=0.0, n=rows, as_of=as_of):
            result = _from_estimate(dataset, check, estimate, "full")
            results[check.name] = replace(result, detail=borderline.get(check.name, ""))
    for check in (c for c in checks if c.kind == "references"):
        results[check.name] = _references(dataset, check, df, datasets or {})
    ordered = [results[c.name] for c in checks if c.name in results]
    return ValidationReport(ordered, rows={dataset: rows})


def with_quarantined(report: ValidationReport, dataset: str, per_check: dict[str, int], total: int) -> ValidationReport:
    """The report with the rows each check sent to quarantine, and the dataset's total."""
    checks = [replace(c, quarantined=per_check.get(c.name, 0)) if c.dataset == dataset else c for c in report.checks]
    return replace(report, checks=checks, quarantined=report.quarantined | {dataset: total})
