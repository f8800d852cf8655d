"""Table metadata read from a Delta table's log only (no file listing): properties and partitioning.

`DESCRIBE DETAIL` also sums every file's size, which costs seconds on a table with many
partitions; these statements read the metadata alone.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from engine.sql import quote_identifier, unquote_identifier


def sql_location(path: str) -> str:
    """The path as Delta SQL names it (`delta.`<absolute path>``); relative local paths are resolved."""
    location = path if "://" in path else str(Path(path).resolve())
    return f"delta.{quote_identifier(location)}"


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {sql_location(path)}").collect()}


def partition_columns(spark: SparkSession, path: str) -> list[str]:
    """The partition columns, from the `# Partition Information` section of DESCRIBE TABLE (which quotes a
    name that needs quoting)."""
    rows = [r["col_name"] for r in spark.sql(f"DESCRIBE TABLE {sql_location(path)}").collect()]
    if "# Partition Information" not in rows:
        return []
    section = rows[rows.index("# Partition Information") + 1 :]
    return [unquote_identifier(name) for name in section if name and not name.startswith("#")]
