"""The feature server as a real uvicorn process on loopback, over a real SQLite store; and the Redis store
against a real `redis-server` on a loopback port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.config.online import RedisStoreConfig, SqliteStoreConfig
from engine.online.lookup import EXPIRED, PRESENT, UNKNOWN, OnlineClient
from engine.online.redis_store import RedisStore
from engine.online.sqlite_store import SqliteStore
from engine.online.store import GroupState, StoreUnavailable
from scripts import loopback
from tests.conftest import REPO

AT = datetime(2024, 1, 10, 12, tzinfo=UTC)
AT_US = (AT - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000
TOKEN = "s3cret-token-for-tests"
UA, MEAN = {"entities": [{"carrier": "UA"}]}, ["carrier:mean"]


def _state(version: int = 0, ttl: int | None = 3600) -> GroupState:
    return GroupState(
        "carrier",
        "/t",
        version,
        AT.isoformat(),
        ("carrier",),
        ("string",),
        ("mean", "n"),
        ("double", "bigint"),
        ttl,
        "",
    )


def _fill(store) -> None:
    """UA fresh, AA with a null mean, DL older than the TTL."""
    rows = [
        (("UA",), (int(AT_US) - 60_000_000, (12.5, 3))),
        (("AA",), (int(AT_US) - 60_000_000, (None, 0))),
        (("DL",), (int(AT_US) - 7_200_000_000, (1.0, 1))),
    ]
    store.write(_state(), rows, [], full=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`scripts/serve`'s entry point in a process of its own, with a token, over a filled SQLite store."""
    tmp = tmp_path_factory.mktemp("serve")
    _fill(SqliteStore(SqliteStoreConfig(str(tmp / "online.db"))))
    port = loopback.free_port()
    env = {**os.environ, "FEATURELAKE_API_TOKEN": TOKEN}
    args = [f"online.sqlite.path={tmp / 'online.db'}", f"job.log_dir={tmp / 'logs'}", "--max-entities", "100"]
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.serve", "--port", str(port), "--max-body-bytes", "20000", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        loopback.wait_port(port, process)
        yield port, tmp
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def request(
    port: int, method: str, path: str, body: object = None, token: str | None = TOKEN, raw: bytes | None = None
):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
    payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def test_the_server_answers_values_statuses_and_origins(server) -> None:
    port, _ = server
    body = {
        "entities": [{"carrier": c} for c in ("UA", "AA", "DL", "ZZ")],
        "features": ["carrier:mean"],
        "at": AT.isoformat(),
    }
    status, data = request(port, "POST", "/features", body)
    assert status == 200, data
    answer = json.loads(data)
    assert [v["carrier:mean"] for v in answer["values"]] == [12.5, None, None, None]
    assert [s["carrier:mean"] for s in answer["statuses"]] == [PRESENT, "null", EXPIRED, UNKNOWN]
    assert answer["origins"]["carrier"] == {"table": "/t", "version": 0, "as_of": AT.isoformat()}
    status, data = request(port, "GET", "/health")
    assert status == 200 and json.loads(data)["groups"]["carrier"]["version"] == 0
    status, data = request(port, "GET", "/metrics")
    text = data.decode()
    assert status == 200 and 'data_freshness_lag_seconds{data_source="carrier",pipeline="online"}' in text
    assert 'feature_misses_total{group="carrier",status="unknown"} 1.0' in text
    assert "feature_request_seconds_bucket" in text


@pytest.mark.parametrize(
    ("body", "raw", "token", "status", "error"),
    [
        (
            {"entities": [{"carrier": "UA"}], "features": ["carrier:nope"]},
            None,
            TOKEN,
            400,
            "group carrier has no feature nope",
        ),
        ({"entities": [{"tail": "UA"}], "features": ["carrier:mean"]}, None, TOKEN, 400, "entity row 0 has no carrier"),
        (None, b"{not json", TOKEN, 400, "the body is not JSON"),
        ({"entities": "UA", "features": ["carrier:mean"]}, None, TOKEN, 400, "'entities' is not a list of objects"),
        ({"entities": [{"carrier": "UA"}], "features": ["carrier:mean"]}, None, None, 401, "missing or wrong token"),
        ({"entities": [{"carrier": "UA"}], "features": ["carrier:mean"]}, None, "wrong", 401, "missing or wrong token"),
        (
            {"entities": [{"carrier": "UA"}] * 101, "features": ["carrier:mean"]},
            None,
            TOKEN,
            413,
            "at most 100 entities",
        ),
        (None, b"x" * 30_000, TOKEN, 413, "the body is over 20,000 bytes"),
    ],
)
def test_a_bad_request_is_a_4xx_with_one_line(server, body, raw, token, status: int, error: str) -> None:
    port, _ = server
    got, data = request(port, "POST", "/features", body, token=token, raw=raw)
    assert got == status, data
    message = json.loads(data)["error"]
    assert message.startswith(error) and "\n" not in message


def test_the_logs_hold_requests_but_no_token_or_body(server) -> None:
    port, tmp = server
    request(port, "POST", "/features", {"entities": [{"carrier": "UA"}], "features": ["carrier:mean"]})
    time.sleep(0.2)
    log = (tmp / "logs" / "featurelake.log").read_text()
    events = [json.loads(line) for line in log.splitlines()]
    assert any(e.get("event") == "feature_request" and e["status"] == 200 for e in events)
    assert TOKEN not in log and '"carrier": "UA"' not in log and "carrier:mean" not in log


def test_serving_beyond_loopback_needs_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FEATURELAKE_API_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "jobs.serve", "--host", "0.0.0.0"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: config: --host 0.0.0.0: serving beyond loopback needs a token (FEATURELAKE_API_TOKEN or --token-file)"
    )


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A real redis-server on a loopback port, with a password."""
    password = "redis-pass-for-tests"
    with loopback.redis_server(tmp_path_factory.mktemp("redis"), password) as port:
        yield port, password


def _redis(port: int, monkeypatch: pytest.MonkeyPatch, password: str, prefix: str = "test") -> RedisStore:
    monkeypatch.setenv("FEATURELAKE_REDIS_PASSWORD", password)
    return RedisStore(RedisStoreConfig(port=port, key_prefix=prefix))


def test_redis_serves_what_was_written_with_statuses(redis_server, monkeypatch: pytest.MonkeyPatch) -> None:
    port, password = redis_server
    store = _redis(port, monkeypatch, password)
    _fill(store)
    answer = OnlineClient(store).get_online_features(
        [{"carrier": c} for c in ("UA", "AA", "DL", "ZZ")], ["carrier:mean", "carrier:n"], at=AT
    )
    assert [v["carrier:mean"] for v in answer.values] == [12.5, None, None, None]
    assert [v["carrier:n"] for v in answer.values] == [3, 0, None, None]
    assert [s["carrier:mean"] for s in answer.statuses] == [PRESENT, "null", EXPIRED, UNKNOWN]
    store.write(_state(1), [(("UA",), (int(AT_US), (13.5, 4)))], [("AA",)], full=False)
    after = OnlineClient(store).get_online_features([{"carrier": "UA"}, {"carrier": "AA"}], ["carrier:mean"], at=AT)
    assert [v["carrier:mean"] for v in after.values] == [13.5, None]
    assert after.statuses[1]["carrier:mean"] == UNKNOWN and after.origins["carrier"].version == 1
    assert [s.group for s in store.states()] == ["carrier"]


def test_redis_readers_see_one_materialization_or_the_other(redis_server, monkeypatch: pytest.MonkeyPatch) -> None:
    port, password = redis_server
    store = _redis(port, monkeypatch, password, prefix="atomic")
    n = 20_000

    def state(version: int) -> GroupState:
        return GroupState("g", "t", version, AT.isoformat(), ("k",), ("bigint",), ("v",), ("bigint",), None, "")

    store.write(state(0), (((i,), (0, (0,))) for i in range(n)), [], full=True)
    seen, stop = [], threading.Event()

    def read() -> None:
        reader = OnlineClient(_redis(port, monkeypatch, password, prefix="atomic"))
        while not stop.is_set():
            answer = reader.get_online_features([{"k": k} for k in range(0, n, 97)], ["g:v"], at=AT)
            seen.append((answer.origins["g"].version, {v["g:v"] for v in answer.values}))

    thread = threading.Thread(target=read)
    thread.start()
    for version in range(1, 4):
        store.write(state(version), (((i,), (0, (version,))) for i in range(n)), [], full=version % 2 == 1)
    stop.set()
    thread.join()
    assert len({v for v, _ in seen}) > 1
    assert all(values == {version} for version, values in seen), [s for s in seen if s[1] != {s[0]}][:3]


def test_redis_without_its_password_is_one_line(redis_server, monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = redis_server
    monkeypatch.delenv("FEATURELAKE_REDIS_PASSWORD", raising=False)
    with pytest.raises(StoreUnavailable) as error:
        RedisStore(RedisStoreConfig(port=port)).state("carrier")
    assert str(error.value).startswith(f"online store redis 127.0.0.1:{port}/0 (prefix featurelake): read the state: ")
    assert "\n" not in str(error.value)
