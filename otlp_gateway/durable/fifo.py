"""The durable FIFO: entries committed to disk before ``append`` returns, handed out oldest first, deleted
once their consumer confirms them. Both the export queue and the anomaly spool are one of these.

Format: one SQLite file in WAL mode, table ``fifo`` (id, tag, item_count, size, codec, enqueued_at,
payload), payloads zstd-compressed. Why SQLite rather than append-only segment files: entries are
confirmed one by one and out of order (eight senders deliver concurrently), which a table deletes by key
while segments could only drop whole files; binary payloads need no text encoding; SQLite's WAL gives
atomic multi-row commits and crash recovery we would otherwise write ourselves. Figures (this format
against the JSONL segments it replaced) are in docs/benchmarks.md.

Group commit: appends that arrive while a commit runs are gathered into the next one, so one fsync
(``synchronous=FULL``) covers all of them. SQLite runs on one ``SerialExecutor`` thread, so the event loop
never waits on the disk. That thread must win the GIL back after every call that released it, which
costs up to the interpreter's switch interval on a busy loop; so a commit is kept to a few calls: one zstd
call compresses the whole group and one multi-row ``INSERT`` (ids assigned here) writes it. zstd level 1
makes OTLP about 4x smaller for ~0.3 ms per 140 KB request: the disk's write bandwidth bounds the spool,
and WAL writes every page twice (log, then checkpoint). 64 KiB pages cut SQLite's per-page overhead on
these large blobs about 3x.

Deletes are lazy: committed with the next append, or after ``DELETE_DELAY_SECONDS`` of quiet, many at
once. A delete lost in a crash only means that entry is handed out again (at-least-once).

Payloads are kept in memory up to ``memory_bytes`` (uncompressed); the rest are read back from disk when
their turn comes, so replaying a large backlog does not fill RAM. Without a path the FIFO is memory only
(same ordering and accounting, nothing survives the process). The file is locked exclusively: two
gateways must not share a data_dir.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import zstandard

from otlp_gateway.durable import legacy
from otlp_gateway.durable.errors import FifoError
from otlp_gateway.serial import SerialExecutor

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS fifo (
    id          INTEGER PRIMARY KEY,
    tag         TEXT    NOT NULL,  -- what the payload is (a signal; 'anomalies')
    item_count  INTEGER NOT NULL,  -- items in the payload (spans, records, rows)
    size        INTEGER NOT NULL,  -- uncompressed payload bytes
    codec       TEXT    NOT NULL,  -- 'zstd' or 'none'
    enqueued_at REAL    NOT NULL,
    payload     BLOB    NOT NULL
)
"""
_ROWS_PER_INSERT = 500  # 6 bound values per row, well under SQLite's 32766-variable limit
_IDS_PER_DELETE = 10_000
DELETE_DELAY_SECONDS = 0.25
"""Deletes with no append to ride along are committed after this idle delay, many at once."""
DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024


@dataclass(slots=True, eq=False)
class Entry:
    """One queued payload. ``payload`` is ``None`` while the bytes live only on disk."""

    id: int
    tag: str
    count: int
    size: int
    payload: bytes | None = None


@dataclass(slots=True)
class _PendingAppend:
    entry: Entry
    payload: bytes
    future: asyncio.Future[Entry]


class DurableFifo:
    """Durable FIFO of byte payloads in the SQLite file ``path`` (``None``: memory only).

    Producer: ``await append(tag, payload, count)`` returns once the entry is committed; a committed
    entry is always queued for consumers, even if the appending caller was cancelled meanwhile.
    Consumers: ``await take()`` hands out the oldest entry with its payload loaded; ``done(entry)``
    deletes it, ``requeue(entry)`` puts it back at the front. ``pending_*`` count everything not done yet
    (being committed, queued, handed out); ``on_change()`` is called whenever they change.
    Entries whose tag is not in ``tags`` (written by a newer version?) stay on disk untouched.
    """

    def __init__(self, path: Path | None, *, name: str, tags: Collection[str] | None = None,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, on_change: Callable[[], None] | None = None,
                 on_lost: Callable[[Entry], None] | None = None):
        self.path = path
        self.name = name
        self._tags = frozenset(tags) if tags is not None else None
        self._memory_budget = memory_bytes
        self._on_change = on_change
        self._on_lost = on_lost
        self._io = SerialExecutor(name) if path is not None else None
        self._conn: sqlite3.Connection | None = None
        self._compressor = zstandard.ZstdCompressor(level=1)  # used only on the I/O thread
        self._decompressor = zstandard.ZstdDecompressor()
        self._next_id = 1
        self._ready: deque[Entry] = deque()
        self._taken: dict[int, Entry] = {}
        self._appends: list[_PendingAppend] = []
        self._deletes: list[int] = []
        self._flusher: asyncio.Task[None] | None = None
        self._delete_timer: asyncio.TimerHandle | None = None
        self._nonempty = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._opened = False
        self._closing = False
        self._memory_bytes = 0
        self.pending_entries = 0
        self.pending_items = 0
        self.pending_bytes = 0
        """Uncompressed payload bytes not yet done."""
        self.commits = 0
        """Transactions committed (group-commit effectiveness = appends / commits)."""

    @property
    def durable(self) -> bool:
        return self._io is not None

    # ---- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> int:
        """Open (or create, or upgrade) the file and queue what a previous run left; returns how many
        entries were recovered. Idempotent."""
        if self._opened:
            return 0
        self._opened = True
        if self._io is None:
            return 0
        entries, max_id = await self._io.run(self._open_sync)
        self._next_id = max_id + 1
        for entry in entries:
            self._count(1, entry.count, entry.size)
            self._ready.append(entry)
        if entries:
            self._nonempty.set()
        return len(entries)

    async def close(self) -> None:
        """Commit what is pending (deletes included), checkpoint the WAL and close. Idempotent.
        Entries not done stay in the file for the next ``open``."""
        if self._closing:
            return
        self._closing = True
        if self._io is None:
            return
        if self._conn is not None and (self._appends or self._deletes):
            self._start_flusher()
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._conn is not None:
            await self._io.run(self._close_sync)
        self._io.shutdown(wait=True)

    # ---- producer --------------------------------------------------------------------------------
    async def append(self, tag: str, payload: bytes, count: int) -> Entry:
        """Returns once the entry is committed (fsynced); raises ``FifoError`` if it could not be."""
        if self._closing or not self._opened:
            raise FifoError(f"{self.name} is {'closed' if self._closing else 'not open'}")
        entry = Entry(self._next_id, tag, count, len(payload))
        self._next_id += 1
        self._count(1, count, entry.size)
        if self._io is None:
            entry.payload = payload
            self._memory_bytes += entry.size
            self._push(entry)
            return entry
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._appends.append(_PendingAppend(entry, payload, future))
        self._start_flusher()
        return await future

    # ---- consumers -------------------------------------------------------------------------------
    async def take(self) -> Entry:
        """The oldest queued entry, its payload loaded; waits while there is none."""
        while True:
            while not self._ready:
                self._nonempty.clear()
                await self._nonempty.wait()
            entry = self._ready.popleft()
            self._taken[entry.id] = entry
            if entry.payload is not None:
                return entry
            payload = await self._load(entry)
            if payload is not None:
                entry.payload = payload
                self._memory_bytes += entry.size
                return entry

    def done(self, entry: Entry) -> None:
        """Delivered or given up for good: free its place and delete it (soon, batched)."""
        if self._taken.pop(entry.id, None) is None:
            return
        self._forget(entry)
        if self._io is None:
            return
        # While closing, the final flush commits these if it has not finished yet (else: a duplicate).
        self._deletes.append(entry.id)
        idle = self._flusher is None or self._flusher.done()
        if idle and self._delete_timer is None and not self._closing:
            self._delete_timer = asyncio.get_running_loop().call_later(DELETE_DELAY_SECONDS,
                                                                       self._start_flusher)

    def requeue(self, entry: Entry) -> None:
        """Put a handed-out entry back in its place, ahead of younger ones (its consumer stopped, not its
        delivery)."""
        if self._taken.pop(entry.id, None) is not None:
            position = 0  # usually 0: requeued entries are older than what is still queued
            while position < len(self._ready) and self._ready[position].id < entry.id:
                position += 1
            self._ready.insert(position, entry)
            self._nonempty.set()

    def unfinished(self) -> list[Entry]:
        """Queued and handed-out entries (what a memory-only FIFO loses at exit)."""
        return [*self._ready, *self._taken.values()]

    async def wait_idle(self) -> None:
        """Until nothing is pending."""
        await self._idle.wait()

    # ---- accounting ------------------------------------------------------------------------------
    def _push(self, entry: Entry) -> None:
        self._ready.append(entry)
        self._nonempty.set()

    def _forget(self, entry: Entry) -> None:
        if entry.payload is not None:
            self._memory_bytes -= entry.size
            entry.payload = None
        self._count(-1, -entry.count, -entry.size)

    def _count(self, entries: int, items: int, size: int) -> None:
        self.pending_entries += entries
        self.pending_items += items
        self.pending_bytes += size
        if self.pending_entries:
            self._idle.clear()
        else:
            self._idle.set()
        if self._on_change is not None:
            self._on_change()

    async def _load(self, entry: Entry) -> bytes | None:
        assert self._io is not None
        try:
            payload = await self._io.run(self._load_sync, entry.id)
        except Exception as err:
            log.error("%s: cannot read entry %d back (%s); it stays in %s for the next start", self.name,
                      entry.id, err, self.path)
            if self._taken.pop(entry.id, None) is not None:
                self._count(-1, -entry.count, -entry.size)
            return None
        if payload is None:
            log.error("%s: entry %d (%d %s) vanished from %s", self.name, entry.id, entry.count, entry.tag,
                      self.path)
            if self._taken.pop(entry.id, None) is not None:
                self._count(-1, -entry.count, -entry.size)
                if self._on_lost is not None:
                    self._on_lost(entry)
        return payload

    # ---- group commit ----------------------------------------------------------------------------
    def _start_flusher(self) -> None:
        if self._delete_timer is not None:
            self._delete_timer.cancel()
            self._delete_timer = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_until_idle(),
                                                                   name=f"{self.name}-commit")

    async def _flush_until_idle(self) -> None:
        assert self._io is not None
        # Deletes alone do not keep this loop going (they wait for the timer), except at close.
        first = True
        while self._appends or (self._deletes and (first or self._closing)):
            first = False
            appends, self._appends = self._appends, []
            deletes, self._deletes = self._deletes, []
            rows = [(p.entry.id, p.entry.tag, p.entry.count, p.payload) for p in appends]
            try:
                await self._io.run(self._commit_sync, rows, deletes)
            except Exception as err:  # disk full, I/O error, or closed: every waiter must get an answer
                log.error("%s: commit of %d entries failed: %s", self.name, len(appends), err)
                for p in appends:
                    self._count(-1, -p.entry.count, -p.entry.size)
                    if not p.future.done():
                        p.future.set_exception(FifoError(f"{self.name} write failed: {err}"))
                self._deletes.extend(deletes)  # retried later; a lost delete only means a duplicate
                if self._closing:
                    return
                continue
            self.commits += 1
            for p in appends:
                entry = p.entry
                if self._memory_bytes + entry.size <= self._memory_budget:
                    entry.payload = p.payload
                    self._memory_bytes += entry.size
                self._push(entry)
                if not p.future.done():
                    p.future.set_result(entry)
        if self._deletes and not self._closing and self._delete_timer is None:
            self._delete_timer = asyncio.get_running_loop().call_later(DELETE_DELAY_SECONDS,
                                                                       self._start_flusher)

    # ---- the I/O thread --------------------------------------------------------------------------
    def _open_sync(self) -> tuple[list[Entry], int]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._connect()
            rows = conn.execute("SELECT id, tag, item_count, size FROM fifo ORDER BY id").fetchall()
        except sqlite3.OperationalError as err:
            if "locked" in str(err):
                raise FifoError(f"{self.path} is in use by another process; "
                                "each gateway needs its own data_dir") from err
            raise FifoError(f"cannot open {self.path}: {err}") from err
        except sqlite3.DatabaseError as err:  # not a database / malformed
            self._move_aside(err)
            conn = self._connect()
            rows = []
        self._conn = conn
        max_id = max((r[0] for r in rows), default=0)
        if self._tags is not None:
            unknown = [r for r in rows if r[1] not in self._tags]
            if unknown:
                log.error("%s: %d entries of unknown kind(s) %s left in %s", self.name, len(unknown),
                          sorted({r[1] for r in unknown}), self.path)
                rows = [r for r in rows if r[1] in self._tags]
        return [Entry(r[0], r[1], r[2], r[3]) for r in rows], max_id

    def _move_aside(self, err: Exception) -> None:
        # Keep the unreadable file for inspection rather than crash-loop on it or delete it.
        assert self.path is not None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error("%s: %s is unreadable (%s); moved aside to %s and starting empty", self.name, self.path,
                  err, aside)
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            extra = self.path.with_name(self.path.name + suffix)
            if extra.exists():
                extra.rename(aside.with_name(aside.name + suffix))

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.5)
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA page_size=65536")  # only takes effect when the file is new
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so an acknowledged entry survives power loss.
            conn.execute("PRAGMA synchronous=FULL")
            self._upgrade_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _upgrade_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise FifoError(f"{self.path} has format {version}, newer than this gateway's "
                            f"{SCHEMA_VERSION} (downgrade is not supported)")
        conn.execute("BEGIN IMMEDIATE")
        try:
            carried = legacy.upgrade_export_spool_table(conn)
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if carried:
            log.info("%s: %d entries of the previous spool format kept in %s", self.name, carried, self.path)

    def _commit_sync(self, rows: list[tuple[int, str, int, bytes]], deletes: list[int]) -> None:
        conn = self._conn
        assert conn is not None
        now = time.time()
        compressed = self._compressor.multi_compress_to_buffer([r[3] for r in rows]) if rows else None
        statements: list[tuple[str, list[object]]] = []
        for start in range(0, len(deletes), _IDS_PER_DELETE):
            ids = deletes[start:start + _IDS_PER_DELETE]
            statements.append((f"DELETE FROM fifo WHERE id IN ({','.join('?' * len(ids))})", list(ids)))
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start:start + _ROWS_PER_INSERT]
            values: list[object] = []
            for offset, (entry_id, tag, count, payload) in enumerate(chunk, start):
                assert compressed is not None
                values += [entry_id, tag, count, len(payload), now, compressed[offset].tobytes()]
            placeholders = ",".join(["(?, ?, ?, ?, 'zstd', ?, ?)"] * len(chunk))
            statements.append(("INSERT INTO fifo (id, tag, item_count, size, codec, enqueued_at, payload) "
                               f"VALUES {placeholders}", values))
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

    def _load_sync(self, entry_id: int) -> bytes | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT codec, payload FROM fifo WHERE id = ?", (entry_id,)).fetchone()
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
