"""An independent, brute-force reference for windowed features, in plain Python.

For each query it scans every event of the entity, so it is obviously correct and slow; it shares
no code with the engine. Times are integer microseconds.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict


def _in_window(a: int, t: int, micros: int | None, closed: str) -> bool:
    if closed == "right":
        return a <= t and (micros is None or a > t - micros)
    return a < t and (micros is None or a >= t - micros)


def _order(event: tuple) -> tuple:
    """Events at one time are ordered by value, nulls first (as the engine's tie rule says)."""
    a, v = event
    return (a, v is not None, v if v is not None else 0)


def aggregate(function: str, events: list[tuple], n: int) -> object:
    """`events` are (time, value) in the window, value None when absent."""
    values = [v for _, v in events if v is not None]
    if function == "count":
        return len(values)
    if function == "count_distinct":
        return len(set(values))
    if function == "last_n":
        ordered = sorted(events, key=_order)
        return [v for _, v in ordered[-n:]] if ordered else None
    if not values:
        return None
    present = [(a, v) for a, v in events if v is not None]
    if function == "sum":
        return math.fsum(values)
    if function == "mean":
        return math.fsum(values) / len(values)
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    if function == "variance":
        return statistics.variance(values) if len(values) > 1 else None
    if function == "stddev":
        return statistics.stdev(values) if len(values) > 1 else None
    if function == "first":
        return min(present)[1]
    if function == "last":
        return max(present)[1]
    raise ValueError(function)


def _by_key(events: list[tuple]) -> dict[object, list[tuple]]:
    by_key: dict[object, list[tuple]] = defaultdict(list)
    for key, a, v in events:
        if key is not None and a is not None:
            by_key[key].append((a, v))
    return by_key


def windowed(
    events: list[tuple], queries: list[tuple], function: str, micros: int | None, closed: str, n: int = 3
) -> list[object]:
    """events: (key, known_at, value); queries: (key, t). One result per query; None key -> None."""
    by_key = _by_key(events)
    return [
        None
        if key is None or t is None
        else aggregate(function, [(a, v) for a, v in by_key.get(key, []) if _in_window(a, t, micros, closed)], n)
        for key, t in queries
    ]


def _kth_before(events: list[tuple], t: int, k: int, ttl: int) -> object:
    before = sorted((e for e in events if e[0] < t), key=_order)
    return None if len(before) < k or before[-k][0] <= t - ttl else before[-k][1]


def lag(events: list[tuple], queries: list[tuple], k: int, ttl: int) -> list[object]:
    """Value of the k-th previous event strictly before t, if it is within the TTL."""
    by_key = _by_key(events)
    return [None if key is None or t is None else _kth_before(by_key.get(key, []), t, k, ttl) for key, t in queries]
