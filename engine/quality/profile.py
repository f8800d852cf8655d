"""Column profiles and suggested checks, from Deequ's column profiler and constraint suggestion.

Deequ's default rules and its key rule (unique if approximately unique) run on the data (they
profile it first); each suggestion becomes a check in
the checks YAML's shape, by the rule that made it. The schema check (the types as stored) and a
size check are added, since Deequ suggests neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from py4j.java_gateway import JavaObject
from pyspark.sql import DataFrame

from engine.runtime.py4j_bridge import ansi_off

_THRESHOLD = re.compile(r"_ >= ([0-9.eE+-]+)")
_VALUES = re.compile(r"Array\((.*)\)", re.S)
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
NULL_VALUE = "NullValue"  # the histogram key Deequ gives nulls


@dataclass(frozen=True)
class ColumnProfile:
    """What Deequ's profiler found for one column."""

    name: str
    type: str
    completeness: float
    approx_distinct: int
    values: list[str] | None


@dataclass(frozen=True)
class Suggestion:
    """One of Deequ's suggestions: the rule that made it, its Scala code and the check it becomes."""

    rule: str
    code: str
    check: dict | None


def _scala_list(jvm: JavaObject, seq: JavaObject) -> list:
    return list(jvm.scala.collection.JavaConverters.seqAsJavaList(seq))


def _scala_dict(jvm: JavaObject, mapping: JavaObject) -> dict:
    return dict(jvm.scala.collection.JavaConverters.mapAsJavaMap(mapping))


def run_suggestions(df: DataFrame) -> tuple[list[ColumnProfile], list[Suggestion], int]:
    """Deequ's profiles and suggestions for `df` (its default rules and the key rule), and how many rows were
    profiled."""
    jvm = df.sparkSession._jvm
    deequ = jvm.com.amazon.deequ.suggestions
    builder = (
        deequ.ConstraintSuggestionRunBuilder(df._jdf)
        .addConstraintRules(deequ.Rules.DEFAULT())
        .addConstraintRule(deequ.rules.UniqueIfApproximatelyUniqueRule())
    )
    with ansi_off(df.sparkSession):
        result = builder.run()
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    profiles = []
    for name, profile in _scala_dict(jvm, result.columnProfiles()).items():
        histogram = profile.histogram()
        values = None
        if histogram.isDefined():
            keys = _scala_dict(jvm, histogram.get().values()).keys()
            values = sorted(str(k) for k in keys if k != NULL_VALUE)
        profiles.append(
            ColumnProfile(
                name, types.get(name, ""), profile.completeness(), profile.approximateNumDistinctValues(), values
            )
        )
    profiles.sort(key=lambda p: list(types).index(p.name) if p.name in types else len(types))
    suggestions = []
    for column, found in _scala_dict(jvm, result.constraintSuggestions()).items():
        for suggestion in _scala_list(jvm, found):
            rule = suggestion.suggestingRule().getClass().getSimpleName()
            code = suggestion.codeForConstraint()
            suggestions.append(Suggestion(rule, code, as_check(rule, code, column)))
    return profiles, suggestions, result.numRecordsUsedForProfiling()


def as_check(rule: str, code: str, column: str) -> dict | None:
    """The check a Deequ suggestion becomes, or None for a rule with no check kind here (inferred types)."""
    threshold = _THRESHOLD.search(code)
    if rule == "CompleteIfCompleteRule":
        return {"name": f"{column}_complete", "kind": "completeness", "columns": [column], "threshold": 1.0}
    if rule == "RetainCompletenessRule" and threshold:
        bound = float(threshold[1])
        return {"name": f"{column}_completeness", "kind": "completeness", "columns": [column], "threshold": bound}
    if rule == "UniqueIfApproximatelyUniqueRule":
        return {"name": f"{column}_unique", "kind": "unique", "columns": [column]}
    if rule in ("CategoricalRangeRule", "FractionalCategoricalRangeRule"):
        listed = _VALUES.search(code)
        values = [v.encode().decode("unicode_escape") for v in _STRING.findall(listed[1])] if listed else []
        if not values:
            return None
        check = {"name": f"{column}_allowed", "kind": "allowed_values", "columns": [column], "values": values}
        return check | ({"threshold": float(threshold[1])} if threshold else {})
    if rule == "NonNegativeNumbersRule":
        return {"name": f"{column}_non_negative", "kind": "non_negative", "columns": [column]}
    return None


def baseline(profiles: list[ColumnProfile], source: str) -> list[dict]:
    """The checks Deequ does not suggest: the columns with their stored types, and at least one row."""
    return [
        {
            "name": f"{source}_columns",
            "kind": "schema",
            "columns": [p.name for p in profiles],
            "types": {p.name: p.type for p in profiles},
        },
        {"name": f"{source}_size", "kind": "size", "min": 1},
    ]
