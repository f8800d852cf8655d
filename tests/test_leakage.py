"""No feature of a flight may use a flight that had not departed before its scheduled departure.

Proof by perturbation on real data: rewrite the outcome of every flight that departed at or after
a cut time T; the features of every flight scheduled at or before T must not change at all.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from engine.pipeline.features import build_features, prepare
from engine.sources.files import read_source
from tests.conftest import job_config


def test_future_outcomes_never_reach_features(spark: SparkSession, tmp_path, week_source: list[str]) -> None:
    cfg = job_config(tmp_path, *week_source, "experiment=none")
    pipeline = prepare(cfg).pipeline
    flights, weather = (read_source(spark, s, list(pipeline.days)).well_formed for s in pipeline.sources)
    rows = flights.count()
    sched = F.unix_timestamp("time_hour") + F.col("minute") * 60
    departed = sched + F.col("dep_delay") * 60
    cut = flights.select(F.percentile_approx(sched, 0.5).alias("cut")).first()["cut"]

    perturbed = flights.withColumn(
        "dep_delay",
        F.when(departed >= cut, F.col("dep_delay") + 1 + F.abs(F.hash("flight", "tailnum")) % 500).otherwise(
            F.col("dep_delay")
        ),
    )
    assert perturbed.where(departed >= cut).count() > rows / 3  # the perturbation really changes many outcomes

    def known_before_cut(source: DataFrame) -> DataFrame:
        features = build_features({"flights": source, "weather": weather}, pipeline, cfg.features).drop("label")
        return features.where(F.unix_timestamp("sched_dep_ts") <= cut)

    original = known_before_cut(flights).cache()
    again = known_before_cut(perturbed).cache()
    assert original.count() == again.count() > rows / 3
    assert again.schema == original.schema
    assert again.exceptAll(original).isEmpty()  # equal counts: no row missing either way
