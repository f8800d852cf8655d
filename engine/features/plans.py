"""Which plan computes a group's windows: the cheapest exact one for the shape of the data.

- `sliding`: Spark's moving range frames. Each row reads its window's events again, so the cost grows
  with the events per window; with a handful per window it is the cheapest plan.
- `vectorized`: one shuffle, one sort and one numpy pass over Arrow batches; its cost hardly depends on
  how many events a window holds. It computes bounded windows of numbers and strings.
- `running`: running totals in Spark frames; general (lifetime windows, decimals, any type).

With `features.plan: auto` one Spark job measures a 0.5% sample of the events for every set of entity
keys: how many of the same entity's events a window holds, summed over the group's features
(`reads`), and the largest entity's share of the rows. Below `SLIDING_MAX_READS` the sliding plan
runs, above it the vectorized one (or running, for what vectorized does not compute). Time buckets
(`skew_split`) are used only when one entity holds more rows than a task's share; they spread it over
tasks at the cost of copied rows.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from engine.config.features import FeaturesConfig
from engine.errors import ConfigError
from engine.features.compile import GroupPlan
from engine.features.vectorized import supports, value_kind

SAMPLE_FRACTION = 0.005
# Events read per row above which the vectorized pass is cheaper. Measured on the flights' tail
# numbers (one group, 4 windows x 3 aggregates): sliding 1.5 s against 1.8 s at 12 reads per row,
# level (2.2 s each) at 32.
SLIDING_MAX_READS = 30.0
# A frame that collects its events (lags, last-N, distinct counts) builds and sorts an array per row:
# each event it reads costs about this many reads of a running aggregate (the same group's two lags
# over a 7-day TTL cost the sliding plan as much as its 12 windowed features).
COLLECTED_READ_COST = 4.0
COLLECTED = frozenset({"last_n", "count_distinct", "approx_count_distinct"})


@dataclass(frozen=True)
class Choice:
    """The plan for one group, whether hot entities are split into time buckets, and why."""

    plan: str
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


def reads(plan: GroupPlan, shape: Shape) -> float:
    """Events the sliding plan reads per row: each feature reads its window (lags read the TTL), and
    an event a frame collects counts `COLLECTED_READ_COST` times."""
    spans = [(f.micros or shape.span, COLLECTED_READ_COST if f.function in COLLECTED else 1.0) for f in plan.windowed]
    spans += [(plan.ttl_micros, COLLECTED_READ_COST) for _ in plan.lags]
    return sum(cost * shape.same_entity * min(span / shape.span, 1.0) for span, cost in spans)


def choose(events: DataFrame, plan: GroupPlan, cfg: FeaturesConfig, shape: Shape | None, partitions: int) -> Choice:
    """The configured plan, or with `auto` the cheapest exact one for the group's measured `shape`."""
    kinds = {i.ref: "int" if i.column is None else value_kind(events.schema[i.column].dataType) for i in plan.inputs}
    vectorizable = supports(plan, kinds)
    name = plan.group.name
    if cfg.plan != "auto":
        if cfg.plan == "vectorized" and not vectorizable:
            raise ConfigError(
                f"features.plan: vectorized cannot compute group '{name}' "
                "(it takes bounded windows, and sums, means and variances of numbers only)"
            )
        return Choice(cfg.plan, True, "set by features.plan")
    if shape is None:
        raise ValueError(f"features.groups.{name}: plan auto needs the events' measured shape")
    per_row = reads(plan, shape)
    split = shape.largest_share > 1 / max(partitions, 1)
    detail = f"{per_row:.1f} events read per row, largest entity {shape.largest_share:.1%} of rows"
    if per_row <= SLIDING_MAX_READS:
        return Choice("sliding", split, detail)
    return Choice("vectorized" if vectorizable else "running", split, detail)
