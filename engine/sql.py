"""Spark SQL text built from names and values: quoted identifiers, literals, and predicates of filters.

Every layer that writes SQL text (check conditions, Delta predicates, joins) quotes through here, so a
column named with a backtick or a value holding a quote or a backslash means what it says. A filter is
a (column, operator, value) triple, the form delta-rs reads take, so one range serves both engines.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Filter = tuple[str, str, object]  # (column, operator, value)
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")


def quote_identifier(name: str) -> str:
    """`name` as a Spark SQL identifier: in backticks, a backtick doubled."""
    return "`" + name.replace("`", "``") + "`"


def unquote_identifier(text: str) -> str:
    """The name an identifier in Spark's output stands for: in backticks, `quote_identifier` undone; bare, as
    it is (Spark's DESCRIBE quotes a name only where it needs it, always when it holds a backtick)."""
    if len(text) >= 2 and text[0] == text[-1] == "`":
        return text[1:-1].replace("``", "`")
    return text


def string_literal(text: str) -> str:
    """`text` as a Spark SQL string literal under the default parser (backslash escapes): a backslash and a
    single quote are escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def literal(value: object) -> str:
    """`value` as a Spark SQL literal: a boolean or a finite number as itself, anything else (a date, a time)
    as the string literal of its text, which Spark casts to the type it is compared with."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    return string_literal(str(value))


def predicate(filters: Iterable[Filter]) -> str | None:
    """The filters as one Spark SQL predicate that holds where all of them do (None without a filter)."""
    parts = []
    for column, operator, value in filters:
        if operator not in COMPARISONS:
            raise ValueError(f"filter on {column}: '{operator}' is not one of {', '.join(COMPARISONS)}")
        parts.append(f"{quote_identifier(column)} {operator} {literal(value)}")
    return " AND ".join(parts) or None
