"""Config composition and validation, and the CLI's one-line errors.

CLI runs go through `jobs.run.main` in this process (exit code, the one stderr line, stdout), on the
test session's Spark where one is needed; subprocesses check what only a fresh interpreter shows (which
modules a config error imports).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from engine.config.embedded import package_data_folder
from engine.config.experiment import METRIC_NAMES
from engine.config.loader import load_config
from engine.errors import ConfigError
from engine.experiments.models import METRICS
from engine.experiments.space import plan_trials
from engine.pipeline.experiment import check_experiment
from engine.pipeline.features import prepare as check_features_job
from jobs.run import JOBS
from tests.conftest import REPO


def test_defaults_compose() -> None:
    cfg = load_config([])
    assert cfg.job.name == "features" and cfg.pipeline.name == "flights"
    assert [g.name for g in cfg.features.groups] == ["carrier", "origin", "tailnum", "route"]
    assert cfg.features.groups[0].windows == ["1h", "3h", "24h", "7d"]
    assert cfg.spark.mode == "local" and cfg.experiment.enabled


def test_overrides_and_groups() -> None:
    cfg = load_config(["spark.master='local[1]'", "sink.path=/tmp/x", "experiment=none", "spark=cluster"])
    assert (cfg.spark.master, cfg.spark.mode, cfg.sink.path, cfg.experiment.enabled) == (
        "local[1]",
        "cluster",
        "/tmp/x",
        False,
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("spark.foo=1", "Key 'foo' not in 'SparkConfig'"),
        ("observability.log_level=LOUD", "observability.log_level: 'LOUD' is not one of DEBUG"),
        ("observability.tracing.sampling_ratio=1.5", "observability.tracing.sampling_ratio: 1.5 is not in [0, 1]"),
        ("observability.tracing.exporter=jaeger", "observability.tracing.exporter: 'jaeger' is not one of console"),
        ("resilience.retry.attempts=0", "resilience.retry.attempts: 0 must be at least 1"),
        ("resilience.retry.max_delay_seconds=0.5", "resilience.retry: delays must satisfy"),
        ("resilience.circuit.failure_threshold=0", "resilience.circuit.failure_threshold: 0 must be at least 1"),
        ("resilience.cache_ttl_seconds=-1", "resilience.cache_ttl_seconds: -1.0 must be 0 or more"),
        ("job=nope", "Could not find 'job/nope'"),
        ("spark.shuffle_partitions=abc", "spark.shuffle_partitions"),
        ("features.groups.0.windows=[1x]", "features.groups[0].windows[0]: '1x' is not a duration"),
        ("features.groups.0.closed=middle", "features.groups[0].closed: 'middle'"),
        ("features.groups.0.windows=[1h,1h]", "features.groups[0].windows: ['1h', '1h'] has repeats"),
        ("features.groups.1.name=carrier", "features.groups: names"),
        ("features.time_features.timezone=Mars/Base", "'Mars/Base' is not an IANA time zone"),
        ("features.start=2013-13", "features.start: '2013-13' is not an ISO date"),
        ("features.granularity=monthly", "features.granularity"),
        ("pipeline.sources.0.checks.0.kind=bogus", "checks.flights_columns.kind"),
        ("pipeline.entity.source=planes", "pipeline.entity.source: 'planes' is not a declared source"),
        ("pipeline.sources.1.name=flights", "pipeline.sources: two sources are named 'flights'"),
        ("pipeline.joins.0.source=planes", "pipeline.joins[0].source: 'planes' is not a declared source"),
        ("pipeline.sources.0.checks.17.reference=planes", "checks[17].reference: 'planes' is not a declared source"),
        ("sink.mode=upsert", "sink.mode"),
        ("pipeline.sources.0.checks.6.min=5000", "checks.dep_delay_range: min 5000.0 is above max 1800.0"),
        ("pipeline.sources.0.checks.12.action=halt_pipeline", "a warning check can only warn"),
        ("pipeline.sources.0.checks.18.action=quarantine_data", "checks.flights_size.action: only row-level checks"),
        ("pipeline.sources.0.checks.19.max_lag=soon", "checks.flights_fresh.max_lag: 'soon' is not a duration"),
        ("quality.confidence=1.5", "quality.confidence"),
        ("pipeline.sources.1.checks.1.name=temp_range", "repeated: temp_range"),
        ("experiment.num_cpus=0", "experiment.num_cpus"),
        ("experiment.metric=f1", "experiment.metric: 'f1' is not one of auc, log_loss, rmse"),
        ("experiment.search=random", "experiment.trials: 0; random search needs at least 1"),
        ("experiment.split.valid_fraction=1.5", "experiment.split.valid_fraction: 1.5 is not within (0, 1)"),
        ("experiment.split.valid_from=yesterday", "experiment.split.valid_from: 'yesterday' is not an ISO time"),
        ("experiment.variants.0.windows=[2x]", "'2x' is not a duration"),
        ("experiment.variants.1.name=carrier_origin_weather", "experiment.variants: names"),
        ("experiment.variants.0.name=../x", "'../x' is not a lower_snake_case name"),
        ("experiment.split.gap=soon", "experiment.split.gap: 'soon' is not a duration"),
        ("spark.master=bogus://nowhere", "spark.master: 'bogus://nowhere' is not a Spark master URL"),
        ("pipeline.days=[2013-01-07,2013-01-01]", "pipeline.days: 2013-01-07 is after 2013-01-01"),
        ("pipeline.days=[2013-01-01]", "pipeline.days: ['2013-01-01'] should be [first, last]"),
        ("pipeline.days=[jan,feb]", "pipeline.days: ['jan', 'feb'] are not ISO dates"),
        ("training_set.output.path=/tmp/x", "an override sets a key under a part of the config this job leaves"),
        ("quality.max_malformed_share=2", "quality.max_malformed_share: 2.0 is not within 0..1"),
        (
            "pipeline.sources.0.checks.20.columns=[time_hour,hour]",
            "checks.flights_not_in_future.columns: a not_in_future",
        ),
    ],
)
def test_bad_config_names_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config([override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("experiment.models.0.name=svm", "experiment.models.svm: unknown model"),
        ("experiment.metric=rmse", "experiment.models.logistic_regression: metric rmse needs a regression model"),
        ("+experiment.models.0.params.tol={low:0.1,high:1}", "params.tol: a range needs random search"),
        ("+experiment.models.0.params.alpha=[1]", "params.alpha: not a settable parameter of LogisticRegression"),
        ("experiment.models.0.params.C=[]", "params.C: give a non-empty list of choices"),
        (
            "experiment.variants.0.aggregations=[median]",
            "experiment.variants.carrier_origin_weather.aggregations: 'median' is not one of count, sum",
        ),
    ],
)
def test_bad_models_fail_where_the_experiment_is_prepared(override: str, message: str) -> None:
    """Model names and spaces are checked with scikit-learn, and variants' aggregation functions against the
    function registry, before Spark but not while loading the config."""
    cfg = load_config([override])
    with pytest.raises(ConfigError) as err:
        check_experiment(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_config_names_every_metric_the_experiments_score() -> None:
    assert set(METRIC_NAMES) == set(METRICS)


def test_a_variant_naming_an_unknown_group_fails_before_spark() -> None:
    cfg = load_config(["experiment.variants.0.groups=[airport]"])
    with pytest.raises(ConfigError, match=r"variants.carrier_origin_weather.groups: \['airport'\] are not feature"):
        check_features_job(cfg)


def test_a_variant_dropping_a_derived_features_inputs_fails_before_spark() -> None:
    cfg = load_config(["experiment.variants=[{name: w, groups: [origin], windows: [24h, 14d], include: [origin_]}]"])
    with pytest.raises(ConfigError, match="derived feature origin_late_share_3h needs"):
        check_features_job(cfg)


def test_random_ranges_draw_integers_between_integer_ends() -> None:
    cfg = load_config(
        [
            "experiment.search=random",
            "experiment.trials=40",
            "~experiment.models.1.params.max_iter",
            "+experiment.models.1.params.max_iter={low: 50, high: 300}",
            "+experiment.models.0.params.tol={low: 0.0001, high: 0.01, log: true}",
        ]
    )
    trials = plan_trials(cfg.experiment, {v.name: ["x"] for v in cfg.experiment.variants})
    iters = [t.params["max_iter"] for t in trials if t.model == "gradient_boosting"]
    tols = [t.params["tol"] for t in trials if t.model == "logistic_regression"]
    assert iters and all(isinstance(i, int) and 50 <= i <= 300 for i in iters)
    assert tols and all(isinstance(t, float) and 0.0001 <= t <= 0.01 for t in tols)
    bad_log = [
        "experiment.search=random",
        "experiment.trials=2",
        "+experiment.models.1.params.max_depth={low: 2, high: 5, log: no}",
    ]
    with pytest.raises(ConfigError, match="log: 'no' is not true or false"):
        check_experiment(load_config(bad_log))


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "features.groups.0.aggregations.0.column=dep_delai",
            "features.groups[0].aggregations[0].column: column 'dep_delai' is not in source 'flights'",
        ),
        ("pipeline.entity.keys=[flight_key]", "pipeline.entity.keys: column 'flight_key' is not in source 'flights'"),
        ("pipeline.joins.0.keys=[dest]", "pipeline.joins[0].keys: column 'dest' is not in source 'weather'"),
        (
            "pipeline.sources.0.checks.6.columns=[dep_delai]",
            "pipeline.sources[0].checks[6].columns: column 'dep_delai' is not in source 'flights'",
        ),
        ("pipeline.label='arr_delay >'", "pipeline.label: [PARSE_SYNTAX_ERROR] Syntax error at or near end of input"),
        (
            "features.derived.0.expr='origin_dep_delay_late_count_3h / nope'",
            "features.derived[0].expr: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name",
        ),
        (
            "pipeline.sources.0.columns.sched_epoch='unix_timestamp(time_hour) + minutes * 60'",
            "pipeline.sources[0].columns.sched_epoch: [UNRESOLVED_COLUMN.WITH_SUGGESTION]",
        ),
        ("pipeline.joins.0.source=planes", "pipeline.joins[0].source: 'planes' is not a declared source"),
        ("pipeline.sources.1.name=flights", "pipeline.sources: two sources are named 'flights'"),
    ],
)
def test_a_bad_declaration_is_one_line_exit_2_and_commits_nothing(
    cli, spark: SparkSession, tmp_path: Path, override: str, line: str
) -> None:
    """Columns are checked against the sources' headers and expressions analysed on empty frames: no data read."""
    tracking = [
        f"tracking.uri=sqlite:///{tmp_path.parent / 'mlflow.db'}",  # the worker's store, migrated once
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
        f"job.run_record_dir={tmp_path / 'runs'}",
    ]
    code, out, err = cli(override, f"sink.path={tmp_path / 'delta'}", *tracking, *outputs(tmp_path), spark=spark)
    assert code == 2 and err.startswith(f"error: config: {line}"), err
    assert "stage read" not in out  # failed before any data was read
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "delta").exists()


def test_bad_data_is_one_line_exit_1_and_commits_nothing(
    cli, spark: SparkSession, tmp_path: Path, week_source: list[str]
) -> None:
    """An empty source, and an expression Spark can analyse but not compute (ANSI: 'UA' is no number)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with zipfile.ZipFile(package_data_folder() / "flights.csv.zip") as archive:
        (empty / "flights.csv").write_text(archive.read(archive.namelist()[0]).decode().split("\n", 1)[0] + "\n")
    cases = [
        ([f"pipeline.sources.0.path={empty / 'flights.csv'}"], "error: source flights has no rows"),
        ([*week_source, "pipeline.sources.0.columns.sched_epoch='CAST(carrier AS BIGINT)'"], "[CAST_INVALID_INPUT]"),
    ]
    for i, (overrides, wanted) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        written = [
            "experiment=none",
            f"sink.path={folder / 'delta'}",
            f"tracking.uri=sqlite:///{tmp_path.parent / 'mlflow.db'}",
            f"tracking.artifact_location={folder / 'artifacts'}",
            f"job.run_record_dir={folder / 'runs'}",
            f"quality.report_dir={folder / 'reports'}",
            f"quality.quarantine_path={folder / 'quarantine'}",
            f"quality.metrics_path={folder / 'metrics_table'}",
        ]
        code, _, err = cli(*overrides, *written, *outputs(folder), spark=spark)
        assert code == 1 and wanted in err and len(err.strip().splitlines()) == 1, err
        assert not (folder / "delta").exists()


def outputs(tmp_path: Path) -> list[str]:
    """Overrides that keep a CLI run's logs, metrics and state under tmp_path."""
    return [
        f"job.log_dir={tmp_path / 'logs'}",
        f"observability.metrics.textfile_dir={tmp_path / 'metrics'}",
        f"observability.tracing.console_file={tmp_path / 'logs' / 'traces.jsonl'}",
        f"resilience.state_dir={tmp_path / 'state'}",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["job=nope"],
            "error: config: In 'config': Could not find 'job/nope'; available: features, materialize, suggest_checks, "
            "training_set, validate, version",
        ),
        (["job=validate", "validate.source.format=xml"], "error: config: source planes.format: 'xml' is not one of"),
        (
            ["job=validate", "+validate.source.options.mode=DROPMALFORMED"],
            "error: config: source planes.options.mode: only PERMISSIVE (malformed lines are quarantined)",
        ),
        (["job=validate", "validate.source.schema='id LIST'"], "error: config: source planes.schema: cannot parse"),
        (["job=validate", "quality.as_of=yesterday"], "error: config: quality.as_of: 'yesterday' is not an ISO"),
        (["job=validate", "validate.checks_file=/nonexistent.yaml"], "error: config: validate.checks_file: no such"),
        (["job=training_set"], "error: config: Structured config of type `SpineConfig` has missing mandatory value"),
        (
            ["job=training_set", "training_set.spine.version=0", "training_set.spine.path=/nonexistent"],
            "error: config: training_set: no Delta table at /nonexistent (run the job that writes it first)",
        ),
        (["job=version", "version=vacuum", "version.table=/nonexistent"], "error: config: version.table: no Delta"),
        (["job=version", "version=tag", "version.as_of=0", "version.tag=7"], "error: config: version.tag: '7' is not"),
        (["job=version", "version.action=shrink"], "error: config: version.action: 'shrink' is not one of history"),
        (["spark.shuffle_partitions=two"], "error: config: Error merging override spark.shuffle_partitions=two"),
        (["spark.master=bogus://nowhere"], "error: config: spark.master: 'bogus://nowhere' is not a Spark master URL"),
        (["sink.path=/etc/hostname"], "error: config: sink.path: /etc/hostname is a file, not a folder"),
        (["quality.metrics_path=/etc/hostname/m"], "error: config: quality.metrics_path: /etc/hostname/m lies under"),
    ],
)
def test_cli_config_errors_are_one_line(cli, tmp_path: Path, args: list[str], message: str) -> None:
    code, out, err = cli(*args, *outputs(tmp_path))
    assert code == 2
    assert err.strip().startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_a_config_error_loads_no_heavy_library() -> None:
    """A config error costs no heavy import: the CLI answers before pyspark, Ray, MLflow or sklearn load."""
    probe = (
        "import sys; from jobs.run import main; code = main(['job=nope']); "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'ray', 'mlflow', 'sklearn', 'numpy'}); "
        "print(code, heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "2 []", result.stderr


@pytest.mark.parametrize("job", ["validate", "version"])
def test_the_registry_imports_only_the_selected_job(job: str) -> None:
    """Selecting a job (`job=NAME`, through the config, as the CLI does) imports its declaration's module and
    no other job's: no job's module before the job is looked up, then that job's alone."""
    probe = (
        "import sys\n"
        "from engine.config.loader import load_config\n"
        "from jobs.run import JOBS, check_job_name, job_for\n"
        "def loaded(): return sorted(t.split(':')[0] for t in JOBS.values() if t.split(':')[0] in sys.modules)\n"
        f"cfg = load_config(['job={job}']); check_job_name(cfg.job.name)\n"
        "print(cfg.job.name, loaded())\n"
        "job = job_for(cfg.job.name)\n"
        "print(type(job).__name__, loaded())\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    module = JOBS[job].split(":")[0]
    assert result.stdout.splitlines() == [f"{job} []", f"Job {[module]}"], result.stderr
    assert set(JOBS) == {"features", "training_set", "validate", "suggest_checks", "version", "materialize"}


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_jobs_groups_options_and_common_overrides(cli, flag: str) -> None:
    code, out, err = cli(flag)
    assert (code, err) == (0, "")
    assert out.startswith("usage: scripts/run [-h] [--cfg job] [--config-dir DIR]")
    sections = out.split("\n\n")
    jobs = next(s for s in sections if s.startswith("jobs (job=NAME)   default: features"))
    listed = {line.split()[0]: line.split(None, 1)[1] for line in jobs.splitlines()[1:]}
    assert set(listed) == set(JOBS)
    assert listed["validate"].startswith("Run only the checks on one source and report: scripts/run job=validate")
    spark = next(s for s in sections if s.startswith("spark="))
    assert spark.splitlines()[0] == "spark=   default: local"
    assert [line.split()[0] for line in spark.splitlines()[1:]] == ["cluster", "databricks", "local"]
    assert "version=" in out and "  vacuum " in out and "_schema" not in out
    assert "common overrides:" in out and "experiment=none" in out and out.rstrip().endswith("exit codes)")


def test_cfg_job_prints_the_resolved_config_and_runs_nothing(cli, tmp_path: Path) -> None:
    code, out, err = cli("--cfg", "job", "job=validate", f"sink.path={tmp_path / 'never'}")
    assert (code, err) == (0, "")
    printed = yaml.safe_load(out)
    assert printed["job"]["name"] == "validate" and printed["sink"]["path"] == str(tmp_path / "never")
    assert "${" not in out and Path(printed["validate"]["source"]["path"]).is_file()  # interpolations resolved
    assert not (tmp_path / "never").exists()
    probe = "import sys; from jobs.run import main; print(main(['--cfg', 'job']), 'pyspark' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "0 False", result.stderr  # Spark never started
    code, out, err = cli("--cfg", "hydra")
    assert (code, out) == (2, "")
    assert err.strip() == "error: config: argument --cfg: invalid choice: 'hydra' (choose from 'job')"


def test_config_dir_adds_the_users_own_options(cli, tmp_path: Path) -> None:
    mine = tmp_path / "my_conf"
    (mine / "sink").mkdir(parents=True)
    (mine / "sink" / "lake.yaml").write_text(
        f"# The team's lake. More lines follow.\ndefaults:\n  - sink_schema\npath: {tmp_path / 'lake'}\nmode: append\n"
    )
    code, out, err = cli("--config-dir", str(mine), "sink=lake", "--cfg", "job")
    assert (code, err) == (0, "")
    sink = yaml.safe_load(out)["sink"]
    assert (sink["path"], sink["mode"]) == (str(tmp_path / "lake"), "append")
    code, out, _ = cli("-h", "-cd", str(mine))
    listed = next(s for s in out.split("\n\n") if s.startswith("sink=")).splitlines()
    assert [line.split(None, 1)[0] for line in listed[1:]] == ["delta", "lake"]
    assert listed[2].split(None, 1)[1] == "The team's lake"  # the first sentence of the file's opening comment
    code, out, err = cli("--config-dir", str(tmp_path / "nowhere"), "--cfg", "job")
    assert (code, out) == (2, "")
    assert err.strip() == f"error: config: --config-dir: no such folder: {tmp_path / 'nowhere'}"
    code, out, err = cli("--bogus")
    assert code == 2 and err.strip() == "error: config: unrecognized arguments: --bogus"


def test_cli_missing_source_fails_before_spark(cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    code, out, err = cli(f"pipeline.params.data={missing}", f"sink.path={tmp_path / 'delta'}", *outputs(tmp_path))
    assert code == 1 and out == ""
    assert err.strip() == f"error: source flights: path not found: {missing / 'flights.csv.zip'}"
    assert not (tmp_path / "delta").exists()


def test_cli_validate_runs_deequ_checks(cli, spark: SparkSession, tmp_path: Path) -> None:
    """job=validate through the entry point: Deequ's checks, whose assertions are called back into Python,
    and nothing on stderr, the JVM's included. (That a process exits after such checks, its callback server
    shut, is shown by the cluster test's spark-submit run.)"""
    code, out, err = cli(
        "job=validate",
        f"quality.report_dir={tmp_path / 'reports'}",
        f"quality.metrics_path={tmp_path / 'metrics_table'}",
        f"quality.quarantine_path={tmp_path / 'quarantine'}",
        "validate.output_path=",
        f"tracking.uri=sqlite:///{tmp_path.parent / 'mlflow.db'}",  # the worker's store, migrated once
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
        f"job.run_record_dir={tmp_path / 'runs'}",
        *outputs(tmp_path),
        spark=spark,
    )
    assert code == 0, err
    assert "(verified with Deequ)" in out and err == ""


def test_cli_unreadable_csv_is_one_line_and_commits_nothing(cli, spark: SparkSession, tmp_path: Path) -> None:
    """Spark's read fails: the data error is one line on stderr (the JVM's included), the trace is in the log."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "flights.csv.gz").write_bytes(b"this is not a gzip file\n1,2,3\n")
    (source / "weather.csv").write_text("origin,time_hour\n")
    code, out, err = cli(
        f"pipeline.params.data={source}",
        f"pipeline.sources.0.path={source / 'flights.csv.gz'}",
        "experiment=none",
        f"sink.path={tmp_path / 'delta'}",
        f"tracking.uri=sqlite:///{tmp_path.parent / 'mlflow.db'}",  # the worker's store, migrated once
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
        f"job.run_record_dir={tmp_path / 'runs'}",
        *outputs(tmp_path),
        spark=spark,
    )
    assert code == 1
    assert err.startswith("error: source flights: flights.csv.gz: not a gz file (Not a gzipped file (b'th'))")
    assert len(err.strip().splitlines()) == 1
    assert "summary" not in out  # progress lines only
    assert not (tmp_path / "delta").exists()
