"""The first scan of a source: cached, and its rows and malformed lines counted at once, with Spark's
errors reduced to one line naming the source."""

from __future__ import annotations

import re

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.errors import SourceError
from engine.runtime.datasets import CORRUPT, SourceData

_ERROR_CLASS = re.compile(r"^\[[A-Z0-9_.]+\]")


def root_cause(err: Exception) -> str:
    """One line naming what went wrong: the deepest Spark error class in the JVM cause chain, and its root cause."""
    messages = [str(err)]
    if isinstance(err, Py4JJavaError):
        messages, cause = [], err.java_exception
        while cause is not None:
            messages.append(str(cause.getMessage() or ""))
            cause = cause.getCause()
    flat = [" ".join(line.strip() for line in m.splitlines() if line.strip()) for m in messages if m.strip()]
    classified = [m for m in flat if _ERROR_CLASS.match(m)]
    parts = [classified[-1] if classified else flat[0], flat[-1]] if flat else [type(err).__name__]
    return "; caused by: ".join(dict.fromkeys(parts))[:500]


def materialize(df: DataFrame, source: str, *, location: str = "", allow_empty: bool = False) -> SourceData:
    """Cache a source and count its rows and malformed lines (a CSV or JSON read's corrupt-record column)
    in one scan, so that a bad file fails here, naming the source; an empty source fails unless allowed."""
    cached = df.cache()
    malformed = F.count(F.col(CORRUPT)) if CORRUPT in df.columns else F.lit(0)
    where = f" ({location})" if location else ""
    try:
        row = cached.agg(F.count(F.lit(1)).alias("rows"), malformed.alias("malformed")).first()
    except (PySparkException, Py4JJavaError) as err:
        cached.unpersist()
        raise SourceError(f"cannot read source {source}{where}: {root_cause(err)}") from err
    if row["rows"] == 0 and not allow_empty:
        cached.unpersist()
        raise SourceError(f"source {source} has no rows{where}")
    schema = T.StructType([f for f in df.schema.fields if f.name != CORRUPT])
    return SourceData(source, cached, row["rows"], row["malformed"], schema)
