"""Checks compiled to Deequ constraints, and one Deequ VerificationSuite run per dataset.

pydeequ builds each Deequ `Check` (its calls used here match the 2.1.0 jar). The results are read
from Deequ's Scala objects through py4j, because pydeequ returns them only as JSON or DataFrames
and those lose which metric belongs to which constraint. Deequ fuses the analyzers of all checks
into one scan (plus one grouping per uniqueness key).

A check becomes one Deequ `Check` named after it, holding one constraint. Its assertion is a Python
function, which Deequ calls back through py4j's callback server (`engine.runtime.py4j_bridge`).

Deequ's semantics are kept per kind (docs/data-quality.md): ratios are taken over all rows; nulls
comply with allowed values, ranges, non-negativity and `not_in_future`, not with a pattern; the
standard deviation is the population one; quantiles are approximate (relative rank error 1%).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from py4j.java_gateway import JavaObject
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.config.quality import CheckConfig
from engine.errors import CheckError
from engine.runtime.py4j_bridge import ansi_off, start_callbacks

if TYPE_CHECKING:  # pydeequ is imported where it runs: it reads SPARK_VERSION, which the session sets
    from pydeequ.checks import Check

ERROR, WARNING = "Error", "Warning"
_PRECONDITIONS = {"number": "isNumeric", "string": "isString"}  # Deequ's column-type preconditions


@dataclass(frozen=True)
class Evaluated:
    """One check's outcome in a Deequ run: its constraint's status, metric and message."""

    name: str
    passed: bool
    metric: float | None
    message: str


def row_condition(check: CheckConfig, as_of: datetime) -> str | None:
    """The SQL predicate Deequ checks row by row for this check (None for a kind that is not row-level).

    The same text goes to Deequ's Compliance constraint and to quarantine, so they never disagree."""
    condition = check.check_kind.row_condition
    return None if condition is None else condition(check, as_of)


def row_predicate(check: CheckConfig, as_of: datetime) -> Column:
    """True where a row complies with a row-level check, exactly as Deequ counts it (null is false)."""
    condition = row_condition(check, as_of)
    if condition is None:
        raise ValueError(f"{check.kind} is not a row-level check")
    return F.coalesce(F.expr(condition), F.lit(False))


def with_derived(df: DataFrame, checks: list[CheckConfig]) -> DataFrame:
    """`df` with the columns the checks' constraints read (a freshness check's time in epoch seconds), in
    the same scan."""
    for check in checks:
        derive = check.check_kind.derived
        name, expression = derive(check) if derive is not None else (None, "")
        if name is not None and name not in df.columns:
            df = df.withColumn(name, F.expr(expression))
    return df


def add_constraint(check: Check, spec: CheckConfig, as_of: datetime) -> Check:
    """Add the Deequ constraint of `spec`'s kind to a pydeequ Check."""
    constraint = spec.check_kind.constraint
    if constraint is None:
        raise ValueError(f"Deequ has no constraint for a {spec.kind} check")
    return constraint(check, spec, as_of)


def _option(value: JavaObject) -> JavaObject | None:
    return None if value.isEmpty() else value.get()


def _value(metric: JavaObject | None) -> tuple[float | None, str]:
    """A Deequ metric's value, or the reason it could not be computed."""
    if metric is None:
        return None, "no metric"
    value = metric.value()
    if value.isFailure():
        return None, value.failed().get().getMessage() or "failed"
    number = float(value.get())
    return (None if math.isnan(number) else number), ""


def _constraint_results(result: JavaObject, jvm: JavaObject) -> dict[str, JavaObject]:
    """Deequ's constraint result of every check in a VerificationResult, by check name."""
    found = {}
    entries = jvm.scala.collection.JavaConverters.mapAsJavaMap(result.checkResults()).entrySet().iterator()
    while entries.hasNext():
        entry = entries.next()
        constraints = jvm.scala.collection.JavaConverters.seqAsJavaList(entry.getValue().constraintResults())
        found[entry.getKey().description()] = constraints.get(0)
    return found


def run_checks(
    spark: SparkSession,
    df: DataFrame,
    checks: list[tuple[CheckConfig, str]],
    as_of: datetime,
) -> dict[str, Evaluated]:
    """Run `(check, level)` pairs in one VerificationSuite over `df`; return each check's outcome.

    A check Deequ cannot evaluate (a missing column, a column of the wrong type, a bad pattern)
    raises a CheckError naming it, judged on the schema before the data is read."""
    from pydeequ.checks import Check, CheckLevel
    from pydeequ.verification import VerificationSuite

    require_evaluable(df, [c for c, _ in checks])
    start_callbacks(spark)
    suite = VerificationSuite(spark).onData(with_derived(df, [c for c, _ in checks]))
    for spec, level in checks:
        check = Check(spark, CheckLevel.Error if level == ERROR else CheckLevel.Warning, spec.name)
        suite = suite.addCheck(add_constraint(check, spec, as_of))
    with ansi_off(spark):
        result = suite._VerificationRunBuilder.run()
    constraints = _constraint_results(result, spark._jvm)
    outcomes = {}
    for spec, _ in checks:
        constraint = constraints[spec.name]
        metric, problem = _value(_option(constraint.metric()))
        if metric is None and problem and _is_precondition(problem):
            raise CheckError(f"check {spec.name}: Deequ cannot evaluate it: {problem.splitlines()[0]}")
        passed = constraint.status().toString() == "Success"
        message = "" if passed else (_option(constraint.message()) or problem or "failed")
        outcomes[spec.name] = Evaluated(spec.name, passed, metric, str(message))
    return outcomes


def _wrong_type(df: DataFrame, spec: CheckConfig) -> str:
    """Why a column fails Deequ's type precondition, in words: `column tailnum is a string; mean needs a number`."""
    column = spec.columns[0]
    kind = df.schema[column].dataType.simpleString()
    article = "an" if kind[0] in "aeiou" else "a"
    return f"column {column} is {article} {kind}; {spec.kind} needs a {spec.check_kind.needs}"


def require_evaluable(df: DataFrame, checks: list[CheckConfig]) -> None:
    """Raise a CheckError naming the first check Deequ cannot evaluate on `df` (a missing column, a column
    of the wrong type, a pattern Java rejects), by Deequ's own preconditions, on the schema alone."""
    from py4j.protocol import Py4JJavaError
    from pydeequ.scala_utils import to_scala_seq

    jvm = df.sparkSession._jvm
    preconditions = jvm.com.amazon.deequ.analyzers.Preconditions
    schema, names = df._jdf.schema(), set(df.columns)
    for spec in checks:
        problem = next((f"Input data does not include column {c}!" for c in spec.columns if c not in names), "")
        needs = spec.check_kind.needs
        if not problem and needs is not None:
            rule = getattr(preconditions, _PRECONDITIONS[needs])(spec.columns[0])
            failing = preconditions.findFirstFailing(schema, to_scala_seq(jvm, [rule]))
            problem = "" if failing.isEmpty() else _wrong_type(df, spec)
        if not problem and spec.pattern:  # Java must accept the regular expression Deequ compiles
            try:
                jvm.java.util.regex.Pattern.compile(spec.pattern)
            except Py4JJavaError as err:
                problem = str(err.java_exception.getMessage())
        if problem:
            raise CheckError(f"check {spec.name}: Deequ cannot evaluate it: {problem.splitlines()[0]}")


def referential_integrity(
    df: DataFrame, columns: list[str], reference: DataFrame, reference_columns: list[str], check: CheckConfig
) -> Evaluated | None:
    """Deequ's referential integrity of `df`'s rows with a complete key against `reference`.

    Deequ's ratio is 1 - (distinct keys not found) / (rows); rows with a null key part are left to
    completeness checks. Deequ's result does not carry the ratio, so the assertion records it as
    Deequ passes it in. None when no row has a key."""
    spark = df.sparkSession
    jvm = spark._jvm
    for frame, names, side in ((df, columns, "the checked data"), (reference, reference_columns, check.reference)):
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise CheckError(f"check {check.name}: Deequ cannot evaluate it: {side} has no column {', '.join(missing)}")
    keyed = df.select(*columns).dropna(how="any")
    start_callbacks(spark)
    from pydeequ.scala_utils import to_scala_seq

    seen: list[float] = []
    with ansi_off(spark):
        outcome = jvm.com.amazon.deequ.comparison.ReferentialIntegrity.subsetCheck(
            keyed._jdf,
            to_scala_seq(jvm, columns),
            reference._jdf,
            to_scala_seq(jvm, reference_columns),
            _double_predicate(spark, lambda ratio: seen.append(ratio) or ratio >= check.threshold),
        )
    if outcome.getClass().getSimpleName() == "ComparisonSucceeded":
        return Evaluated(check.name, True, seen[0], "")
    message = str(outcome.errorMessage())
    if not seen and message == "Primary data frame contains no data.":  # Deequ's own count found no key
        return None
    if not seen:  # Deequ's parameter validation failed: no ratio was measured
        raise CheckError(f"check {check.name}: Deequ cannot evaluate it: {message}")
    return Evaluated(check.name, False, seen[0], message)


def _double_predicate(spark: SparkSession, predicate: Callable[[float], bool]) -> JavaObject:
    """A Scala `Double => Boolean` for Deequ APIs that pydeequ does not wrap: Scala calls its
    specialized `apply$mcZD$sp`, which pydeequ's ScalaFunction1 lacks."""
    from pydeequ.scala_utils import ScalaFunction1

    function = ScalaFunction1(spark.sparkContext._gateway, predicate)
    function.__dict__["apply$mcZD$sp"] = predicate
    return function


def _is_precondition(problem: str) -> bool:
    """Whether a metric failed because the check cannot apply to the data (not because the data is empty)."""
    return "Empty state" not in problem and "no data" not in problem.lower()
