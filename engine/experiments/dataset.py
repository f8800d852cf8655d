"""A pinned Delta version read without a JVM (delta-rs), and the time-based train/validation split.

delta-rs reads the version's snapshot from the Delta log (files, partition values, deletion
vectors), so a trial sees exactly the rows Spark would, with the table's types and nulls. A sweep's
driver only describes the reads (`VariantsRead`); on Ray, its tasks read the rows, so the driver holds none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from engine.config.experiment import SplitConfig
from engine.errors import SourceError, first_line


@dataclass(frozen=True)
class TableVersion:
    """One version of a Delta table: what a trial reads, and what MLflow records as its dataset."""

    path: str
    version: int


@dataclass(frozen=True)
class VariantsRead:
    """Variants whose trials read the same table version and the rows the same `filters` keep: each
    variant's features, in the order the variants are prepared."""

    table: TableVersion
    features: dict[str, tuple[str, ...]]
    filters: tuple[tuple, ...] = ()


def read_arrow_table(table: TableVersion, columns: list[str], filters: list[tuple] | None = None) -> pa.Table:
    """The given columns of one table version, as Arrow; `filters` (delta-rs DNF, e.g. on the
    partition column) keep only matching rows."""
    try:
        delta = DeltaTable(table.path, version=table.version)
        absent = sorted(set(columns) - set(delta.schema().to_arrow().names))
        if absent:
            raise SourceError(f"{table.path}@{table.version} lacks columns {absent}")
        return delta.to_pyarrow_table(columns=columns, filters=filters or None)
    except TableNotFoundError:
        raise SourceError(f"no Delta table at {table.path}") from None
    except (DeltaError, OSError) as err:
        raise SourceError(f"cannot read {table.path}@{table.version}: {first_line(err)}") from None


def _cut(times: pd.Series, cfg: SplitConfig) -> pd.Timestamp:
    if cfg.valid_from is not None:
        cut = pd.Timestamp(datetime.fromisoformat(cfg.valid_from))
        if times.dt.tz is not None and cut.tz is None:
            return cut.tz_localize("UTC")
        return cut.tz_convert("UTC").tz_localize(None) if times.dt.tz is None and cut.tz is not None else cut
    ordered = times.sort_values(kind="stable").reset_index(drop=True)
    return ordered.iloc[min(int(len(ordered) * (1 - cfg.valid_fraction)), len(ordered) - 1)]


def time_split(frame: pd.DataFrame, label: str, cfg: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on rows before the cut (less the gap), validate on rows at or after it; rows without
    label or time are left out.

    The cut is a time, so rows sharing a timestamp land on the same side and nothing from the
    validation period reaches training.
    """
    rows = frame.dropna(subset=[label, cfg.time_column])
    if rows.empty:
        raise ValueError("no row has both a label and a time")
    cut = _cut(rows[cfg.time_column], cfg)
    times = rows[cfg.time_column]
    return rows[times < cut - pd.Timedelta(seconds=cfg.gap_seconds)], rows[times >= cut]
