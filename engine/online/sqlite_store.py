"""The embedded online store: one SQLite file in WAL mode, a table per group keyed by the entity keys.

A materialization is one write transaction (the group's rows and its state together), so a reader, whose
read is one transaction too, sees the previous materialization or the new one, never a mix; a failed
write rolls back and leaves the previous one served.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

from engine.config.online import SqliteStoreConfig
from engine.online.store import Entry, GroupState, Key, StoreUnavailable

_EVENT = "_event_us"
_STATES = "_featurelake_groups"
_BATCH = 10_000  # rows per executemany


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(group: str) -> str:
    return _quoted(f"group_{group}")


class SqliteStore:
    """One file; a connection per thread (SQLite connections are not shared between threads)."""

    def __init__(self, cfg: SqliteStoreConfig) -> None:
        self.path = Path(cfg.path)
        self.location = f"sqlite {self.path}"
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute(f"CREATE TABLE IF NOT EXISTS {_STATES} (name TEXT PRIMARY KEY, state TEXT)")
            except (OSError, sqlite3.Error) as error:
                raise StoreUnavailable(f"online store {self.path}: {error}") from None
            self._local.connection = connection
        return connection

    def state(self, group: str) -> GroupState | None:
        row = self._connection().execute(f"SELECT state FROM {_STATES} WHERE name = ?", (group,)).fetchone()
        return GroupState.from_json(row[0]) if row else None

    def states(self) -> list[GroupState]:
        rows = self._connection().execute(f"SELECT state FROM {_STATES} ORDER BY name").fetchall()
        return [GroupState.from_json(r[0]) for r in rows]

    def write(self, state: GroupState, rows: Iterable[tuple[Key, Entry]], deleted: Sequence[Key], full: bool) -> int:
        db = self._connection()
        table, keys = _table(state.group), [_quoted(k) for k in state.keys]
        columns = [*keys, _quoted(_EVENT), *(_quoted(f) for f in state.features)]
        insert = f"INSERT OR REPLACE INTO {table} VALUES ({', '.join('?' * len(columns))})"
        written = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            if full:
                db.execute(f"DROP TABLE IF EXISTS {table}")
            primary = f"PRIMARY KEY ({', '.join(keys)})"
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)}, {primary}) WITHOUT ROWID")
            if deleted:
                db.executemany(f"DELETE FROM {table} WHERE {_match(keys)}", deleted)
            flat = ((*key, event, *values) for key, (event, values) in rows)
            while batch := list(islice(flat, _BATCH)):
                db.executemany(insert, batch)
                written += len(batch)
            db.execute(f"INSERT OR REPLACE INTO {_STATES} VALUES (?, ?)", (state.group, state.to_json()))
            db.execute("COMMIT")
        except BaseException as error:
            db.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise StoreUnavailable(f"online store {self.path}: {error}") from None
            raise
        return written

    def read(self, group: str, keys: Sequence[Key]) -> tuple[GroupState | None, list[Entry | None]]:
        db = self._connection()
        if not keys:
            return self.state(group), []
        db.execute("BEGIN")
        try:
            row = db.execute(f"SELECT state FROM {_STATES} WHERE name = ?", (group,)).fetchone()
            if row is None:
                return None, [None] * len(keys)
            state = GroupState.from_json(row[0])
            width = len(state.keys)
            names = ", ".join(_quoted(k) for k in state.keys)
            if width == 1:
                where = f"{names} IN ({', '.join('?' * len(keys))})"
                params = [k[0] for k in keys]
            else:
                tuples = ", ".join(f"({', '.join('?' * width)})" for _ in keys)
                where = f"({names}) IN (VALUES {tuples})"
                params = [v for k in keys for v in k]
            found = {
                r[:width]: (r[width], r[width + 1 :])
                for r in db.execute(f"SELECT * FROM {_table(group)} WHERE {where}", params)
            }
        finally:
            db.execute("COMMIT")
        return state, [found.get(tuple(k)) for k in keys]

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _match(keys: list[str]) -> str:
    return " AND ".join(f"{k} = ?" for k in keys)
