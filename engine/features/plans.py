"""Which plan computes a group's windows: the cheapest exact one for the shape of the data.

- `sliding`: Spark's moving range frames. Each row reads its window's events again, so the cost grows
  with the events per window; with a handful per window it is the cheapest plan.
- `vectorized`: one shuffle, one sort and one numpy pass over Arrow batches; its cost hardly depends on
  how many events a window holds. It computes bounded windows of numbers and strings.
- `running`: running totals in Spark frames; general (lifetime windows, decimals, any type).

With `features.plan: auto` a 0.5% sample of the events is measured for every set of entity keys: how
many of the same entity's events a window holds, summed over the group's features (`reads`), and the
largest entity's share of the rows. When the events are a Parquet or Delta table's rows as stored,
the sample comes from whole row groups read alone with pyarrow (`measure_stored`; no Spark job, and
the rest of the table is not read); otherwise one Spark job measures a Bernoulli sample (`measure`).
Below `SLIDING_MAX_READS` the sliding plan runs, above it the vectorized one (or running, for what
vectorized does not compute). Time buckets (`skew_split`) are used only when one entity holds more
rows than a task's share; they spread it over tasks at the cost of copied rows.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import reduce

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from engine.config.features import FeaturesConfig, Plan
from engine.errors import ConfigError
from engine.features.compile import GroupPlan
from engine.features.vectorized import unsupported, value_kind
from engine.runtime.datasets import GROUP, StoredGroups

SAMPLE_FRACTION = 0.005
MIN_SAMPLE_ROWS = 20_000
# A row-group sample draws the groups that hold about its rows, and more, up to `MIN_GROUPS`, while they
# stay within `MAX_READ_SHARE` of the table's groups: more, smaller clusters estimate a table sorted by
# entity better. Never fewer than two, so that pairs of an entity's events in different groups are seen.
MIN_GROUPS = 16
MAX_READ_SHARE = 0.1
# Events read per row above which the vectorized pass is cheaper. Measured on the flights' tail
# numbers (one group, 4 windows x 3 aggregates): sliding 1.5 s against 1.8 s at 12 reads per row,
# level (2.2 s each) at 32.
SLIDING_MAX_READS = 30.0
# A frame that collects its events (lags, last-N, distinct counts) builds and sorts an array per row:
# each event it reads costs about this many reads of a running aggregate (the same group's two lags
# over a 7-day TTL cost the sliding plan as much as its 12 windowed features).
COLLECTED_READ_COST = 4.0


@dataclass(frozen=True)
class Choice:
    """The plan for one group, whether hot entities are split into time buckets, and why."""

    plan: Plan
    split: bool
    reason: str


@dataclass(frozen=True)
class Shape:
    """What a sample says of a group's events: for a random event, how many events its entity has
    (`same_entity`), over what time span (microseconds), and the largest entity's share of rows."""

    same_entity: float
    span: int
    largest_share: float


def measure(events: DataFrame, key_sets: list[tuple[str, ...]], time: Column) -> dict[tuple[str, ...], Shape]:
    """The shape of the events per set of entity keys, in one job over one Bernoulli sample: each
    sampled event is counted once per key set (its keys hashed to one 64-bit value, so every set
    groups in the same aggregation; a rare collision only nudges an estimate), and Σn² is corrected
    for the sampling (from Σc²)."""
    p = SAMPLE_FRACTION
    if not key_sets:
        return {}
    entries = []
    for i, keys in enumerate(key_sets):
        keyed = reduce(operator.and_, [F.col(k).isNotNull() for k in keys])
        entries.append(F.struct(F.lit(i).alias("i"), F.when(keyed, F.xxhash64(*keys)).alias("k")))
    columns = list(dict.fromkeys(k for keys in key_sets for k in keys))
    per_entity = (
        events.where(time.isNotNull())
        .select(*columns, time.alias("t"))
        .sample(fraction=p, seed=17)
        .select(F.explode(F.array(*entries)).alias("e"), "t")
        .select("e.i", "e.k", "t")
        .where(F.col("k").isNotNull())
        .groupBy("i", "k")
        .agg(F.count(F.lit(1)).alias("c"), F.min("t").alias("lo"), F.max("t").alias("hi"))
    )
    # A sample's entities fit one task: no second shuffle.
    totals = (
        per_entity.coalesce(1)
        .groupBy("i")
        .agg(
            F.sum(F.col("c") * F.col("c")).alias("squares"),
            F.sum("c").alias("rows"),
            F.max("c").alias("largest"),
            F.min("lo").alias("lo"),
            F.max("hi").alias("hi"),
        )
    )
    shapes = dict.fromkeys(key_sets, Shape(0.0, 1, 0.0))
    for row in totals.collect():
        if row["rows"]:
            same_entity = max(row["squares"] - (1 - p) * row["rows"], 0.0) / (p * row["rows"])
            shapes[key_sets[row["i"]]] = Shape(same_entity, max(row["hi"] - row["lo"], 1), row["largest"] / row["rows"])
    return shapes


def _stored_shape(sample: pa.Table, keys: tuple[str, ...], drawn: int, groups: int, rate: float) -> Shape | None:
    """The shape of one key set from a row-group sample: `drawn` of `groups` groups, rows kept at `rate`.

    Σn² (over entities, of their event counts) is estimated pair by pair (Horvitz-Thompson): a pair of one
    entity's events in the same group is sampled with chance (drawn/groups)·rate², a pair in two groups
    with (drawn/groups)·((drawn-1)/(groups-1))·rate². The sample says which of its pairs are which,
    so a table sorted or clustered by entity is measured as well as a shuffled one."""
    rows = sample.filter(reduce(pc.and_, [sample[k].is_valid() for k in keys], sample["t"].is_valid()))
    if not rows.num_rows:
        return None
    per_group = rows.group_by([*keys, GROUP], use_threads=False).aggregate([("t", "count")])
    counts = per_group["t_count"].to_numpy().astype(np.float64)
    per_entity = per_group.group_by(list(keys), use_threads=False).aggregate([("t_count", "sum")])
    totals = per_entity["t_count_sum"].to_numpy().astype(np.float64)
    within, across = float((counts * (counts - 1)).sum()), float((totals**2).sum() - (counts**2).sum())
    share = drawn / groups
    cross = share * (drawn - 1) / (groups - 1) if groups > 1 else 0.0
    population = rows.num_rows / (share * rate)
    pairs = within / (share * rate**2) + (across / (cross * rate**2) if cross else 0.0)
    times = pc.min_max(rows["t"])
    span = max(int(times["max"].as_py() - times["min"].as_py()), 1)
    return Shape(float(1.0 + pairs / population), span, float(totals.max()) / rows.num_rows)


def measure_stored(
    groups: StoredGroups, key_sets: list[tuple[str, ...]], time_column: str, seed: int = 17
) -> dict[tuple[str, ...], Shape] | None:
    """The shape of the events per set of entity keys from the table's stored row groups: whole groups drawn
    at random and read alone (only the key and time columns; how many: `MIN_GROUPS`), and rows kept within
    them at one rate, about `SAMPLE_FRACTION` of the table (`MIN_SAMPLE_ROWS` at least). None when the
    columns are not all stored or the time is not a stored timestamp (the caller measures in Spark)."""
    columns = list(dict.fromkeys([*(k for keys in key_sets for k in keys), time_column]))
    sizes = np.array([n for per_file in groups.sizes for n in per_file], dtype=np.int64)
    if not key_sets or not set(columns) <= groups.columns or not sizes.sum():
        return None
    rng = np.random.default_rng(seed)
    target = min(max(SAMPLE_FRACTION * sizes.sum(), MIN_SAMPLE_ROWS), sizes.sum())
    needed = math.ceil(target * len(sizes) / sizes.sum())
    wanted = min(len(sizes), max(2, needed, min(MIN_GROUPS, int(MAX_READ_SHARE * len(sizes)))))
    chosen = np.sort(rng.choice(len(sizes), wanted, replace=False))
    rate = min(1.0, target / sizes[chosen].sum())
    drawn = [(int(g), np.flatnonzero(rng.random(int(sizes[g])) < rate)) for g in chosen]
    sample, _ = groups.read(drawn, columns)
    if not pa.types.is_timestamp(sample.schema.field(time_column).type):
        return None
    micros = pc.cast(pc.cast(sample[time_column], pa.timestamp("us")), pa.int64())
    sample = sample.append_column("t", micros)
    shapes = {keys: _stored_shape(sample, keys, wanted, len(sizes), rate) for keys in key_sets}
    return {keys: shape or Shape(0.0, 1, 0.0) for keys, shape in shapes.items()}


def reads(plan: GroupPlan, shape: Shape) -> float:
    """Events the sliding plan reads per row: each feature reads its window (lags read the TTL), and
    an event a frame collects (`Aggregation.collects`) counts `COLLECTED_READ_COST` times."""
    spans = [(f.micros or shape.span, COLLECTED_READ_COST if f.aggregation.collects else 1.0) for f in plan.windowed]
    spans += [(plan.ttl_micros, COLLECTED_READ_COST) for _ in plan.lags]
    return sum(cost * shape.same_entity * min(span / shape.span, 1.0) for span, cost in spans)


def choose(events: DataFrame, plan: GroupPlan, cfg: FeaturesConfig, shape: Shape | None, partitions: int) -> Choice:
    """The configured plan, or with `auto` the cheapest exact one for the group's measured `shape`."""
    kinds = {i.ref: "int" if i.column is None else value_kind(events.schema[i.column].dataType) for i in plan.inputs}
    why_not = unsupported(plan, kinds)
    name = plan.group.name
    if cfg.plan != Plan.AUTO:
        if cfg.plan == Plan.VECTORIZED and why_not:
            raise ConfigError(f"features.plan: vectorized cannot compute group '{name}' ({why_not})")
        return Choice(cfg.plan, True, "set by features.plan")
    if shape is None:
        raise ValueError(f"features.groups.{name}: plan auto needs the events' measured shape")
    per_row = reads(plan, shape)
    split = shape.largest_share > 1 / max(partitions, 1)
    detail = f"{per_row:.1f} events read per row, largest entity {shape.largest_share:.1%} of rows"
    if per_row <= SLIDING_MAX_READS:
        return Choice(Plan.SLIDING, split, detail)
    return Choice(Plan.RUNNING if why_not else Plan.VECTORIZED, split, detail)
