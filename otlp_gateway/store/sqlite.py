"""The SQLite connector: one file in WAL mode, driven from one ``SerialExecutor`` thread so the loop never
blocks.

One connection serves every call, in order, on the single worker thread (sqlite3 objects stay on the
thread that uses them). WAL lets the ``otlp-gateway migrate`` CLI or a backup read while the gateway
writes; ``synchronous=NORMAL`` in WAL mode survives a process crash (only an OS crash or power loss can
lose the last commits). Anomaly batches go in by ``executemany`` in one transaction. Times are fixed-width
UTC text, JSON is text, booleans are 0/1. New files use incremental auto-vacuum, so the space pruning
frees goes back to the filesystem (the data dir has a size budget); a file made before that is converted
by one ``VACUUM`` the first time pruning frees space.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from otlp_gateway.serial import SerialExecutor
from otlp_gateway.store import codec
from otlp_gateway.store.errors import AlreadyExistsError, RowRejectedError, StoreUnavailableError
from otlp_gateway.store.migrator import Dialect, check_history, load_migrations
from otlp_gateway.store.sql_store import SqlStore

log = logging.getLogger(__name__)
T = TypeVar("T")

_AUTO_VACUUM_INCREMENTAL = 2
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
"""The WAL is truncated back to this after checkpoints (it otherwise keeps its largest size)."""


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


def _enter_wal(conn: sqlite3.Connection, attempts: int = 50) -> None:
    # Switching a new file to WAL takes an exclusive lock without waiting on the busy timeout, so two
    # processes opening a fresh file together (the gateway and `otlp-gateway migrate`) can collide.
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), never implicit.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    # Takes effect only while the file has no table yet (a new store); older files: see reclaim_space.
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    _enter_wal(conn)
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
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


_NAMED_PARAMETER = re.compile(r":([a-z_][a-z0-9_]*)")


@functools.cache
def _positional(sql: str, columns: tuple[str, ...]) -> str:
    """``sql`` with its named parameters as ``?``, checked to be ``columns`` in order: bulk rows then bind
    as tuples (binding 29 named values per row costs ~6 us more than positional ones, ~10 % of a write)."""
    named = tuple(_NAMED_PARAMETER.findall(sql))
    if named != columns:
        raise ValueError(f"bulk insert parameters {named} are not the columns {columns} in order")
    return _NAMED_PARAMETER.sub("?", sql)


class SqliteConnector:
    """``Connector`` for an embedded SQLite file (see the module docstring)."""

    dialect: Dialect = "sqlite"
    decode = codec.RowDecoder(time=dt.datetime.fromisoformat, json=json.loads)

    def __init__(self, path: Path):
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._io: SerialExecutor | None = None
        self._vacuum_failed = False

    def time(self, value: dt.datetime) -> str:
        return ts(value)

    def flag(self, value: bool) -> int:
        return int(value)

    async def open(self) -> None:
        if self._io is None:
            self._io = SerialExecutor("sqlite-store")
        if self._conn is None:
            self._conn = await self._call(_connect, self.path)

    async def close(self) -> None:
        io, self._io = self._io, None
        conn, self._conn = self._conn, None
        if io is None:
            return
        if conn is not None:
            await io.run(conn.close)
        io.shutdown(wait=True)

    async def migrate(self) -> list[str]:
        return await self._with_conn(migrate_sqlite_connection)

    async def fetch(self, sql: str, params: Mapping[str, Any]) -> list[codec.Row]:
        return await self._with_conn(lambda conn: list(conn.execute(sql, params).fetchall()))

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        return await self._with_conn(lambda conn: max(conn.execute(sql, params).rowcount, 0))

    async def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        if not params:
            return 0

        def write(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                before = conn.total_changes
                conn.executemany(sql, params)
                return conn.total_changes - before

        return await self._with_conn(write)

    async def insert_many(self, sql: str, columns: Sequence[str], rows: Sequence[T],
                          encode: Callable[[T], tuple[Any, ...]]) -> int:
        positional = _positional(sql, tuple(columns))

        def write(conn: sqlite3.Connection) -> int:
            params = [encode(r) for r in rows]  # on the store thread
            with _transaction(conn):
                before = conn.total_changes
                conn.executemany(positional, params)
                return conn.total_changes - before

        return await self._with_conn(write)

    async def reclaim_space(self) -> None:
        await self._with_conn(self._reclaim_sync)

    def _reclaim_sync(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == _AUTO_VACUUM_INCREMENTAL:
            # executescript steps the pragma to completion (execute() frees a single page per step).
            conn.executescript("PRAGMA incremental_vacuum;")
        elif not self._vacuum_failed:
            # A file made before incremental auto-vacuum: one full VACUUM converts it (it rewrites the file
            # and needs as much free temporary space; on failure the freed pages are still reused).
            log.info("sqlite store %s: converting to incremental auto-vacuum (one VACUUM)", self.path)
            try:
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.execute("VACUUM")
            except sqlite3.Error as exc:
                self._vacuum_failed = True
                log.warning("sqlite store %s: VACUUM failed (%s); freed pages are reused but the file does "
                            "not shrink until `VACUUM` is run on it offline", self.path, exc)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # --- plumbing: every call runs on the store's one thread

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._io is None:
            raise StoreUnavailableError("the sqlite store is not open")
        with _db_errors():
            return await self._io.run(fn, *args)

    async def _with_conn(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._conn is None:
                raise StoreUnavailableError("the sqlite store is not open")
            return fn(self._conn)

        return await self._call(run)


class SqliteStore(SqlStore):
    """The store in an embedded SQLite file: ``SqlStore`` with a ``SqliteConnector``."""

    def __init__(self, path: Path):
        self.connector: SqliteConnector
        super().__init__(SqliteConnector(path))
        self.path = path
