"""What a JVM library driven from Python needs of the session: py4j's callback server and Spark's SQL mode.

Deequ calls Python assertions back through py4j's callback server, and its 2.1.0 analyzers are written
for Spark's default (non-ANSI) SQL; the session runs with ANSI on. Both are session concerns, kept here
so that the quality layer only says when it needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from py4j.java_gateway import quiet_shutdown
from pyspark.java_gateway import ensure_callback_server_started
from pyspark.sql import SparkSession


@contextmanager
def ansi_off(spark: SparkSession) -> Iterator[None]:
    """ANSI SQL off while the block runs, restored after.

    Deequ 2.1.0's completeness marks rows with a string that it casts to a number, which ANSI rejects.
    The data it reads was read and cast under the session's ANSI setting (sources are materialized
    before verification)."""
    before = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", "false")
    try:
        yield
    finally:
        spark.conf.set("spark.sql.ansi.enabled", before)


def start_callbacks(spark: SparkSession) -> None:
    """Start py4j's callback server on a free port, as a daemon.

    Started here, before pydeequ would start one on py4j's fixed port (two processes would collide)."""
    ensure_callback_server_started(spark.sparkContext._gateway)


def stop_callbacks(spark: SparkSession) -> None:
    """Shut the callback server down, once, before Spark stops: a live one keeps the process from exiting.

    Each open connection's socket is shut first: py4j closes a connection's stream while its reader
    thread still blocks on it, which would wait forever."""
    gateway = spark.sparkContext._gateway
    server = gateway.__dict__.get("_callback_server")  # getattr would ask the JVM
    if server is None or server.is_shutdown:
        return
    for connection in list(server.connections):
        quiet_shutdown(connection.socket)
    gateway.shutdown_callback_server()
