"""The embedded store: one SQLite file in WAL mode, driven from a dedicated thread so the loop never blocks.

One connection serves every call, in order, on a single worker thread (sqlite3 objects stay on the
thread that uses them). WAL lets the ``otlp-gateway migrate`` CLI or a backup read while the gateway
writes; ``synchronous=NORMAL`` in WAL mode survives a process crash (only an OS crash or power loss can
lose the last commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from otlp_gateway.store import codec
from otlp_gateway.store.base import (
    AnomalyFilter,
    AnomalyRecord,
    AnomalyStatus,
    ApiKey,
    AuditEntry,
    Page,
    StreamInfo,
    StreamState,
)
from otlp_gateway.store.errors import AlreadyExistsError, RowRejectedError, StoreUnavailableError
from otlp_gateway.store.migrator import check_history, load_migrations

log = logging.getLogger(__name__)
T = TypeVar("T")

_WRITE_COLUMNS = codec.ANOMALY_WRITE_COLUMNS
# ON CONFLICT DO NOTHING, not INSERT OR IGNORE: OR IGNORE would also skip rows failing a CHECK or NOT
# NULL constraint, silently; the upsert clause skips only the (stream, window) duplicates.
_INSERT_ANOMALY = (f"INSERT INTO anomalies ({', '.join(_WRITE_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(_WRITE_COLUMNS))}) ON CONFLICT DO NOTHING")
_ANOMALY_READ = codec.ANOMALY_READ_COLUMNS
_STREAM_COLUMNS = codec.STREAM_COLUMNS
_KEY_COLUMNS = codec.KEY_COLUMNS
_AUDIT_COLUMNS = codec.AUDIT_COLUMNS


def ts(value: dt.datetime) -> str:
    """Fixed-width UTC text: lexical order equals time order (range filters and keyset pagination)."""
    # isoformat is C-fast (strftime costs ~10 us per call); always microseconds, so always fixed width.
    return codec.as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _classify(exc: BaseException) -> Exception | None:
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(exc):
        return AlreadyExistsError(str(exc))
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | OverflowError):
        return RowRejectedError(f"sqlite refused the data: {exc}")
    if isinstance(exc, sqlite3.Error | OSError):
        return StoreUnavailableError(f"sqlite unavailable: {type(exc).__name__}: {exc}")
    return None


@contextlib.contextmanager
def _db_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _classify(exc)
        if mapped is None:
            raise
        raise mapped from exc


def _split_statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3's executescript would commit our transaction)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer)
            buffer = ""
    return statements


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), never implicit.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock with another writer
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate_sqlite_connection(conn: sqlite3.Connection) -> list[str]:
    migrations = load_migrations("sqlite")
    with _transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT")
    applied: list[str] = []
    while True:
        with _transaction(conn):
            history = {int(v): str(c) for v, c in
                       conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()}
            pending = check_history(migrations, history)
            if not pending:
                return applied
            migration = pending[0]
            for statement in _split_statements(migration.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                         "VALUES (?, ?, ?, ?)",
                         (migration.version, migration.name, migration.checksum, ts(dt.datetime.now(dt.UTC))))
        log.info("applied sqlite migration %s", migration.label)
        applied.append(migration.label)


def migrate_sqlite(path: Path) -> list[str]:
    with _db_errors():
        conn = _connect(path)
        try:
            return migrate_sqlite_connection(conn)
        finally:
            conn.close()


# Times are stored as fixed-width ISO text (``ts``) and JSON columns as text.
_DECODE = codec.RowDecoder(time=dt.datetime.fromisoformat, json=json.loads)


class SqliteStore:
    """``AnomalyStore`` and ``ApiKeyStore`` on an embedded SQLite file."""

    backend = "sqlite"

    def __init__(self, path: Path):
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        if self._conn is None:
            self._conn = await self._call(_connect, self.path)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        conn, self._conn = self._conn, None
        if executor is None:
            return
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    async def migrate(self) -> list[str]:
        return await self._with_conn(migrate_sqlite_connection)

    async def ping(self) -> float:
        started = time.perf_counter()
        await self._with_conn(lambda c: c.execute("SELECT 1").fetchone())
        return time.perf_counter() - started

    # --- anomalies

    async def write_anomalies(self, rows: list[AnomalyRecord]) -> int:
        if not rows:
            return 0
        def write(conn: sqlite3.Connection) -> int:
            params = [codec.anomaly_values(r, ts, int) for r in rows]  # on the store thread, not the loop
            with _transaction(conn):
                before = conn.total_changes
                conn.executemany(_INSERT_ANOMALY, params)
                return conn.total_changes - before

        return await self._with_conn(write)

    async def query_anomalies(self, flt: AnomalyFilter, limit: int, cursor: str | None) -> Page:
        codec.check_limit(limit)
        where, params = codec.anomaly_where(flt, cursor, "?", ts)
        query = f"SELECT {_ANOMALY_READ} FROM anomalies{where} ORDER BY detected_at DESC, id DESC LIMIT ?"
        rows = await self._fetch(query, [*params, limit + 1])
        return codec.anomaly_page(rows, limit, _DECODE)

    async def get_anomaly(self, anomaly_id: str) -> AnomalyRecord | None:
        rows = await self._fetch(f"SELECT {_ANOMALY_READ} FROM anomalies WHERE id = ?", (anomaly_id,))
        return _DECODE.anomaly(rows[0]) if rows else None

    async def set_anomaly_status(self, anomaly_id: str, status: AnomalyStatus) -> AnomalyRecord | None:
        rows = await self._fetch(
            f"UPDATE anomalies SET status = ? WHERE id = ? RETURNING {_ANOMALY_READ}", (status, anomaly_id))
        return _DECODE.anomaly(rows[0]) if rows else None

    # --- streams and detector state

    async def upsert_stream(self, info: StreamInfo) -> None:
        await self._execute(
            f"INSERT INTO streams ({_STREAM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET signal = excluded.signal, service = excluded.service, "
            "name = excluded.name, state = excluded.state, profile = excluded.profile, "
            "settings = excluded.settings, events_seen = excluded.events_seen, "
            "updated_at = excluded.updated_at",
            codec.stream_values(info, ts))

    async def list_streams(self, *, after: str | None = None, limit: int | None = None,
                           state: StreamState | None = None) -> list[StreamInfo]:
        where, params = codec.stream_where(after, state, "?", '')
        page = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = await self._fetch(
            f"SELECT {_STREAM_COLUMNS} FROM streams{where} ORDER BY stream_id{page}", params)
        return [_DECODE.stream(r) for r in rows]

    async def get_stream(self, stream_id: str) -> StreamInfo | None:
        rows = await self._fetch(f"SELECT {_STREAM_COLUMNS} FROM streams WHERE stream_id = ?", (stream_id,))
        return _DECODE.stream(rows[0]) if rows else None

    async def save_state(self, stream_id: str, snapshot: bytes) -> None:
        await self._execute(
            "INSERT INTO detector_state (stream_id, snapshot, saved_at) VALUES (?, ?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET snapshot = excluded.snapshot, "
            "saved_at = excluded.saved_at",
            (stream_id, bytes(snapshot), ts(dt.datetime.now(dt.UTC))))

    async def load_state(self, stream_id: str) -> bytes | None:
        rows = await self._fetch("SELECT snapshot FROM detector_state WHERE stream_id = ?", (stream_id,))
        return bytes(rows[0]["snapshot"]) if rows else None

    # --- API keys and audit log

    async def create_api_key(self, key: ApiKey) -> None:
        await self._execute(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            codec.api_key_values(key, ts))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
        return _DECODE.api_key(rows[0]) if rows else None

    async def list_api_keys(self) -> list[ApiKey]:
        rows = await self._fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id", ())
        return [_DECODE.api_key(r) for r in rows]

    async def update_api_key(self, key: ApiKey) -> None:
        await self._execute(
            "UPDATE api_keys SET name = ?, role = ?, secret_hash = ?, created_at = ?, revoked_at = ?, "
            "rotated_at = ?, last_used_at = ? WHERE key_id = ?",
            (*codec.api_key_values(key, ts)[1:], key.key_id))

    async def touch_api_key(self, key_id: str, at: dt.datetime) -> None:
        await self._execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (ts(at), key_id))

    async def append_audit(self, entry: AuditEntry) -> int:
        rows = await self._fetch(
            "INSERT INTO audit_log (actor, action, target, before, after, at) VALUES (?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            codec.audit_values(entry, ts))
        entry.id = int(rows[0]["id"])
        return entry.id

    async def query_audit(self, since: dt.datetime | None, actor: str | None, limit: int,
                          cursor: str | None) -> tuple[list[AuditEntry], str | None]:
        codec.check_limit(limit)
        where, params = codec.audit_where(since, actor, cursor, "?", ts)
        rows = await self._fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log{where} ORDER BY at DESC, id DESC LIMIT ?",
            [*params, limit + 1])
        return codec.audit_page(rows, limit, _DECODE)

    # --- plumbing: every call runs on the store's one thread

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreUnavailableError("the sqlite store is not open")
        with _db_errors():
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _with_conn(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._conn is None:
                raise StoreUnavailableError("the sqlite store is not open")
            return fn(self._conn)

        return await self._call(run)

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        def fetch(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(query, params).fetchall()

        return await self._with_conn(fetch)

    async def _execute(self, query: str, params: Sequence[Any]) -> None:
        await self._with_conn(lambda conn: conn.execute(query, params))
