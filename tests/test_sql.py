"""SQL text from names and values (`engine.sql`): quoted identifiers, literals, predicates of filters."""

from __future__ import annotations

from datetime import date

import pytest

from engine.sql import literal, predicate, quote_identifier, string_literal, unquote_identifier


def test_identifiers_and_string_literals_are_escaped() -> None:
    assert quote_identifier("pa`rt") == "`pa``rt`"
    assert [unquote_identifier(quote_identifier(n)) for n in ("pa`rt", "`x`", "a b")] == ["pa`rt", "`x`", "a b"]
    assert unquote_identifier("day") == "day"
    assert string_literal("it's a \\ path") == "'it\\'s a \\\\ path'"


def test_literals_keep_numbers_and_quote_the_rest() -> None:
    assert [literal(v) for v in (3, 0.5, True, float("nan"), date(2024, 1, 2))] == [
        "3",
        "0.5",
        "TRUE",
        "'nan'",
        "'2024-01-02'",
    ]


def test_a_predicate_holds_where_every_filter_does() -> None:
    filters = [("pa`rt", "=", "it's"), ("day", ">=", date(2024, 1, 2))]
    assert predicate(filters) == "`pa``rt` = 'it\\'s' AND `day` >= '2024-01-02'"
    assert predicate([]) is None


def test_an_unknown_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="filter on day: 'LIKE' is not one of ="):
        predicate([("day", "LIKE", "2024%")])
