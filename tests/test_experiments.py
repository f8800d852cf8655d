"""Feature experiments: the search space, the time split, and sweeps on real Delta, Ray and MLflow."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import ray
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from engine.config.experiment import ExperimentConfig, ModelConfig, SplitConfig, VariantConfig
from engine.config.schema import TrackingConfig
from engine.experiments.dataset import TableVersion, read_arrow_table, time_split
from engine.experiments.space import Trial, plan_trials
from engine.experiments.sweep import SweepResult, VariantData, run_sweep
from engine.tracking.mlflow_runs import tracked_run

pytestmark = pytest.mark.usefixtures("ray_session")  # one local Ray for the whole test session

START = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("signal", T.DoubleType()),
        T.StructField("count", T.LongType()),
        T.StructField("flag", T.BooleanType()),
        T.StructField("code", T.StringType()),
        T.StructField("label", T.IntegerType()),
    ]
)


def _rows(n: int, seed: int) -> list[tuple]:
    """Rows whose label follows `signal`, with nulls everywhere, repeated times and shuffled order."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        signal = rng.gauss(0, 1)
        label = int(signal + rng.gauss(0, 1) > 0)
        rows.append(
            (
                i,
                None if i % 97 == 5 else START + timedelta(hours=i // 3),  # three rows share each hour
                None if i % 11 == 0 else signal,
                None if i % 7 == 0 else rng.randrange(10),
                None if i % 5 == 0 else rng.random() < 0.5,
                rng.choice(["a", "b", None]),
                None if i % 53 == 0 else label,
            )
        )
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> TableVersion:
    """Version 0 holds the experiment's rows; version 1 replaces them, so reading version 0 is pinned."""
    path = str(tmp_path_factory.mktemp("experiment") / "delta")
    spark.createDataFrame(_rows(1200, 1), SCHEMA).write.format("delta").save(path)
    spark.createDataFrame(_rows(50, 2), SCHEMA).write.format("delta").mode("overwrite").save(path)
    return TableVersion(path, 0)


def _config(**changes: object) -> ExperimentConfig:
    settings: dict = {
        "enabled": True,
        "name": "test",
        "label": "label",
        "metric": "auc",
        "split": SplitConfig(time_column="ts", valid_fraction=0.25),
        "variants": [VariantConfig(name=n) for n in ("signal_count", "signal_flag", "with_text")],
        "models": [ModelConfig(name="logistic_regression", params={"C": [1.0]})],
        "num_cpus": 2,
        "seed": 3,
    }
    return ExperimentConfig(**{**settings, **changes})


def _variants(table: TableVersion) -> dict[str, VariantData]:
    return {
        "signal_count": VariantData(table, ["signal", "count"]),
        "signal_flag": VariantData(table, ["signal", "flag"]),
        "with_text": VariantData(table, ["signal", "code"]),  # a string feature: this trial fails
    }


def _tracking(tmp_path: Path) -> TrackingConfig:
    return TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "artifacts"))


def _reference_split(rows: list[tuple], fraction: float) -> tuple[int, int]:
    """Plain Python: drop rows without label or time, cut at the time of the (1 - fraction) quantile row."""
    times = sorted(r[1] for r in rows if r[1] is not None and r[6] is not None)
    cut = times[int(len(times) * (1 - fraction))]
    return sum(t < cut for t in times), sum(t >= cut for t in times)


def test_a_failing_trial_is_recorded_and_the_others_finish(table: TableVersion, tmp_path: Path) -> None:
    cfg = _config()
    with tracked_run(_tracking(tmp_path), run_name="job"):
        sweep = run_sweep(cfg, _variants(table))
    assert [r.trial.variant for r in sweep.results][2] == "with_text"  # failed trials rank last
    assert sweep.results[0].score >= sweep.results[1].score
    (failed,) = sweep.failed
    assert failed.trial.variant == "with_text" and failed.error.startswith("ArrowInvalid: Failed to parse string")
    scored = [r for r in sweep.results if not r.failed]
    assert all(0.6 < r.score < 1.0 for r in scored), [r.score for r in scored]
    expected = _reference_split(_rows(1200, 1), 0.25)
    assert all((r.train_rows, r.valid_rows) == expected for r in scored)

    client = MlflowClient(_tracking(tmp_path).uri)
    run = client.get_run(sweep.run_id)
    assert run.data.tags["mlflow.parentRunId"]  # the sweep is nested in the job's run
    assert run.data.metrics == {"trials_scored": 2, "trials_failed": 1, "best_auc": sweep.best.score}
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep.run_id}'")
    by_variant = {c.data.params["variant"]: c for c in children}
    assert set(by_variant) == {"signal_count", "signal_flag", "with_text"}
    assert by_variant["with_text"].data.tags["status"] == "failed"
    assert by_variant["with_text"].data.tags["error"] == failed.error
    assert by_variant["signal_flag"].data.metrics["auc"] == next(
        r.score for r in scored if r.trial.variant == "signal_flag"
    )
    for child in children:
        assert child.data.params["delta_version"] == "0" and child.data.params["model.C"] == "1.0"
        assert child.data.tags["ray_node"] == ray.get_runtime_context().get_node_id()  # the one local node
        (dataset_input,) = child.inputs.dataset_inputs
        source = json.loads(dataset_input.dataset.source)
        assert (source["path"], source["delta_table_version"]) == (table.path, "0")

    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    board = pd.read_csv(artifacts / "leaderboard.csv")
    assert board["variant"].tolist()[-1] == "with_text" and pd.isna(board["rank"].iloc[-1])
    assert board["rank"].iloc[:2].tolist() == [1, 2] and len(board) == 3
    markdown = (artifacts / "leaderboard.md").read_text()
    assert all(r.trial.name in markdown for r in sweep.results)
    assert (artifacts / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    info = mlflow.models.get_model_info(sweep.model_uri)
    assert info.signature.inputs.input_names() == list(sweep.best.trial.features)
    assert {t.type.name for t in info.signature.inputs.inputs} == {"double"}
    model = mlflow.pyfunc.load_model(sweep.model_uri)
    example = pd.DataFrame({name: [0.5, None] for name in sweep.best.trial.features}, dtype="float64")
    assert len(model.predict(example)) == 2


def test_trials_are_reproducible_serially_and_on_ray(table: TableVersion, tmp_path: Path) -> None:
    """Gradient boosting and a random search: the same seed gives the same trials and scores either way."""
    cfg = _config(
        search="random",
        trials=3,
        variants=[VariantConfig(name="signal_count"), VariantConfig(name="signal_flag")],
        models=[
            ModelConfig(
                name="gradient_boosting", params={"max_iter": [20, 40], "learning_rate": {"low": 0.05, "high": 0.3}}
            ),
            ModelConfig(name="logistic_regression", params={"C": {"low": 0.01, "high": 10.0, "log": True}}),
        ],
    )
    variants = {k: v for k, v in _variants(table).items() if k != "with_text"}
    with tracked_run(_tracking(tmp_path), run_name="job"):
        on_ray: SweepResult = run_sweep(cfg, variants)
        serial = run_sweep(cfg, variants, parallel=False)
    assert not on_ray.failed and len(on_ray.results) == 3
    assert [(r.trial, r.score) for r in on_ray.results] == [(r.trial, r.score) for r in serial.results]


def test_plan_trials_grid_and_random() -> None:
    features = {"a": ["x"], "b": ["x", "y"]}
    variants = [VariantConfig(name="a"), VariantConfig(name="b")]
    models = [
        ModelConfig(name="logistic_regression", params={"C": [0.1, 1.0, 10.0]}),
        ModelConfig(name="gradient_boosting", params={"max_iter": [50, 100], "max_depth": [3, 5]}),
    ]
    grid = plan_trials(_config(variants=variants, models=models), features)

    def point(t: Trial) -> tuple:
        return t.variant, t.model, json.dumps(t.params, sort_keys=True)

    assert len(grid) == 2 * (3 + 4) and [t.number for t in grid] == list(range(1, 15))
    assert len(set(map(point, grid))) == 14
    assert grid[1].features == ("x",) and grid[-1].features == ("x", "y")
    some = plan_trials(_config(variants=variants, models=models, trials=5), features)
    assert len(some) == 5 and set(map(point, some)) < set(map(point, grid))

    random_cfg = _config(search="random", trials=20, variants=variants, models=models)
    drawn = plan_trials(random_cfg, features)
    assert len(drawn) == 14  # discrete space: drawn without replacement, at most the whole grid
    ranged = [ModelConfig(name="logistic_regression", params={"C": {"low": 0.001, "high": 100.0, "log": True}})]
    first = plan_trials(_config(search="random", trials=50, variants=variants, models=ranged, seed=5), features)
    again = plan_trials(_config(search="random", trials=50, variants=variants, models=ranged, seed=5), features)
    assert first == again and len(first) == 50
    values = [t.params["C"] for t in first]
    assert all(0.001 <= c <= 100.0 for c in values) and min(values) < 0.1 < 10 < max(values)


def test_time_split_keeps_equal_times_together() -> None:
    """Against a plain-Python reference: ties at the cut, nulls, out-of-order rows, a fixed valid_from."""
    rng = random.Random(4)
    times = [START + timedelta(minutes=rng.choice([0, 10, 10, 10, 20, 30, 40])) for _ in range(200)]
    rows = [(t if i % 17 else None, None if i % 13 == 0 else rng.randrange(2)) for i, t in enumerate(times)]
    rng.shuffle(rows)
    frame = pd.DataFrame(rows, columns=["ts", "label"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for fraction in (0.2, 0.5, 0.9):
        train, valid = time_split(frame, "label", SplitConfig(time_column="ts", valid_fraction=fraction))
        kept = sorted(t for t, label in rows if t is not None and label is not None)
        cut = kept[int(len(kept) * (1 - fraction))]
        assert (len(train), len(valid)) == (sum(t < cut for t in kept), sum(t >= cut for t in kept))
        assert train.empty or train["ts"].max() < valid["ts"].min()
    train, valid = time_split(frame, "label", SplitConfig(time_column="ts", valid_from="2024-01-01T00:20:00"))
    assert train["ts"].max() == START + timedelta(minutes=10) and valid["ts"].min() == START + timedelta(minutes=20)
    gapped, _ = time_split(frame, "label", SplitConfig(time_column="ts", valid_from="2024-01-01T00:20:00", gap="15m"))
    assert gapped["ts"].max() == START  # rows within 15 minutes before the cut are left out
    naive = frame.assign(ts=frame["ts"].dt.tz_localize(None))
    train, _ = time_split(naive, "label", SplitConfig(time_column="ts", valid_from="2024-01-01T00:20:00+00:00"))
    assert train["ts"].max() == pd.Timestamp("2024-01-01 00:10:00")
    with pytest.raises(ValueError, match="no row has both"):
        time_split(frame.iloc[0:0], "label", SplitConfig(time_column="ts"))


def test_filters_keep_only_matching_rows(table: TableVersion) -> None:
    rows = read_arrow_table(table, ["id", "signal"], [("id", "<", 100), ("id", ">=", 10)])
    assert sorted(rows.column("id").to_pylist()) == list(range(10, 100))


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "ray"])
def test_a_read_error_fails_only_that_variants_trials(table: TableVersion, tmp_path: Path, parallel: bool) -> None:
    """The three variants share one read of the table version, which fails; each is then read alone."""
    variants = {**_variants(table), "with_text": VariantData(table, ["signal", "no_such_column"])}
    with tracked_run(_tracking(tmp_path), run_name="job"):
        sweep = run_sweep(_config(), variants, parallel=parallel)
    (failed,) = sweep.failed
    assert failed.error == f"SourceError: {table.path}@0 lacks columns ['no_such_column']"
    assert len(sweep.results) == 3 and sweep.best is not None


def _auc(labels: list[int], scores: list[float]) -> float:
    """Plain-Python AUC: the share of (positive, negative) pairs ranked right, ties counting half."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    negatives = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


@pytest.mark.parametrize(("metric", "model"), [("auc", "logistic_regression"), ("rmse", "ridge")])
def test_scores_match_a_reference_on_the_reference_split(table: TableVersion, tmp_path: Path, metric, model) -> None:
    """The trial's score equals the metric recomputed in plain Python, with the trial's own model,
    on the validation rows that a plain-Python time split picks."""
    cfg = _config(metric=metric, models=[ModelConfig(name=model, params={})])
    variants = {"signal_count": _variants(table)["signal_count"]}
    with tracked_run(_tracking(tmp_path), run_name="job"):
        (result,) = run_sweep(cfg, variants, parallel=False).results
    rows = [r for r in _rows(1200, 1) if r[1] is not None and r[6] is not None]
    times = sorted(r[1] for r in rows)
    cut = times[int(len(times) * 0.75)]
    valid = [r for r in rows if r[1] >= cut]
    x = pd.DataFrame(
        {"signal": [r[2] for r in valid], "count": [r[3] for r in valid]}, dtype="float64"
    )  # None -> NaN, as the trial sees it
    labels = [r[6] for r in valid]
    if metric == "auc":
        expected = _auc(labels, list(result.model.predict_proba(x)[:, 1]))
    else:
        predicted = result.model.predict(x)
        expected = (sum((y - p) ** 2 for y, p in zip(labels, predicted, strict=True)) / len(labels)) ** 0.5
    assert result.valid_rows == len(valid)
    assert result.score == pytest.approx(expected, abs=1e-12)
