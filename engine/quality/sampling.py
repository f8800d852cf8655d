"""The statistical layer's sample: whole row groups of the stored files where there are enough of them,
else a row sample.

A row-group sample reads only the groups it draws. Parquet footers (and the Delta log, for a Delta
version) give every group's row count, so the groups are drawn by row count alone, without a scan:
at least `min_groups` of them, chosen uniformly without replacement, and then rows at one rate
within them, so that every row had the same chance and the sample is self-weighting. Row groups are
clusters (a sorted or clustered table puts alike rows together), so the sample keeps each row's
group: the intervals (`intervals.py`) are computed from the groups' totals.

A table whose drawn groups would hold more than `MAX_READ_SHARE` of its rows has too few groups for
a row-group sample to save a scan; it, and any source that is not Parquet or Delta, gets a Bernoulli
row sample (one scan), each row its own cluster.

Either way the sample is collected to the driver (it is small) and handed back to Spark as a
one-partition DataFrame, so Deequ and the clusters' totals read it without touching the source again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from engine.runtime.arrow import from_arrow, to_arrow
from engine.runtime.datasets import GROUP, StoredGroups

CLUSTER = GROUP  # a sampled row's cluster: the position of its row group among those drawn
MAX_READ_SHARE = 0.25  # past it, reading the drawn groups costs about what a scan does
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """The sampled rows of the checked columns (one partition, with each row's cluster), its design, and the
    bytes of stored column chunks it read (0 for a row sample, which Spark reads and counts)."""

    df: DataFrame
    rows: int
    clusters: int
    design: str
    bytes_read: int = 0


def draw_row_groups(
    sizes: np.ndarray, sample_rows: int, min_groups: int, rng: np.random.Generator
) -> list[tuple[int, np.ndarray]] | None:
    """Draw groups (indices into `sizes`) and the rows kept in each, or None when the table has too few
    groups: at least `min_groups` groups, and enough that they hold about `sample_rows` rows, then rows at
    the one rate that leaves `sample_rows` of them."""
    total = int(sizes.sum())
    if not min_groups or not total:
        return None
    wanted = max(min_groups, math.ceil(sample_rows * len(sizes) / total))
    if wanted > len(sizes):
        return None
    chosen = np.sort(rng.choice(len(sizes), wanted, replace=False))
    drawn = int(sizes[chosen].sum())
    if drawn > MAX_READ_SHARE * total:
        return None
    rate = min(1.0, sample_rows / drawn)
    return [(int(g), np.flatnonzero(rng.random(int(sizes[g])) < rate)) for g in chosen]


def _schema(df: DataFrame, columns: list[str]) -> T.StructType:
    return T.StructType([*df.select(*columns).schema.fields, T.StructField(CLUSTER, T.IntegerType(), False)])


def _row_sample(df: DataFrame, columns: list[str], fraction: float, seed: int) -> Sample:
    table = to_arrow(df.sample(withReplacement=False, fraction=fraction, seed=seed).select(*columns))
    table = table.append_column(CLUSTER, pa.array(np.arange(table.num_rows, dtype=np.int32)))
    frame = from_arrow(df.sparkSession, table, _schema(df, columns))
    return Sample(frame, table.num_rows, table.num_rows, f"{table.num_rows:,} rows (Bernoulli)")


def draw_sample(
    df: DataFrame,
    columns: list[str],
    *,
    rows: int,
    sample_rows: int,
    min_groups: int,
    seed: int,
    row_groups: StoredGroups | None,
) -> Sample:
    """About `sample_rows` rows of `df`'s `columns`: from its stored row groups when they are the rows of
    `df` (every row, every column) and numerous enough, else a row sample of `df`."""
    drawn = None
    if row_groups is not None and row_groups.rows == rows and set(columns) <= row_groups.columns:
        sizes = np.array([n for per_file in row_groups.sizes for n in per_file], dtype=np.int64)
        drawn = draw_row_groups(sizes, sample_rows, min_groups, np.random.default_rng(seed))
    if drawn is None:
        return _row_sample(df, columns, sample_rows / rows, seed)
    try:
        table, read = row_groups.read(drawn, columns)
        frame = from_arrow(df.sparkSession, table, _schema(df, columns))
    except (OSError, pa.ArrowException) as err:  # e.g. stored types a declared schema does not cast to
        _log.info("row-group sample failed (%s); sampling rows", err)
        return _row_sample(df, columns, sample_rows / rows, seed)
    design = f"{table.num_rows:,} rows from {len(drawn)} of {row_groups.count:,} row groups"
    return Sample(frame, table.num_rows, len(drawn), design, read)
