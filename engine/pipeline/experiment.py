"""The experiment stages of a job: compute the variants the table lacks (once each) while Ray starts,
then the sweep."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from engine.config.schema import FeaturelakeConfig, SchemaPolicy, SinkMode
from engine.experiments.dataset import TableVersion
from engine.experiments.models import check_model
from engine.experiments.runner import start_ray, stop_ray
from engine.experiments.sweep import SweepResult, VariantData, run_sweep
from engine.experiments.variants import VariantPlan, plan_variants
from engine.features.functions import AGGREGATIONS
from engine.features.table import range_filters
from engine.sinks.sink import DELTA

log = logging.getLogger("engine.pipeline")


def check_experiment(cfg: FeaturelakeConfig) -> list[VariantPlan]:
    """The models checked and the variants compiled against the features config, before Spark: an
    unknown model or group fails here."""
    if not cfg.experiment.enabled:
        return []
    for model in cfg.experiment.models:
        check_model(model.name, dict(model.params), cfg.experiment.metric, cfg.experiment.search)
    for variant in cfg.experiment.variants:
        for name in variant.aggregations:
            AGGREGATIONS.get(name, f"experiment.variants.{variant.name}.aggregations")
    joins = list(cfg.pipeline.joins) if cfg.pipeline is not None else []
    return plan_variants(list(cfg.experiment.variants), cfg.features, joins)


def compute_variants(
    spark: SparkSession,
    cfg: FeaturelakeConfig,
    plans: list[VariantPlan],
    base: TableVersion,
    compute: Callable[[VariantPlan], DataFrame] | None,
    commit_info: Mapping[str, str],
    identity: Mapping[str, object],
) -> dict[str, VariantData]:
    """Where each variant's trials read: the base version when it has all of the variant's features,
    otherwise the variant's own Delta table, computed once per distinct variant and written as a
    version of `<variants_path>/<variant>`. A repeat for the same base version and variant config
    is skipped by Delta before anything is computed. Without `compute` (a stale source) nothing is computed, and
    the trials of a variant the base version cannot serve fail with the columns it lacks.
    """
    rows = range_filters(cfg.features)  # a ranged run scores every variant on its range only
    columns = DELTA.read_version(spark, base.path, base.version).columns
    data: dict[str, VariantData] = {}
    computed: dict[str, TableVersion] = {}
    for plan in plans:
        missing = plan.missing(columns)
        if not missing or compute is None:
            data[plan.name] = VariantData(base, plan.features, rows)
            continue
        if plan.key not in computed:
            log.info(
                "variant %s needs %d features the table lacks (%s); computing them once",
                plan.name,
                len(missing),
                ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else ""),
            )
            sink = replace(
                cfg.sink,
                path=str(Path(cfg.experiment.variants_path) / plan.name),
                mode=SinkMode.OVERWRITE,
                schema_policy=SchemaPolicy.REPLACE,
                merge_keys=[],
            )
            commit = DELTA.write(compute(plan), sink, commit_info, {**identity, "variant": plan.key})
            computed[plan.key] = TableVersion(str(Path(commit.path).resolve()), commit.version)
        data[plan.name] = VariantData(computed[plan.key], plan.features, rows)
    return data


@dataclass(frozen=True)
class SweepInputs:
    """Where each variant's trials read, and whether Ray was started for the sweep (which then stops it)."""

    variants: dict[str, VariantData]
    started_ray: bool = False


def variants_while_ray_starts(cfg: FeaturelakeConfig, compute: Callable[[], dict[str, VariantData]]) -> SweepInputs:
    """Run `compute` (Spark jobs, on a worker thread) while Ray starts on the main thread, the only
    one Ray starts from: the seconds Ray takes to start overlap the variants' Spark work."""
    with ThreadPoolExecutor(1, thread_name_prefix="variants") as spark_side:
        computing = spark_side.submit(compute)
        started = False
        try:
            started = start_ray(cfg.experiment)
            return SweepInputs(computing.result(), started)
        except BaseException:
            if started:
                stop_ray()
            raise


def sweep_variants(cfg: FeaturelakeConfig, inputs: SweepInputs) -> SweepResult:
    """The sweep over the variants; stops Ray afterwards when it was started for it."""
    try:
        return run_sweep(cfg.experiment, inputs.variants)
    finally:
        if inputs.started_ray:
            stop_ray()


def servable_variants(plans: list[VariantPlan], table: TableVersion, columns: list[str]) -> dict[str, VariantData]:
    """The variants a fixed table (a training set) can serve; the others are left out with a warning,
    as only the job that owns the sources can compute features."""
    data = {}
    for plan in plans:
        missing = plan.missing(columns)
        if missing:
            log.warning("variant %s left out: the table lacks %s", plan.name, ", ".join(missing))
        else:
            data[plan.name] = VariantData(table, plan.features)
    return data
