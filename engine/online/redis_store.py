"""The Redis online store: an entity per key, a group's state in one key naming the namespace its values
live in.

A full write fills a fresh namespace, then points the state at it in one command, and only then drops the
old namespace; an incremental write changes its entities and the state in one MULTI/EXEC transaction. A
read is one Lua script (atomic on the server): the state and the entities of the namespace it names.
So a reader sees one materialization or the other, and a failed write leaves the previous one served.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from engine.config.online import RedisStoreConfig
from engine.online.store import Entry, GroupState, Key, StoreUnavailable

_BATCH = 5_000  # commands per pipeline round trip
_READ = """
local state = redis.call('GET', KEYS[1])
if not state then return {false} end
local ns = cjson.decode(state)['namespace']
local keys = {}
for i, key in ipairs(ARGV) do keys[i] = KEYS[2] .. ns .. ':' .. key end
if #keys == 0 then return {state} end
local values = redis.call('MGET', unpack(keys))
table.insert(values, 1, state)
return values
"""


def _entity(key: Key) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def _value(entry: Entry) -> str:
    event, values = entry
    return json.dumps([event, *values], separators=(",", ":"))


class RedisStore:
    """Keys: `<prefix>:<group>:state` (JSON) and `<prefix>:<group>:<namespace>:<entity key as JSON>`."""

    def __init__(self, cfg: RedisStoreConfig) -> None:
        self.cfg = cfg
        self.location = f"redis {cfg.host}:{cfg.port}/{cfg.db} (prefix {cfg.key_prefix})"
        self.client = redis.Redis(
            host=cfg.host,
            port=cfg.port,
            db=cfg.db,
            password=os.environ.get(cfg.password_env) or None,
            socket_timeout=cfg.timeout_seconds,
            socket_connect_timeout=cfg.timeout_seconds,
            decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),  # a brief outage, not a long wait
        )
        self._read = self.client.register_script(_READ)

    def _state_key(self, group: str) -> str:
        return f"{self.cfg.key_prefix}:{group}:state"

    def _values_prefix(self, group: str) -> str:
        return f"{self.cfg.key_prefix}:{group}:"

    def _call(self, what: str, func, *args) -> Any:
        try:
            return func(*args)
        except redis.RedisError as error:
            raise StoreUnavailable(f"online store {self.location}: {what}: {error}") from None

    def state(self, group: str) -> GroupState | None:
        text = self._call("read the state", self.client.get, self._state_key(group))
        return GroupState.from_json(text) if text else None

    def states(self) -> list[GroupState]:
        pattern = f"{self.cfg.key_prefix}:*:state"
        keys = sorted(self._call("list the groups", lambda: list(self.client.scan_iter(match=pattern))))
        texts = self._call("read the states", self.client.mget, keys) if keys else []
        return [GroupState.from_json(t) for t in texts if t]

    def write(self, state: GroupState, rows: Iterable[tuple[Key, Entry]], deleted: Sequence[Key], full: bool) -> int:
        held = self._call("read the state", self.client.get, self._state_key(state.group))
        old = json.loads(held)["namespace"] if held else None
        if full or old is None:
            return self._replace(state, rows, old)
        prefix = f"{self._values_prefix(state.group)}{old}:"
        entries = [(f"{prefix}{_entity(k)}", _value(e)) for k, e in rows]
        transaction = self.client.pipeline(transaction=True)
        for key, value in entries:
            transaction.set(key, value)
        for key in deleted:
            transaction.delete(f"{prefix}{_entity(key)}")
        transaction.set(self._state_key(state.group), _with_namespace(state, old))
        self._call("write", transaction.execute)
        return len(entries)

    def _replace(self, state: GroupState, rows: Iterable[tuple[Key, Entry]], old: str | None) -> int:
        namespace = uuid.uuid4().hex[:12]
        prefix = f"{self._values_prefix(state.group)}{namespace}:"
        written = 0
        pending = iter(rows)
        try:
            while batch := list(islice(pending, _BATCH)):
                pipe = self.client.pipeline(transaction=False)
                for key, entry in batch:
                    pipe.set(f"{prefix}{_entity(key)}", _value(entry))
                self._call("write", pipe.execute)
                written += len(batch)
            self._call(
                "write the state", self.client.set, self._state_key(state.group), _with_namespace(state, namespace)
            )
        except BaseException:
            self._drop(state.group, namespace)
            raise
        if old is not None:
            self._drop(state.group, old)
        return written

    def _drop(self, group: str, namespace: str) -> None:
        """Remove a namespace no state names any more (in batches, without blocking the server)."""
        pattern = f"{self._values_prefix(group)}{namespace}:*"
        try:
            batch = []
            for key in self.client.scan_iter(match=pattern, count=_BATCH):
                batch.append(key)
                if len(batch) >= _BATCH:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)
        except redis.RedisError:
            pass  # keys no state names cost space, not correctness

    def read(self, group: str, keys: Sequence[Key]) -> tuple[GroupState | None, list[Entry | None]]:
        args = [_entity(k) for k in keys]
        reply = self._call("read", self._read, [self._state_key(group), self._values_prefix(group)], args)
        if not reply or reply[0] is None:
            return None, [None] * len(keys)
        entries: list[Entry | None] = []
        for text in reply[1:]:
            if text is None:
                entries.append(None)
            else:
                event, *values = json.loads(text)
                entries.append((event, tuple(values)))
        return GroupState.from_json(reply[0]), entries

    def close(self) -> None:
        self.client.close()


def _with_namespace(state: GroupState, namespace: str) -> str:
    return json.dumps({**json.loads(state.to_json()), "namespace": namespace})
