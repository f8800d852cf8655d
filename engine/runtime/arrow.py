"""Small Arrow tables into and out of Spark, without pandas (whose conversions turn a null integer
into a float): the same Arrow stream pyspark's own `createDataFrame` and `toPandas` use."""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.serializers import ArrowStreamSerializer
from pyspark.sql.pandas.types import to_arrow_schema


def to_arrow(df: DataFrame) -> pa.Table:
    """Collect `df` (small: it goes to the driver) as one Arrow table in Spark's Arrow types."""
    batches = df._collect_as_arrow()
    if not batches:
        return to_arrow_schema(df.schema).empty_table()
    return pa.Table.from_batches(batches)


def from_arrow(spark: SparkSession, table: pa.Table, schema: T.StructType) -> DataFrame:
    """A DataFrame of `schema` holding `table` (cast to Spark's Arrow types for it), one partition."""
    if not table.num_rows:
        return spark.createDataFrame([], schema)
    jvm = spark._jvm
    batch = table.cast(to_arrow_schema(schema)).combine_chunks().to_batches()
    rows = spark.sparkContext._serialize_to_jvm(
        batch,
        ArrowStreamSerializer(),
        lambda path: jvm.PythonSQLUtils.readArrowStreamFromFile(path),
        lambda: jvm.ArrowIteratorServer(),
    )
    return DataFrame(jvm.PythonSQLUtils.toDataFrame(rows, schema.json(), spark._jsparkSession), spark)
