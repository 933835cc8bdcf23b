"""Persistent export spool: SQLite in WAL mode with group commit.

Every accepted request is inserted before ``consume()`` returns. Appends that arrive while a commit
is running are gathered into the next one, so one fsync covers all of them. Deliveries are deleted
lazily (with the next insert commit, or after a short idle delay): a delete lost in a crash only means
that request is sent again (at-least-once).

SQLite runs on one dedicated thread, so the event loop never waits on the disk. That thread must win
the GIL back after every call that released it, which costs up to the interpreter's switch interval
on a busy loop; so a commit is kept to a few calls: one zstd call compresses the whole group, and one
multi-row ``INSERT`` (ids assigned here) writes it. Payloads are stored zstd-compressed (level 1:
about 4x smaller OTLP for ~0.3 ms per 140 KB request): the disk's write bandwidth bounds the spool, and
WAL writes every page twice (log, then checkpoint). 64 KiB pages cut SQLite's per-page overhead on
these large blobs about 3x. The file is locked exclusively: two gateways must not share a data_dir.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import zstandard

from otlp_gateway.batch import SIGNALS, Signal

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS export_spool (
    id          INTEGER PRIMARY KEY,
    signal      TEXT    NOT NULL,
    item_count  INTEGER NOT NULL,
    size        INTEGER NOT NULL,  -- uncompressed payload bytes
    codec       TEXT    NOT NULL,  -- 'zstd' or 'none'
    enqueued_at REAL    NOT NULL,
    payload     BLOB    NOT NULL
)
"""
_ROWS_PER_INSERT = 500  # 6 bound values per row, well under SQLite's 32766-variable limit
_IDS_PER_DELETE = 10_000
DELETE_DELAY_SECONDS = 0.25
"""Deletes with no insert to ride along are committed after this idle delay, many at once."""


@dataclass(slots=True)
class SpoolRecord:
    id: int
    signal: Signal
    item_count: int
    size: int


@dataclass(slots=True)
class _PendingInsert:
    id: int
    signal: Signal
    item_count: int
    payload: bytes
    future: asyncio.Future[SpoolRecord]


class SpoolError(Exception):
    """The spool could not store or read a request (disk full, I/O error, locked by another process)."""


class Spool:
    """Durable FIFO of serialized export requests under ``directory``.

    ``on_durable(record, payload)`` is called (on the event loop) for each row right after its commit,
    before the waiting ``append`` resumes, and even if that caller was cancelled meanwhile: a committed
    row is always handed on for delivery. ``on_failed(signal, item_count, size)`` is called likewise for
    each append whose commit failed, so the caller's accounting never depends on the caller surviving.
    """

    FILE_NAME = "export-spool.sqlite3"

    def __init__(self, directory: Path, on_durable: Callable[[SpoolRecord, bytes], None],
                 on_failed: Callable[[Signal, int, int], None]):
        self.path = directory / self.FILE_NAME
        self._on_durable = on_durable
        self._on_failed = on_failed
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-spool")
        self._conn: sqlite3.Connection | None = None
        self._compressor = zstandard.ZstdCompressor(level=1)  # used only on the spool thread
        self._decompressor = zstandard.ZstdDecompressor()
        self._next_id = 1
        self._inserts: list[_PendingInsert] = []
        self._deletes: list[int] = []
        self._flusher: asyncio.Task[None] | None = None
        self._delete_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self.commits = 0
        """Transactions committed (group-commit effectiveness = appends / commits)."""

    # ---- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> list[SpoolRecord]:
        """Open (or create) the file and return the rows left by a previous run, oldest first."""
        records = await self._run(self._open_sync)
        self._next_id = max((r.id for r in records), default=0) + 1
        return records

    async def close(self) -> None:
        """Commit what is pending (deletes included), checkpoint the WAL and close. Idempotent."""
        self._closing = True
        if self._conn is not None and (self._inserts or self._deletes):
            self._start_flusher()
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._conn is not None:
            await self._run(self._close_sync)
        self._thread.shutdown(wait=True)

    # ---- operations ------------------------------------------------------------------------------
    async def append(self, signal: Signal, payload: bytes, item_count: int) -> SpoolRecord:
        """Returns once the row is committed (fsynced); raises ``SpoolError`` if it could not be."""
        future: asyncio.Future[SpoolRecord] = asyncio.get_running_loop().create_future()
        self._inserts.append(_PendingInsert(self._next_id, signal, item_count, payload, future))
        self._next_id += 1
        self._start_flusher()
        return await future

    def forget(self, record_id: int) -> None:
        """Delivered or dropped: delete it soon, batched with other writes (nobody waits for it)."""
        self._deletes.append(record_id)
        if (self._flusher is None or self._flusher.done()) and self._delete_timer is None:
            self._delete_timer = asyncio.get_running_loop().call_later(DELETE_DELAY_SECONDS,
                                                                       self._start_flusher)

    async def load(self, record_id: int) -> bytes | None:
        """The payload of a row not kept in memory; ``None`` if the row is gone."""
        return await self._run(self._load_sync, record_id)

    # ---- group commit ----------------------------------------------------------------------------
    def _start_flusher(self) -> None:
        if self._delete_timer is not None:
            self._delete_timer.cancel()
            self._delete_timer = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_until_idle())

    async def _flush_until_idle(self) -> None:
        # Deletes alone do not keep this loop going (they wait for the timer), except at close.
        first = True
        while self._inserts or (self._deletes and (first or self._closing)):
            first = False
            inserts, self._inserts = self._inserts, []
            deletes, self._deletes = self._deletes, []
            rows = [(p.id, p.signal, p.item_count, p.payload) for p in inserts]
            try:
                await self._run(self._commit_sync, rows, deletes)
            except Exception as err:  # disk full, I/O error, or closed: every waiter must get an answer
                log.error("export spool: commit of %d requests failed: %s", len(inserts), err)
                for p in inserts:
                    self._on_failed(p.signal, p.item_count, len(p.payload))
                    if not p.future.done():
                        p.future.set_exception(SpoolError(f"export spool write failed: {err}"))
                self._deletes.extend(deletes)  # retried later; a lost delete only means a duplicate
                if self._closing:
                    return
                continue
            self.commits += 1
            for p in inserts:
                record = SpoolRecord(p.id, p.signal, p.item_count, len(p.payload))
                self._on_durable(record, p.payload)
                if not p.future.done():
                    p.future.set_result(record)
        if self._deletes and not self._closing and self._delete_timer is None:
            self._delete_timer = asyncio.get_running_loop().call_later(DELETE_DELAY_SECONDS,
                                                                       self._start_flusher)

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # ---- the SQLite thread -----------------------------------------------------------------------
    def _open_sync(self) -> list[SpoolRecord]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._connect()
            rows = conn.execute(
                "SELECT id, signal, item_count, size FROM export_spool ORDER BY id").fetchall()
        except sqlite3.OperationalError as err:
            if "locked" in str(err):
                raise SpoolError(f"export spool {self.path} is in use by another process; "
                                 "each gateway needs its own data_dir") from err
            raise SpoolError(f"cannot open export spool {self.path}: {err}") from err
        except sqlite3.DatabaseError as err:  # not a database / malformed
            self._move_aside(err)
            conn = self._connect()
            rows = []
        self._conn = conn
        unknown = [r for r in rows if r[1] not in SIGNALS]
        if unknown:  # written by a newer version? keep them on disk, say so, don't send them
            log.error("export spool: %d request(s) of unknown signal(s) %s left in %s", len(unknown),
                      sorted({r[1] for r in unknown}), self.path)
        return [SpoolRecord(r[0], r[1], r[2], r[3]) for r in rows if r[1] in SIGNALS]

    def _move_aside(self, err: Exception) -> None:
        # Keep the unreadable file for inspection rather than crash-loop on it or delete it.
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error("export spool %s is unreadable (%s); moved aside to %s and starting empty",
                  self.path, err, aside)
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            extra = self.path.with_name(self.path.name + suffix)
            if extra.exists():
                extra.rename(aside.with_name(aside.name + suffix))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.5)
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA page_size=65536")  # only takes effect when the file is new
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so an acknowledged request survives power loss.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _commit_sync(self, rows: list[tuple[int, str, int, bytes]], deletes: list[int]) -> None:
        conn = self._conn
        assert conn is not None
        now = time.time()
        compressed = self._compressor.multi_compress_to_buffer([r[3] for r in rows]) if rows else None
        statements: list[tuple[str, list[object]]] = []
        for start in range(0, len(deletes), _IDS_PER_DELETE):
            chunk = deletes[start:start + _IDS_PER_DELETE]
            statements.append((f"DELETE FROM export_spool WHERE id IN ({','.join('?' * len(chunk))})",
                                list(chunk)))
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start:start + _ROWS_PER_INSERT]
            values: list[object] = []
            for offset, (record_id, signal, item_count, payload) in enumerate(chunk, start):
                assert compressed is not None
                values += [record_id, signal, item_count, len(payload), now, compressed[offset].tobytes()]
            placeholders = ",".join(["(?, ?, ?, ?, 'zstd', ?, ?)"] * len(chunk))
            statements.append(("INSERT INTO export_spool (id, signal, item_count, size, codec, enqueued_at, "
                               f"payload) VALUES {placeholders}", values))
        if len(statements) == 1:  # autocommit: the statement is its own transaction (fewer calls)
            conn.execute(*statements[0])
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _load_sync(self, record_id: int) -> bytes | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT codec, payload FROM export_spool WHERE id = ?",
                                 (record_id,)).fetchone()
        if row is None:
            return None
        codec, stored = row
        return self._decompressor.decompress(stored) if codec == "zstd" else bytes(stored)

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
