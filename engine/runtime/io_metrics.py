"""Bytes Spark has read from storage, from its own metrics (the status store behind the Spark UI's
"Input" column), so that a run can say how much of its sources each stage read."""

from __future__ import annotations

import logging

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

LISTENER_WAIT_MS = 10_000
log = logging.getLogger(__name__)


def spark_input_bytes(spark: SparkSession) -> int | None:
    """The bytes every executor's tasks have read so far (input metrics, all jobs of the session), once
    the listener bus has delivered the finished tasks' metrics; None where the status store is not
    reachable (a session without a JVM gateway)."""
    try:
        context = spark.sparkContext._jsc.sc()
        context.listenerBus().waitUntilEmpty(LISTENER_WAIT_MS)
        executors = context.statusStore().executorList(False)
        return sum(executors.apply(i).totalInputBytes() for i in range(executors.size()))
    except (Py4JError, AttributeError) as err:
        log.debug("Spark's input metrics unavailable: %s", err)
        return None
