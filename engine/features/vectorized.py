"""The vectorized plan: all of a group's windows in one numpy pass over each entity's events in time order.

Spark shuffles the rows by entity (and time bucket) and sorts them once; `mapInArrow` hands each
partition to `windows_pass` as Arrow batches, and numpy computes every feature of the group per batch:

- count, sum, mean, variance, stddev: prefix sums read at the window's two ends (`searchsorted`); sums
  of doubles carry their rounding errors (TwoSum), so a window's sum keeps double precision however
  long the run before it, and variances are taken around the entity's mean;
- min, max: a sparse table of power-of-two extremes, two lookups per row;
- first, last, last-N, lags: index arithmetic on the events in tie order (time, then value, nulls first);
- distinct counts: an event counts from its time until its value's next event or until it leaves the
  window, so a row's count is the number of such starts minus the number of ends up to its time.

An entity's run may cross batches: the rows of a batch's last entity that later rows can still reach
(one look-back) are carried into the next batch, so memory is bounded by a batch plus one look-back,
never by the largest entity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from engine.features.placement import AT, EV, Q

if TYPE_CHECKING:  # compile reads the function registry, which names this module's kernels
    from engine.features.compile import GroupPlan

KINDS = ("int", "float", "string", "other")  # value kinds of a column (`value_kind`)
SUMMED = ("int", "float")  # value kinds whose sums, means and variances the pass computes
ORDERED = ("int", "float", "string")  # value kinds whose extremes and distinct values it computes
_LIMIT = 1 << 62  # largest time key of a block (segments are laid end to end on one axis)


@dataclass(frozen=True)
class Feature:
    """One output column: `function` of input `ref` over `micros` (or the k-th previous event, for "lag")."""

    name: str
    function: str
    kernel: Callable[[Block, Feature, pa.DataType], pa.Array]
    ref: str
    kind: str
    micros: int
    closed: str
    n: int


@dataclass(frozen=True)
class PassSpec:
    """What the pass reads and writes.

    Rows arrive sorted by `segment` (the entity keys, and the time bucket if any) and `time`. With
    `flags`, the columns `_fl_ev` and `_fl_q` say which rows are events and which get features;
    without, every placed row (keys and time set) is both.
    """

    keys: tuple[str, ...]
    segment: tuple[str, ...]
    time: str
    flags: bool
    features: tuple[Feature, ...]
    horizon: int
    passthrough: tuple[str, ...]
    schema: pa.Schema


def _numpy(column: pa.ChunkedArray | pa.Array, dtype: type) -> np.ndarray:
    filled = pc.fill_null(column, False if pa.types.is_boolean(column.type) else 0)
    return filled.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _segment_starts(table: pa.Table, columns: tuple[str, ...], time: str) -> np.ndarray:
    """True where a row starts a new (entity, bucket) run; a row with a null key or time is a run of its own."""
    n = table.num_rows
    starts = np.zeros(n, dtype=bool)
    if n:
        starts[0] = True
    for name in columns:
        column = table.column(name)
        if n > 1:
            changed = pc.not_equal(column.slice(1), column.slice(0, n - 1))
            starts[1:] |= _numpy(pc.fill_null(changed, True), bool)
        starts |= _numpy(column.is_null(), bool)
    untimed = _numpy(table.column(time).is_null(), bool)
    starts |= untimed
    starts[1:] |= untimed[:-1]
    return starts


def _placed(table: pa.Table, spec: PassSpec) -> np.ndarray:
    """Rows with every key and the time set: the only rows in any window."""
    placed = _numpy(table.column(spec.time).is_valid(), bool)
    for key in spec.keys:
        placed &= _numpy(table.column(key).is_valid(), bool)
    return placed


def _flag(table: pa.Table, spec: PassSpec, name: str) -> np.ndarray:
    if spec.flags:
        return _numpy(table.column(name), bool)
    return _placed(table, spec) if name == EV else np.ones(table.num_rows, dtype=bool)


def _prefix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums from 0 and the prefix sums of their rounding errors (TwoSum on each sequential add)."""
    total = np.cumsum(values)
    before = np.concatenate(([0.0], total[:-1]))
    added = total - before
    error = (before - (total - added)) + (values - added)
    return np.concatenate(([0.0], total)), np.concatenate(([0.0], np.cumsum(error)))


def _window_sum(prefix: tuple[np.ndarray, np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    total, error = prefix
    return (total[hi] - total[lo]) + (error[hi] - error[lo])


def _sparse_table(values: np.ndarray, top: int, largest: bool) -> np.ndarray:
    """Row j holds the extreme of values[i : i + 2**j] at i (padded with values' own sentinel)."""
    pick = np.maximum if largest else np.fmin  # NaN is the largest value, as in Spark
    levels = max(int(top).bit_length(), 1)
    table = np.empty((levels, len(values)), dtype=values.dtype)
    table[0] = values
    for j in range(1, levels):
        half = 1 << (j - 1)
        table[j, :-half] = pick(table[j - 1, :-half], table[j - 1, half:])
        table[j, -half:] = table[j - 1, -half:]
    return table


def _range_extreme(table: np.ndarray, lo: np.ndarray, hi: np.ndarray, largest: bool) -> np.ndarray:
    """Extreme of values[lo:hi] per row, two reads of the sparse table (rows with lo == hi read row 0)."""
    length = np.maximum(hi - lo, 1)
    level = np.frexp(length.astype(np.float64))[1] - 1  # floor(log2(length)), exact for integers
    pick = np.maximum if largest else np.fmin
    return pick(table[level, np.minimum(lo, table.shape[1] - 1)], table[level, np.maximum(hi - (1 << level), 0)])


@dataclass(frozen=True)
class _Layout:
    """Where each run (entity, bucket) starts in a table, and each row's time in micros (0 when null)."""

    first: np.ndarray
    at: np.ndarray

    @classmethod
    def of(cls, table: pa.Table, spec: PassSpec) -> _Layout:
        starts = _segment_starts(table, spec.segment, spec.time)
        return cls(np.flatnonzero(starts), _numpy(table.column(spec.time), np.int64))

    def spans(self, horizon: int) -> np.ndarray:
        """Each run's length on the time axis: its time range plus one look-back of gap."""
        last = np.concatenate((self.first[1:], [len(self.at)])) - 1
        return self.at[last] - self.at[self.first] + horizon + 1

    def split(self, at: int) -> tuple[_Layout, _Layout]:
        """The layouts of rows [0, at) and [at, n), `at` being a run's first row."""
        low, high = self.first[self.first < at], self.first[self.first >= at] - at
        return _Layout(low, self.at[:at]), _Layout(high, self.at[at:])


class Block:
    """One batch (with the carried look-back) laid out for windows: events, query rows and time keys."""

    def __init__(self, table: pa.Table, spec: PassSpec, rows: np.ndarray, layout: _Layout) -> None:
        self.table, self.spec = table, spec
        at, first = layout.at, layout.first
        segment = np.repeat(np.arange(len(first)), np.diff(np.concatenate((first, [table.num_rows]))))
        base = np.concatenate(([0], np.cumsum(layout.spans(spec.horizon))[:-1]))
        key = at - at[first][segment] + base[segment]  # runs end to end, a look-back apart, on one axis
        self.events = np.flatnonzero(_flag(table, spec, EV))
        self.event_key, self.event_run = key[self.events], segment[self.events]
        self.query_key = key[rows]
        self.query_base = base[segment[rows]]
        self._bounds: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._cache: dict[tuple, object] = {}

    @property
    def query_start(self) -> np.ndarray:
        """Index of the first event of each query row's run."""
        return self.cached(("start",), lambda: np.searchsorted(self.event_key, self.query_base, "left"))

    def upto(self, side: str) -> np.ndarray:
        """Events at or before (side "right") or strictly before ("left") each query row's time."""
        return self.cached(("upto", side), lambda: np.searchsorted(self.event_key, self.query_key, side))

    def bounds(self, micros: int, closed: str) -> tuple[np.ndarray, np.ndarray]:
        """Event index range [lo, hi) of each query row's window."""
        if (micros, closed) not in self._bounds:
            side = "right" if closed == "right" else "left"
            lo = np.searchsorted(self.event_key, self.query_key - micros, side)
            self._bounds[(micros, closed)] = (lo, self.upto(side))
        return self._bounds[(micros, closed)]

    def longest(self, feature: Feature) -> int:
        """The most events any window of the group's features like `feature` holds in this block."""
        alike = [f for f in self.spec.features if (f.function, f.ref) == (feature.function, feature.ref)]
        spans = [hi - lo for lo, hi in (self.bounds(f.micros, f.closed) for f in alike)]
        return max((int(s.max()) for s in spans if len(s)), default=1)

    def cached(self, key: tuple, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def column(self, ref: str) -> pa.Array:
        return self.cached(("column", ref), lambda: self.table.column(ref).take(pa.array(self.events)).combine_chunks())

    def valid(self, ref: str) -> np.ndarray:
        return self.cached(("valid", ref), lambda: _numpy(self.column(ref).is_valid(), bool))

    def counts(self, ref: str) -> np.ndarray:
        return self.cached(("counts", ref), lambda: np.concatenate(([0], np.cumsum(self.valid(ref)))))

    def count(self, ref: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        counts = self.counts(ref)
        return counts[hi] - counts[lo]

    def values(self, ref: str, kind: str) -> np.ndarray:
        """Numbers (nulls as 0), or for strings dense ranks in sort order."""

        def build() -> np.ndarray:
            column = self.column(ref)
            if kind == "int":
                return _numpy(column, np.int64)
            if kind == "float":
                return _numpy(column, np.float64)
            return _numpy(pc.rank(column, sort_keys="ascending", tiebreaker="dense"), np.int64)

        return self.cached(("values", ref), build)

    def order(self, ref: str, kind: str) -> np.ndarray:
        """Event positions in tie order: time, then nulls first, then value."""

        def build() -> np.ndarray:
            if kind in ORDERED:
                value = self.values(ref, kind)
            else:
                value = _numpy(pc.rank(self.column(ref), sort_keys="ascending", tiebreaker="dense"), np.int64)
            return np.lexsort((value, self.valid(ref), self.event_key))

        return self.cached(("order", ref), build)


def _first_last(block: Block, f: Feature, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    order = block.order(f.ref, f.kind)
    valid = block.valid(f.ref)[order]
    position = np.arange(len(order))
    if f.function == "first":
        following = np.where(valid, position, len(order))
        nearest = np.minimum.accumulate(following[::-1])[::-1]
        found = np.concatenate((nearest, [len(order)]))[lo]
        chosen = np.where(found < hi, found, -1)
    else:
        preceding = np.maximum.accumulate(np.where(valid, position, -1))
        found = preceding[np.maximum(hi - 1, 0)]
        chosen = np.where((hi > lo) & (found >= lo), found, -1)
    return np.where(chosen >= 0, order[np.maximum(chosen, 0)], -1)


def _distinct(block: Block, f: Feature) -> np.ndarray:
    """Distinct non-null values in each row's window, from the starts and ends of "latest of its value"."""
    present = np.flatnonzero(block.valid(f.ref))
    key, run = block.event_key[present], block.event_run[present]
    value = block.values(f.ref, f.kind)[present]
    order = np.lexsort((key, value, run))
    value, run, sorted_key = value[order], run[order], key[order]
    same = (value[1:] == value[:-1]) & (run[1:] == run[:-1])
    if value.dtype.kind == "f":
        same |= np.isnan(value[1:]) & np.isnan(value[:-1]) & (run[1:] == run[:-1])
    never = np.iinfo(np.int64).max
    following = np.concatenate((np.where(same, sorted_key[1:], never), [never]))
    ends = np.sort(np.minimum(following, sorted_key + f.micros))
    side = "right" if f.closed == "right" else "left"
    return np.searchsorted(key, block.query_key, side) - np.searchsorted(ends, block.query_key, side)


def _run_means(block: Block, ref: str, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each event's run mean, the centre its variance is taken around (small sums, little cancellation)."""
    runs = block.event_run
    size = int(runs.max()) + 1 if len(runs) else 0
    totals = np.bincount(runs, weights=np.where(valid, values, 0.0), minlength=size)
    counts = np.bincount(runs, weights=valid, minlength=size)
    return (totals / np.maximum(counts, 1))[runs]


def _numbers(block: Block, f: Feature, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values and validity of a count, sum, mean, variance, stddev, min or max for each query row."""
    n = block.count(f.ref, lo, hi)
    if f.function == "count":
        return n, np.ones(len(n), dtype=bool)
    valid = block.valid(f.ref)
    values = block.values(f.ref, f.kind)
    if f.function in ("min", "max"):
        largest = f.function == "max"
        if values.dtype.kind == "f":
            sentinel = -np.inf if largest else np.inf
        else:
            sentinel = np.iinfo(np.int64).min if largest else np.iinfo(np.int64).max
        table = block.cached(
            (f.function, f.ref), lambda: _sparse_table(np.where(valid, values, sentinel), block.longest(f), largest)
        )
        if not len(values):
            return np.zeros(len(lo), dtype=values.dtype), n > 0
        return _range_extreme(table, lo, hi, largest), n > 0
    if f.function == "sum" and f.kind == "int":
        prefix = block.cached(("isum", f.ref), lambda: np.concatenate(([0], np.cumsum(values))))
        return prefix[hi] - prefix[lo], n > 0
    numbers = values.astype(np.float64, copy=False)
    if f.function in ("sum", "mean"):
        total = _window_sum(block.cached(("sum", f.ref), lambda: _prefix(numbers)), lo, hi)
        return (total if f.function == "sum" else total / np.maximum(n, 1)), n > 0

    def centred() -> tuple:
        deviation = np.where(valid, numbers - _run_means(block, f.ref, numbers, valid), 0.0)
        return _prefix(deviation), _prefix(deviation * deviation)

    first, second = block.cached(("moments", f.ref), centred)
    s1, s2 = _window_sum(first, lo, hi), _window_sum(second, lo, hi)
    variance = np.maximum((s2 - s1 * s1 / np.maximum(n, 1)) / np.maximum(n - 1, 1), 0.0)
    return (variance if f.function == "variance" else np.sqrt(variance)), n > 1


def _lag_index(block: Block, f: Feature) -> np.ndarray:
    """Event index of the n-th previous event strictly before t, or -1 (none, or older than the TTL)."""
    order = block.order(f.ref, f.kind)
    position = block.upto("left") - f.n
    safe = np.maximum(position, 0)
    inside = (position >= block.query_start) & (block.event_key[safe] > block.query_key - f.micros)
    return np.where(inside, order[safe], -1) if len(order) else np.full(len(position), -1)


def _taken(block: Block, ref: str, index: np.ndarray) -> pa.Array:
    """Values of events at `index` (-1 gives null)."""
    return block.column(ref).take(pa.array(index, mask=index < 0))


def _last_n(block: Block, f: Feature, lo: np.ndarray, hi: np.ndarray) -> pa.Array:
    order = block.order(f.ref, f.kind)
    start = np.maximum(lo, hi - f.n)
    length = hi - start
    offsets = np.concatenate(([0], np.cumsum(length)))
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], length)
    values = block.column(f.ref).take(pa.array(order[np.repeat(start, length) + within]))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, mask=pa.array(length == 0))


def lag_kernel(block: Block, f: Feature, target: pa.DataType) -> pa.Array:
    """The k-th previous event's value strictly before t, within the TTL (`f.micros`)."""
    return _taken(block, f.ref, _lag_index(block, f))


def first_last(block: Block, f: Feature, target: pa.DataType) -> pa.Array:
    return _taken(block, f.ref, _first_last(block, f, *block.bounds(f.micros, f.closed)))


def last_n(block: Block, f: Feature, target: pa.DataType) -> pa.Array:
    return _last_n(block, f, *block.bounds(f.micros, f.closed))


def distinct(block: Block, f: Feature, target: pa.DataType) -> pa.Array:
    return pa.array(_distinct(block, f), pa.int64())


def numbers(block: Block, f: Feature, target: pa.DataType) -> pa.Array:
    """count, sum, mean, variance, stddev, min or max of each query row's window."""
    values, present = _numbers(block, f, *block.bounds(f.micros, f.closed))
    if f.kind == "string":  # extremes of strings are dense ranks: read the value of an event with that rank
        ranks = block.values(f.ref, f.kind)
        event_of_rank = np.zeros(int(ranks.max(initial=0)) + 1, dtype=np.int64)
        event_of_rank[ranks] = np.arange(len(ranks))
        return _taken(block, f.ref, np.where(present, event_of_rank[np.where(present, values, 0)], -1))
    return pa.array(values, mask=~present).cast(target)


def _emit(table: pa.Table, spec: PassSpec, rows: np.ndarray, layout: _Layout) -> pa.Table:
    """The passthrough columns and every feature of `rows`; features are null on unplaced rows."""
    block = Block(table, spec, rows, layout)
    placed = pa.array(_placed(table, spec)[rows])
    columns = [table.column(name).take(pa.array(rows)) for name in spec.passthrough]
    for f in spec.features:
        target = spec.schema.field(f.name).type
        columns.append(pc.if_else(placed, f.kernel(block, f, target), pa.nulls(len(rows), target)))
    return pa.Table.from_arrays(columns, schema=spec.schema)


def windows_pass(spec: PassSpec, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow's function: rows sorted by segment and time in, query rows with their features out."""
    carry, carried_done = None, np.zeros(0, dtype=bool)
    for batch in batches:
        fresh = pa.Table.from_batches([batch])
        table = fresh if carry is None else pa.concat_tables([carry, fresh]).combine_chunks()
        done = np.concatenate((carried_done, np.zeros(batch.num_rows, dtype=bool)))
        emitted, carry, carried_done = _step(table, done, spec, final=False)
        yield from emitted
    if carry is not None and carry.num_rows:
        emitted, _, _ = _step(carry, carried_done, spec, final=True)
        yield from emitted


def _step(
    table: pa.Table, done: np.ndarray, spec: PassSpec, final: bool
) -> tuple[list[pa.RecordBatch], pa.Table, np.ndarray]:
    """The batches of rows whose windows are complete, and the last run's rows later rows can reach."""
    n = table.num_rows
    layout = _Layout.of(table, spec)
    ready = _flag(table, spec, Q) & ~done
    keep = np.zeros(n, dtype=bool)
    if not final and n:
        at = layout.at
        tail = np.arange(n) >= layout.first[-1]
        ready &= ~(tail & (at == at[-1]))  # rows at the last time may have ties in the next batch
        keep = tail & (at >= at[-1] - spec.horizon)
    rows = np.flatnonzero(ready)
    emitted = [batch for part in _parts(table, spec, rows, layout) for batch in part.to_batches()]
    return emitted, table.filter(pa.array(keep)), (done | ready)[keep]


def _parts(table: pa.Table, spec: PassSpec, rows: np.ndarray, layout: _Layout) -> Iterator[pa.Table]:
    """Blocks of whole runs small enough for the time axis (runs are laid end to end on int64)."""
    if not len(rows):
        return
    reach = np.cumsum(layout.spans(spec.horizon))
    if reach[-1] < _LIMIT or len(layout.first) == 1:
        yield _emit(table, spec, rows, layout)
        return
    split = int(layout.first[max(int(np.searchsorted(reach, reach[-1] // 2)), 1)])
    low, high = layout.split(split)
    yield from _parts(table.slice(0, split), spec, rows[rows < split], low)
    yield from _parts(table.slice(split), spec, rows[rows >= split] - split, high)


def value_kind(data_type: T.DataType) -> str:
    """What the pass can do with a column's values: sum them (int, float), order them (string), or only pick them."""
    if isinstance(data_type, T.IntegralType):
        return "int"
    if isinstance(data_type, T.FloatType | T.DoubleType):
        return "float"
    return "string" if isinstance(data_type, T.StringType) else "other"


def unsupported(plan: GroupPlan, kinds: dict[str, str]) -> str | None:
    """Why the pass cannot compute every feature of the group, or None when it can."""
    for f in plan.windowed:
        kind, aggregation = kinds[f.input.ref], f.aggregation
        if f.micros is None:
            return f"{f.name}: a lifetime window is unbounded"
        if aggregation.vectorized is None:
            return f"{f.name}: {aggregation.name} is not vectorizable"
        if kind not in aggregation.vector_kinds:
            return f"{f.name}: {aggregation.name} of a {kind} column is not vectorizable"
    return None


def vectorized_features(
    rows: DataFrame,
    plan: GroupPlan,
    partition: list[str],
    passthrough: list[str],
    time: str = AT,
    sources: dict[str, str] | None = None,
) -> DataFrame:
    """The group's features on every query row: one shuffle, one sort, one Arrow pass per partition.

    By default `rows` holds events and queries with the time `_fl_at`, the flags `_fl_ev` and `_fl_q`
    (a query row in its own bucket), and each input as `_fl_in<i>`. When the rows are the queries
    themselves, `time` names their timestamp and `sources` maps inputs to the columns that hold them,
    so nothing is copied and no flag column is shipped to Python.
    """
    sources = sources or {}
    flags = time == AT
    types = {f.name: f.dataType for f in rows.schema.fields}
    column = {ref.ref: sources.get(ref.ref, ref.ref) for ref in plan.inputs}
    kinds = {ref: value_kind(types[name]) for ref, name in column.items()}
    features = [
        Feature(
            f.name,
            f.function,
            f.aggregation.vectorized,
            column[f.input.ref],
            kinds[f.input.ref],
            f.micros or 0,
            f.closed,
            f.n,
        )
        for f in plan.windowed
    ]
    outputs = [f.aggregation.output.spark_type(kinds[f.input.ref], types[column[f.input.ref]]) for f in plan.windowed]
    features += [
        Feature(
            lag.name, "lag", lag_kernel, column[lag.input.ref], kinds[lag.input.ref], plan.ttl_micros, "left", lag.k
        )
        for lag in plan.lags
    ]
    outputs += [types[column[lag.input.ref]] for lag in plan.lags]
    schema = T.StructType(
        [rows.schema[c] for c in passthrough]
        + [T.StructField(f.name, output, True) for f, output in zip(features, outputs, strict=True)]
    )
    keys = list(plan.group.keys)
    spec = PassSpec(
        tuple(keys),
        tuple(partition),
        time,
        flags,
        tuple(features),
        plan.horizon_micros,
        tuple(passthrough),
        to_arrow_schema(schema),
    )
    needed = [*passthrough, *partition, *column.values(), time, *([EV, Q] if flags else [])]
    ordered = rows.select(*dict.fromkeys(needed)).repartition(*partition).sortWithinPartitions(*partition, time)
    return ordered.mapInArrow(partial(windows_pass, spec), schema)
