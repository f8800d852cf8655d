"""The row groups of stored Parquet files (a Parquet folder, or the files of a Delta version), read with
pyarrow from footers and the Delta log alone, and whole groups read on their own.

Samplers draw from them without a scan, through `engine.runtime.datasets.StoredGroups`: the statistical
layer of the checks (`engine/quality/sampling.py`) and the feature plan chooser (`engine/features/plans.py`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from engine.runtime.datasets import GROUP

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowGroups:
    """The Parquet row groups behind a source: each file, its groups' row counts, the columns stored."""

    filesystem: pafs.FileSystem
    files: tuple[str, ...]
    sizes: tuple[tuple[int, ...], ...]
    columns: frozenset[str]

    @property
    def rows(self) -> int:
        return sum(sum(groups) for groups in self.sizes)

    @property
    def count(self) -> int:
        return sum(len(groups) for groups in self.sizes)

    def read(self, drawn: list[tuple[int, np.ndarray | None]], columns: list[str]) -> tuple[pa.Table, int]:
        """Rows of the drawn groups (indices over all files' groups, each with the positions of its rows to keep,
        or None for all of them) of `columns`, each row with its draw's position in `GROUP`; and the stored
        bytes of the column chunks read (as the footers give them)."""
        located = [(f, g) for f, per_file in enumerate(self.sizes) for g in range(len(per_file))]
        by_file: dict[int, list[tuple[int, int, np.ndarray | None]]] = defaultdict(list)
        for position, (index, kept) in enumerate(drawn):
            file, group = located[index]
            by_file[file].append((position, group, kept))
        parts, read = [], 0
        for file, wanted in by_file.items():
            reader = pq.ParquetFile(self.files[file], filesystem=self.filesystem)
            for position, group, kept in wanted:
                rows = reader.read_row_group(group, columns=columns)
                rows = rows if kept is None else rows.take(kept)
                parts.append(rows.append_column(GROUP, pa.array(np.full(rows.num_rows, position, dtype=np.int32))))
                meta = reader.metadata.row_group(group)
                chunks = (meta.column(i) for i in range(meta.num_columns))
                read += sum(c.total_compressed_size for c in chunks if c.path_in_schema.split(".")[0] in columns)
        return pa.concat_tables(parts), read


def _footers(filesystem: pafs.FileSystem, files: list[str]) -> RowGroups:
    sizes, columns = [], None
    for path in files:
        meta = pq.read_metadata(path, filesystem=filesystem)
        sizes.append(tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)))
        names = frozenset(meta.schema.to_arrow_schema().names)
        columns = names if columns is None else columns & names
    return RowGroups(filesystem, tuple(files), tuple(sizes), columns or frozenset())


def parquet_row_groups(path: str) -> RowGroups:
    """The row groups of a Parquet file or folder (hidden and `_` files skipped, as Spark skips them)."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet")
    return _footers(dataset.filesystem, list(dataset.files))


def delta_row_groups(path: str, version: int | None = None) -> RowGroups | None:
    """The row groups of a Delta version's files; None where the files alone do not hold the version's
    rows as stored (deletion vectors hide rows, column mapping renames columns)."""
    from deltalake import DeltaTable

    table = DeltaTable(path, version=version)
    if "deletionVectors" in (table.protocol().reader_features or []):
        return None
    if table.metadata().configuration.get("delta.columnMapping.mode", "none") != "none":
        return None
    uris = table.file_uris()
    if not uris:
        return None
    filesystem, _ = pafs.FileSystem.from_uri(uris[0])
    return _footers(filesystem, [pafs.FileSystem.from_uri(uri)[1] for uri in uris])


def stored_row_groups(fmt: str, path: str, version: int | None = None) -> RowGroups | None:
    """A Parquet or Delta source's row groups, or None (other formats, or storage pyarrow cannot open)."""
    try:
        if fmt == "parquet":
            return parquet_row_groups(path)
        if fmt == "delta":
            return delta_row_groups(path, version)
    except (OSError, ValueError, pa.ArrowException) as err:  # a source Spark can read but pyarrow cannot
        _log.info("row groups of %s unavailable (%s); the statistical layer samples rows", path, err)
    return None
