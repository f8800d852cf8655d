"""Row placement for the windowed plans: which rows a group's frames run over, and where they sit.

The plans read one frame of rows per group: events (rows that enter windows at their known-at time)
and query rows (rows that get features), both timed in microseconds (`AT`) and flagged (`EV`, `Q`).
Placement lays them out:

- time buckets (`bucketed`): rows are partitioned by entity and time bucket, and an event in the last
  look-back of a bucket is copied into the next, so a hot entity spreads over many tasks (`OWN` marks
  a row in its home bucket);
- histories (`with_histories`): each event keeps its last K events, for lags and last-N values;
- distinct markers (`with_distinct_markers`): a -1 row where an event stops being the latest of its
  value in a window, so a distinct count is a running total.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

if TYPE_CHECKING:  # compile reads the function registry, which builds on placement
    from engine.features.compile import GroupPlan, Windowed

AT, BUCKET, OWN, EV, Q = "_fl_at", "_fl_bucket", "_fl_own", "_fl_ev", "_fl_q"
_HIST, _POS = "_fl_hist", "_fl_pos"


class RunningRows(StrEnum):
    """Helper rows a function's running implementation reads (`Aggregation.running_rows`)."""

    HISTORY = "history"
    DISTINCT_MARKERS = "distinct_markers"


def struct(*pairs: tuple[str, Column]) -> Column:
    return F.struct(*[column.alias(name) for name, column in pairs])


def delta_ref(f: Windowed) -> str:
    """The column of +1/-1 distinct-count deltas of feature `f`."""
    return f"_fl_d_{f.input.ref}_{f.window}"


def history_ref(ref: str) -> str:
    """The column holding each event's kept history of input `ref`."""
    return f"{_HIST}_{ref}"


def position_ref(ref: str) -> str:
    """The column holding each event's position in the tie order of input `ref`."""
    return f"{_POS}_{ref}"


def _needs(plan: GroupPlan, rows: RunningRows) -> list[Windowed]:
    return [f for f in plan.windowed if f.aggregation.running_rows == rows]


def bucketed(rows: DataFrame, bucket: int | None, horizon: int) -> DataFrame:
    """Assign each row its time bucket; an event in the last `horizon` of a bucket also goes to the next.

    One explode, not a union, so the rows' lineage is evaluated once. Rows without a time get a null
    bucket: a group of their own that no frame of a timed row reaches.
    """
    if bucket is None:
        return rows.withColumns({BUCKET: F.when(F.col(AT).isNotNull(), F.lit(0)).cast("long"), OWN: F.lit(True)})
    own = F.floor(F.col(AT) / bucket)
    home = struct(("b", own), ("own", F.lit(True)))
    next_bucket = struct(("b", own + 1), ("own", F.lit(False)))
    copied = F.col(EV) & (F.col(AT) >= (own + 1) * bucket - horizon)
    placed = rows.withColumn(
        "_fl_place", F.explode(F.when(copied, F.array(home, next_bucket)).otherwise(F.array(home)))
    )
    return placed.withColumns(
        {BUCKET: F.col("_fl_place.b"), OWN: F.col("_fl_place.own"), Q: F.col(Q) & F.col("_fl_place.own")}
    ).drop("_fl_place")


def with_histories(events: DataFrame, *, plan: GroupPlan, partition: list[str]) -> DataFrame:
    """Each event keeps (time, value) of its last K events, itself last, for lags and last-N values.

    Events at one time are ordered by the column's own value; `position_ref(ref)` records that order.
    """
    refs = sorted({lag.input.ref for lag in plan.lags} | {f.input.ref for f in _needs(plan, RunningRows.HISTORY)})
    columns = {}
    for ref in refs:
        ordered = Window.partitionBy(*partition).orderBy(AT, ref)
        kept = ordered.rowsBetween(-(plan.history_depth - 1), 0)
        columns[history_ref(ref)] = F.collect_list(struct(("a", F.col(AT)), ("v", F.col(ref)))).over(kept)
        columns[position_ref(ref)] = F.row_number().over(ordered)
    return events.withColumns(columns) if columns else events


def with_distinct_markers(events: DataFrame, plan: GroupPlan, partition: list[str]) -> DataFrame:
    """+1 on each event and a -1 marker row where it stops being the latest of its value in the window.

    Each event row explodes into itself and its markers (one lineage, no union of filtered copies).
    """
    distinct = list({delta_ref(f): f for f in _needs(plan, RunningRows.DISTINCT_MARKERS)}.values())
    if not distinct:
        return events
    refs = sorted({f.input.ref for f in distinct})
    events = events.withColumns(
        {f"_fl_next_{ref}": F.lead(AT).over(Window.partitionBy(*partition, ref).orderBy(AT)) for ref in refs}
    )
    placements = [struct(("kind", F.lit(0)), ("at", F.col(AT)))]
    for i, f in enumerate(distinct, start=1):
        following = F.col(f"_fl_next_{f.input.ref}")
        end = following if f.micros is None else F.least(following, F.col(AT) + f.micros)
        marked = F.col(EV) & F.col(f.input.ref).isNotNull() & end.isNotNull()
        placements.append(F.when(marked, struct(("kind", F.lit(i)), ("at", end))))
    placed = events.withColumn("_fl_place", F.explode(F.filter(F.array(*placements), lambda p: p.isNotNull())))
    kind, is_event = F.col("_fl_place.kind"), F.col("_fl_place.kind") == 0
    deltas = {
        delta_ref(f): F.when(is_event & F.col(EV) & F.col(f.input.ref).isNotNull(), F.lit(1)).when(kind == i, F.lit(-1))
        for i, f in enumerate(distinct, start=1)
    }
    values = {ref.ref: F.when(is_event, F.col(ref.ref)) for ref in plan.inputs}
    flags = {AT: F.col("_fl_place.at"), EV: F.col(EV) & is_event, Q: F.col(Q) & is_event}
    return placed.withColumns({**deltas, **values, **flags}).drop("_fl_place")
