"""What the source edge hands the layers after it: a source read and counted, with its malformed lines
kept aside, and (for Parquet and Delta) the stored row groups behind its rows.

The source edge produces these and the quality and feature layers consume them; they live here so that
neither imports the source edge. `StoredGroups` is the part of the stored row groups the samplers use
(`engine.sources.row_groups` implements it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

CORRUPT = "_corrupt_record"  # the column holding a malformed line's raw text (permissive CSV and JSON reads)
GROUP = "__featurelake_group"  # a row's draw position among the row groups read (`StoredGroups.read`)


class StoredGroups(Protocol):
    """The Parquet row groups behind a source's rows: per file, its groups' row counts; the stored columns."""

    sizes: tuple[tuple[int, ...], ...]
    columns: frozenset[str]

    @property
    def rows(self) -> int: ...

    @property
    def count(self) -> int: ...

    def read(self, drawn: list[tuple[int, np.ndarray | None]], columns: list[str]) -> tuple[pa.Table, int]:
        """Rows of the drawn groups with `GROUP`, and the stored bytes of the column chunks read."""
        ...


@dataclass(frozen=True)
class SourceData:
    """A source read and cached: the rows, their count, and the malformed lines among them."""

    name: str
    df: DataFrame
    rows: int
    malformed: int
    stored_schema: T.StructType
    row_groups: StoredGroups | None = None  # the stored Parquet row groups of these rows, when known

    @property
    def well_formed(self) -> DataFrame:
        if CORRUPT not in self.df.columns:
            return self.df
        return self.df.where(F.col(CORRUPT).isNull()).drop(CORRUPT)
