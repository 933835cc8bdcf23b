"""AnomalyWriter: batches the store rows detection produces without ever blocking or failing ingest.

Three kinds of rows take this one path: anomalies (one per anomalous window), incidents (upserted on every
change of one) and the streams' score buckets (cumulative, upserted). Each kind has its own idempotent
write (an anomaly's (stream, window) key, an incident's deterministic id with its forward-only upsert, a
bucket's cumulative values), so replaying a row is always harmless. A spooled entry holds rows of one
kind; its tag says which.

Rows wait in memory for at most ``flush_interval_seconds`` (or until a batch of ``batch_max_rows`` is
ready) and are written in one idempotent batch. When the store fails with a retryable error, the batch
goes to the anomaly spool, a ``DurableFifo`` under ``<data_dir>/anomaly-spool`` (one entry per batch,
its rows as JSON lines), and so does every later row while the spool is not empty, which keeps them in
order and memory bounded. So do rows beyond ``memory_max_rows`` when the store is slower than detection.
A ``RetryWorker`` drains the spool oldest first, backing off by ``store.retry`` while the store is down.
A row leaves memory only once the store confirmed it or the spool committed it, and leaves the spool only
once the store confirmed it: a crash in between replays it, and the (stream, window) key turns the replay
into a no-op, so nothing is lost and nothing is duplicated. Rows the database refuses permanently are
isolated one by one and appended to ``rejected.jsonl`` next to the spool (dead letters for an operator);
rows beyond the spool's bound (``spool_max_rows``) are refused. Both are counted and logged, never silent.

``submit`` is called on the event loop: the detection stage hands over each request's records there once
their shard threads have scored them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otlp_gateway.durable import DurableFifo, Entry, FifoError, RetryWorker
from otlp_gateway.durable.legacy import import_jsonl_segments
from otlp_gateway.errors import RetryableError
from otlp_gateway.store import codec
from otlp_gateway.store.base import AnomalyRecord, AnomalyStore, IncidentRecord, ScoreBucket
from otlp_gateway.store.errors import StoreUnavailableError
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL_SECONDS = 10.0
SPOOL_TAG = "anomalies"
SPOOL_FILE_NAME = "anomaly-spool.sqlite3"
REJECTED_FILE = "rejected.jsonl"
SPOOL_MEMORY_BYTES = 16 * 1024 * 1024
"""Spooled batches also kept in memory (uncompressed JSON); older ones are read back from disk."""

StoreRow = AnomalyRecord | IncidentRecord | ScoreBucket


@dataclass(frozen=True, slots=True)
class RowKind:
    """How one kind of row is written, spooled (as JSON lines under ``tag``) and described in logs."""

    tag: str
    table: str
    to_plain: Callable[[Any], dict[str, Any]]
    from_plain: Callable[[dict[str, Any]], Any]
    write: Callable[[AnomalyStore, list[Any]], Awaitable[int]]
    describe: Callable[[Any], str]


ANOMALIES = RowKind(SPOOL_TAG, "anomalies", codec.record_to_plain, codec.record_from_plain,
                    lambda store, rows: store.write_anomalies(rows),
                    lambda r: f"anomaly {r.id} (stream {r.stream_id}, window offset {r.window_start_offset})")
INCIDENTS = RowKind("incidents", "incidents", codec.incident_to_plain, codec.incident_from_plain,
                    lambda store, rows: store.upsert_incidents(rows),
                    lambda r: f"incident {r.id} (stream {r.stream_id}, {r.status})")
SCORES = RowKind("scores", "stream_scores", codec.score_to_plain, codec.score_from_plain,
                 lambda store, rows: store.write_scores(rows),
                 lambda b: f"score bucket {b.bucket_start.isoformat()} of stream {b.stream_id}")
KINDS: dict[type, RowKind] = {AnomalyRecord: ANOMALIES, IncidentRecord: INCIDENTS, ScoreBucket: SCORES}
KINDS_BY_TAG: dict[str, RowKind] = {kind.tag: kind for kind in KINDS.values()}


def kind_of(row: StoreRow) -> RowKind:
    return KINDS[type(row)]


def encode_rows(rows: Sequence[StoreRow]) -> bytes:
    """The spool's payload: one JSON object per line (rows of one kind)."""
    return b"".join(codec.dumps_json(kind_of(r).to_plain(r)).encode() + b"\n" for r in rows)


def decode_rows(payload: bytes, kind: RowKind = ANOMALIES) -> tuple[list[Any], list[tuple[bytes, str]]]:
    """Rows, and the lines that could not be decoded with the reason."""
    records: list[Any] = []
    bad: list[tuple[bytes, str]] = []
    for line in payload.splitlines():
        if not line:
            continue
        try:
            records.append(kind.from_plain(json.loads(line)))
        except (KeyError, TypeError, ValueError) as exc:
            bad.append((line, f"undecodable spool line: {type(exc).__name__}: {exc}"))
    return records, bad


def append_dead_letters(path: Path, letters: list[tuple[Any, str]]) -> None:
    """Append ``{"reason", "kind", "record"}`` lines (fsynced) to the dead-letter file."""
    with path.open("ab") as fh:
        for record, reason in letters:
            plain: Any
            if isinstance(record, bytes):
                kind, plain = "undecodable", record.decode("utf-8", "replace")
            else:
                kind, plain = kind_of(record).tag, kind_of(record).to_plain(record)
            fh.write(codec.dumps_json({"reason": reason, "kind": kind, "record": plain}).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def by_kind(rows: Sequence[StoreRow]) -> list[tuple[RowKind, list[StoreRow]]]:
    """Consecutive runs of one kind, in order (a spool entry holds one kind)."""
    runs: list[tuple[RowKind, list[StoreRow]]] = []
    for row in rows:
        kind = kind_of(row)
        if runs and runs[-1][0] is kind:
            runs[-1][1].append(row)
        else:
            runs.append((kind, [row]))
    return runs


class AnomalyWriter:
    def __init__(self, store: AnomalyStore, spool_dir: Path, settings: StoreSettings,
                 metrics: GatewayMetrics, *, memory_max_rows: int | None = None):
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._batch = settings.batch_max_rows
        self._interval = settings.flush_interval_seconds
        self._memory_max = memory_max_rows or 20 * settings.batch_max_rows
        self.spool_dir = Path(spool_dir)
        self._spool = DurableFifo(self.spool_dir / SPOOL_FILE_NAME, name="anomaly-spool",
                                  tags=set(KINDS_BY_TAG), memory_bytes=SPOOL_MEMORY_BYTES,
                                  on_change=self._on_spool_change)
        self._drain = RetryWorker(self._spool, self._write_spooled, settings.retry,
                                  name="anomaly-spool-drain", on_drop=self._on_drain_gave_up)
        self._queue: list[StoreRow] = []
        self._queued_since = 0.0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flush_requested = False
        self._store_down = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._refused_unlogged = 0
        self._refusal_logged_at = -REFUSAL_LOG_INTERVAL_SECONDS
        self._lag_logged_at = -REFUSAL_LOG_INTERVAL_SECONDS

    # --- public API

    async def start(self) -> None:
        """Open the spool (rows left by a previous run, in either format, are drained first) and start
        the writer task and the spool's drain."""
        if self._task is not None or self._closed:
            return
        await self._open_spool()
        self._drain.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="anomaly-writer")

    def submit(self, rows: Sequence[StoreRow]) -> None:
        """Queue rows (anomalies, incidents, score buckets) for writing. O(1), never blocks, never raises."""
        if not rows:
            return
        if self._closed:
            self._refuse(len(rows), "the anomaly writer is shut down")
            return
        was_empty = not self._queue
        if was_empty:
            self._queued_since = time.monotonic()
        self._queue.extend(rows)
        self._idle.clear()
        # Wake the loop on a full batch, and on the first row after idling so it arms the flush timer
        # (an idle loop waits without a timeout).
        if was_empty or len(self._queue) >= self._batch:
            self._wake.set()

    @property
    def pending_rows(self) -> int:
        """Rows not yet confirmed by the store (memory plus spool)."""
        return len(self._queue) + self._spool.pending_items

    async def flush(self, timeout: float) -> bool:
        """Try to write everything pending now; True when nothing is left within ``timeout`` seconds."""
        if self._task is None:
            return self.pending_rows == 0
        self._flush_requested = True
        self._drain.poke()  # an explicit flush retries a down store at once
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def shutdown(self, grace: float = 5.0) -> None:
        """Flush for at most ``grace`` seconds, then spool whatever is left. Idempotent; safe unstarted."""
        if self._closed:
            return
        if self._task is None:
            self._closed = True
            if self._queue:  # never started: keep the rows for the next run
                await self._open_spool()
                await self._spill(len(self._queue))
            await self._spool.close()
            return
        if grace > 0:
            await self.flush(grace)
        self._closed = True
        task, self._task = self._task, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self._drain.stop()
        if self._background:
            await asyncio.wait(self._background)
        if self._queue:
            await self._spill(len(self._queue))
        if self._spool.pending_items:
            log.warning("anomaly writer stopped with %d rows in the spool %s (written on next start)",
                        self._spool.pending_items, self.spool_dir)
        await self._spool.close()

    # --- the writer task: rows from memory

    async def _run(self) -> None:
        while True:
            timeout = self._next_wake()
            if timeout is None or timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a defect: keep the rows, try again on the next flush interval
                log.exception("anomaly writer step failed; the rows stay queued")
                await asyncio.sleep(self._interval)
            self._update_idle()

    def _next_wake(self) -> float | None:
        """Seconds until the queued rows are due (0: now; None: only when woken)."""
        if not self._queue:
            return None
        if self._flush_requested or len(self._queue) >= self._batch:
            return 0.0
        return max(self._queued_since + self._interval - time.monotonic(), 0.0)

    async def _step(self) -> None:
        if len(self._queue) > self._memory_max:
            # The store is slower than detection: bound memory, the disk spool absorbs the rest in order.
            now = time.monotonic()
            if now - self._lag_logged_at >= REFUSAL_LOG_INTERVAL_SECONDS:
                log.warning("anomaly store lags behind: %d rows queued (bound %d); spilling to %s",
                            len(self._queue), self._memory_max, self.spool_dir)
                self._lag_logged_at = now
            await self._spill(len(self._queue))
        if self._queue and self._next_wake() == 0.0:
            if self._spool.pending_entries:
                # Older rows wait on disk (the store is down or catching up): keep order, memory bounded.
                await self._spill(len(self._queue))
            else:
                await self._write_from_memory()
        if not self._queue:
            self._flush_requested = False

    async def _write_from_memory(self) -> None:
        n = min(len(self._queue), self._batch)
        batch = self._queue[:n]  # rows leave memory only once confirmed or spooled (cancellation-safe)
        try:
            # one write per kind; when a later one fails the whole batch is spooled (replays are harmless)
            written = [(kind, await kind.write(self._store, rows)) for kind, rows in _grouped(batch)]
        except RetryableError as exc:
            self._write_failed(exc)
            await self._spill(n)
            return
        except Exception as exc:
            self._write_failed(exc)
            leftover = await self._isolate(batch)
            del self._queue[:n]
            if leftover:
                await self._append_to_spool(leftover)
            return
        del self._queue[:n]
        if self._queue:
            self._queued_since = time.monotonic()
        for kind, count in written:
            self._written(kind, count)
        self._mark_up()

    # --- the spool's drain (a RetryWorker calls this, with backoff between retryable failures)

    async def _write_spooled(self, entry: Entry) -> None:
        assert entry.payload is not None
        kind = KINDS_BY_TAG[entry.tag]
        rows, bad = await asyncio.to_thread(decode_rows, entry.payload, kind)
        if bad:
            log.error("anomaly spool: %d undecodable line(s) in entry %d; kept in %s", len(bad), entry.id,
                      REJECTED_FILE)
            self._metrics.store_rejected.inc(len(bad))
            await asyncio.to_thread(append_dead_letters, self.spool_dir / REJECTED_FILE, bad)
        try:
            written = await kind.write(self._store, rows) if rows else 0
        except RetryableError as exc:
            self._write_failed(exc)
            raise
        except Exception as exc:
            self._write_failed(exc)
            leftover = await self._isolate(rows)
            if leftover:  # the store went away while isolating: the rest goes back to the spool
                await self._append_to_spool(leftover, strict=True)
            return
        self._written(kind, written)
        self._mark_up()

    def _on_drain_gave_up(self, entry: Entry, reason: str, err: BaseException) -> None:
        # Only with store.retry.max_elapsed_seconds set: keep the rows for an operator rather than lose them.
        reason_text = f"{reason}: {type(err).__name__}: {err}"
        log.error("anomaly spool: gave up writing %d rows (%s); kept in %s", entry.count, reason_text,
                  REJECTED_FILE)
        self._metrics.store_rejected.inc(entry.count)
        rows, bad = decode_rows(entry.payload or b"", KINDS_BY_TAG[entry.tag])
        letters: list[tuple[Any, str]] = [(r, reason_text) for r in rows] + bad
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(append_dead_letters, self.spool_dir / REJECTED_FILE, letters))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _isolate(self, rows: list[StoreRow]) -> list[StoreRow]:
        """Write rows one by one after a batch failed permanently; keep the refused ones as dead letters.

        Returns the rows not yet handled because the store became unavailable meanwhile.
        """
        for i, row in enumerate(rows):
            kind = kind_of(row)
            try:
                self._written(kind, await kind.write(self._store, [row]))
            except RetryableError as exc:
                self._write_failed(exc)
                return rows[i:]
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("store refused %s: %s; kept in %s", kind.describe(row), reason, self.spool_dir)
                self._metrics.store_rejected.inc()
                await asyncio.to_thread(append_dead_letters, self.spool_dir / REJECTED_FILE, [(row, reason)])
        return []

    # --- helpers

    async def _open_spool(self) -> None:
        await self._spool.open()
        await import_jsonl_segments(self.spool_dir, self._spool, SPOOL_TAG)
        self._on_spool_change()

    async def _spill(self, n: int) -> None:
        """Move the first ``n`` queued rows to the disk spool."""
        rows = self._queue[:n]
        await self._append_to_spool(rows)
        del self._queue[:n]
        if self._queue:
            self._queued_since = time.monotonic()

    async def _append_to_spool(self, rows: list[StoreRow], *, strict: bool = False) -> None:
        """Spool as many rows as the bound allows, one entry per batch and kind; refuse (count) the rest.
        ``strict``: raise instead of refusing when the spool cannot take them (the caller retries)."""
        room = max(self._settings.spool_max_rows - self._spool.pending_items, 0)
        if strict:
            room = len(rows)
        taken = 0
        failed = False
        for start in range(0, min(room, len(rows)), self._batch):
            for kind, chunk in by_kind(rows[start:min(start + self._batch, room)]):
                payload = await asyncio.to_thread(encode_rows, chunk)
                try:
                    await self._spool.append(kind.tag, payload, len(chunk))
                except FifoError as exc:
                    if strict:
                        raise StoreUnavailableError(f"rows could not go back to the spool: {exc}") from exc
                    log.error("anomaly spool %s cannot be written: %s", self.spool_dir, exc)
                    failed = True
                    break
                taken += len(chunk)
            if failed:
                break
        if taken < len(rows):
            self._refuse(len(rows) - taken,
                         f"the anomaly spool is full ({self._settings.spool_max_rows} rows) or unwritable")

    def _refuse(self, n: int, why: str) -> None:
        self._metrics.store_spool_refused.inc(n)
        self._refused_unlogged += n
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL_SECONDS:
            log.error("refused %d anomaly rows: %s", self._refused_unlogged, why)
            self._refused_unlogged = 0
            self._refusal_logged_at = now

    def _written(self, kind: RowKind, n: int) -> None:
        if not n:
            return
        if kind is ANOMALIES:
            self._metrics.store_written.labels(self._store.backend).inc(n)
        else:
            self._metrics.store_rows_written.labels(self._store.backend, kind.table).inc(n)

    def _write_failed(self, exc: BaseException) -> None:
        self._metrics.store_write_failures.inc()
        if not self._store_down:  # log the transition, not every retry
            self._store_down = True
            log.warning("anomaly store write failed (%s: %s); spooling to %s", type(exc).__name__, exc,
                        self.spool_dir)

    def _mark_up(self) -> None:
        if self._store_down:
            self._store_down = False
            log.info("anomaly store reachable again; %d rows left in the spool", self._spool.pending_items)

    def _on_spool_change(self) -> None:
        self._metrics.store_spooled.set(self._spool.pending_items)
        self._update_idle()

    def _update_idle(self) -> None:
        if not self._queue and not self._spool.pending_entries:
            self._idle.set()
        else:
            self._idle.clear()


def _grouped(rows: Sequence[StoreRow]) -> list[tuple[RowKind, list[StoreRow]]]:
    """The rows of each kind, kinds in order of first appearance (one batch write per kind)."""
    groups: dict[str, tuple[RowKind, list[StoreRow]]] = {}
    for row in rows:
        kind = kind_of(row)
        groups.setdefault(kind.tag, (kind, []))[1].append(row)
    return list(groups.values())
