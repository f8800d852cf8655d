"""What the quality stage takes in: a source read and counted, with its malformed lines kept aside.

The source edge produces these and the quality stage consumes them; they live here so that
quality never imports the source edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

if TYPE_CHECKING:
    from engine.runtime.row_groups import RowGroups

CORRUPT = "_corrupt_record"  # the column holding a malformed line's raw text (permissive CSV and JSON reads)


@dataclass(frozen=True)
class SourceData:
    """A source read and cached: the rows, their count, and the malformed lines among them."""

    name: str
    df: DataFrame
    rows: int
    malformed: int
    stored_schema: T.StructType
    row_groups: RowGroups | None = None  # the stored Parquet row groups of these rows, when known

    @property
    def well_formed(self) -> DataFrame:
        if CORRUPT not in self.df.columns:
            return self.df
        return self.df.where(F.col(CORRUPT).isNull()).drop(CORRUPT)
