"""SparkSession from config: local mode loads the cached jars; cluster and Databricks reuse the launcher's."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from engine.config.schema import SparkConfig, SparkMode
from engine.errors import SetupError
from engine.runtime.jars import load_runtime, local_jars

_DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Every mode: UTC (feature dates and calendar parts assume it) and ANSI SQL, so a bad cast fails
# instead of turning into null (Spark 3.5 leaves ANSI off unless asked).
_SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",  # the vectorized window pass: fewer, larger batches
}
_DEEQU_CLASS = "com.amazon.deequ.VerificationSuite"

_LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{ISO8601}} %p %c{{1}}: %m%n%ex
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
logger.spark.name = org.apache.spark
logger.spark.level = warn
"""


def _log4j_options(log_dir: Path) -> str:
    """JVM options that send all Spark logging to `log_dir/spark.log`, never the console."""
    log_dir.mkdir(parents=True, exist_ok=True)
    config = log_dir / "log4j2.properties"
    config.write_text(_LOG4J2.format(log_file=(log_dir / "spark.log").resolve()))
    return f"-Dlog4j2.configurationFile=file:{config.resolve()}"


@contextmanager
def _stderr_to(log_file: Path) -> Iterator[None]:
    """Point fd 2 at the log file while the JVM starts, so its console noise lands there for good."""
    sys.stderr.flush()
    saved = os.dup(2)
    with log_file.open("a") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _require_deequ(spark: SparkSession) -> None:
    """Fail in one line naming the coordinate when the session cannot load Deequ."""
    try:
        spark.sparkContext._jvm.java.lang.Class.forName(
            _DEEQU_CLASS, False, spark.sparkContext._jvm.Thread.currentThread().getContextClassLoader()
        )
    except Exception as err:
        raise SetupError(
            f"Deequ is not on the Spark classpath: add {load_runtime().deequ} "
            "(spark-submit --packages, or a cluster library; scripts/coordinates prints both)"
        ) from err


def build_session(cfg: SparkConfig, log_dir: Path) -> SparkSession:
    """Start (or join) the SparkSession the config asks for, with Delta enabled and Deequ on the classpath."""
    os.environ["SPARK_VERSION"] = ".".join(pyspark.__version__.split(".")[:2])  # pydeequ reads it at import
    if cfg.mode == SparkMode.DATABRICKS:
        spark = SparkSession.builder.getOrCreate()
        for key, value in _SQL_CONF.items():
            spark.conf.set(key, value)
        _require_deequ(spark)
        return spark
    builder = SparkSession.builder.appName(cfg.app_name)
    settings = {"spark.sql.shuffle.partitions": str(cfg.shuffle_partitions), **_SQL_CONF, **_DELTA_CONF}
    if cfg.mode == SparkMode.LOCAL:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers (the vectorized window pass) use this venv
        jars = local_jars(load_runtime(), Path(cfg.jar_cache))
        settings |= {
            "spark.master": cfg.master,
            "spark.driver.memory": cfg.driver_memory,
            "spark.jars": ",".join(str(j.resolve()) for j in jars),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            # Cluster-sized defaults cost seconds per operation on one machine: file listings (vacuum,
            # partition discovery) default to 10,000 tasks, a Delta snapshot's state to 50 partitions
            # (here one per core: a laptop's table logs are small, and each snapshot is a job of its own).
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(cfg.shuffle_partitions),
            "spark.databricks.delta.snapshotPartitions": str(min(cfg.shuffle_partitions, os.cpu_count() or 1)),
            "spark.driver.extraJavaOptions": _log4j_options(log_dir),
        }
    else:  # a Delta snapshot's state in no more partitions than a shuffle (Delta's default is 50)
        settings["spark.databricks.delta.snapshotPartitions"] = str(min(cfg.shuffle_partitions, 50))
        if cfg.master:
            settings["spark.master"] = cfg.master
    for key, value in {**settings, **cfg.conf}.items():
        builder = builder.config(key, value)
    with _stderr_to(log_dir / "spark.log"):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    _require_deequ(spark)
    return spark
