"""AnomalyWriter: batches anomaly rows into the store without ever blocking or failing ingest.

Rows wait in memory for at most ``flush_interval_seconds`` (or until a batch of ``batch_max_rows`` is
ready) and are written in one idempotent batch. When the store fails with a retryable error the batch,
and every row after it, goes to a bounded disk spool; the spool is drained oldest first, with
exponential backoff between attempts, once the store answers again. A row leaves memory or the spool
only after the store confirmed it (a crash in between replays it, and the (stream, window) key turns the
replay into a no-op), so nothing is lost and nothing is duplicated. Rows the database refuses
permanently are isolated one by one and kept in the spool's ``rejected.jsonl``; rows beyond the spool
bound are refused. Both are counted and logged, never silent.

Call ``submit`` from the event loop's thread (detector threads hand results back with
``loop.call_soon_threadsafe(writer.submit, rows)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from otlp_gateway.errors import RetryableError
from otlp_gateway.store.base import AnomalyRecord, AnomalyStore
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.spool import AnomalySpool
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

REFUSAL_LOG_INTERVAL_SECONDS = 10.0


class AnomalyWriter:
    def __init__(self, store: AnomalyStore, spool_dir: Path, settings: StoreSettings,
                 metrics: GatewayMetrics, *, retry_initial_seconds: float = 0.5,
                 retry_max_seconds: float = 15.0, memory_max_rows: int | None = None):
        self._store = store
        self._metrics = metrics
        self._batch = settings.batch_max_rows
        self._interval = settings.flush_interval_seconds
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._memory_max = memory_max_rows or 20 * settings.batch_max_rows
        self._spool = AnomalySpool(spool_dir, settings.spool_max_rows, settings.batch_max_rows)
        self._queue: list[AnomalyRecord] = []
        self._queued_since = 0.0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flush_requested = False
        self._retry_at = 0.0
        """Monotonic time before which the store is considered down (0: up)."""
        self._backoff = retry_initial_seconds
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._refused_unlogged = 0
        self._refusal_logged_at = -REFUSAL_LOG_INTERVAL_SECONDS
        self._lag_logged_at = -REFUSAL_LOG_INTERVAL_SECONDS

    # --- public API

    async def start(self) -> None:
        """Open the spool (rows left by a previous run are drained first) and start the writer task."""
        if self._task is not None or self._closed:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anomaly-spool")
        await self._in_spool_thread(self._spool.open)
        self._publish_spool_size()
        self._update_idle()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="anomaly-writer")

    def submit(self, rows: list[AnomalyRecord]) -> None:
        """Queue rows for writing. O(1), never blocks, never raises."""
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
        return len(self._queue) + self._spool.rows

    async def flush(self, timeout: float) -> bool:
        """Try to write everything pending now; True when nothing is left within ``timeout`` seconds."""
        if self._task is None:
            return self.pending_rows == 0
        self._flush_requested = True
        self._retry_at = 0.0  # an explicit flush retries a down store at once
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
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anomaly-spool")
                await self._in_spool_thread(self._spool.open)
                await self._spill(len(self._queue))
                await self._close_spool()
            return
        if grace > 0:
            await self.flush(grace)
        self._closed = True
        task, self._task = self._task, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._queue:
            await self._spill(len(self._queue))
        if self._spool.rows:
            log.warning("anomaly writer stopped with %d rows in the spool %s (written on next start)",
                        self._spool.rows, self._spool.directory)
        await self._close_spool()

    # --- the writer task

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
            except Exception:
                log.exception("anomaly writer step failed; retrying after backoff")
                self._mark_down()
            self._update_idle()

    def _next_wake(self) -> float | None:
        """Seconds until there is work (0: now; None: only when woken)."""
        now = time.monotonic()
        waits: list[float] = []
        if self._queue:
            due = self._flush_requested or len(self._queue) >= self._batch
            waits.append(0.0 if due else self._queued_since + self._interval - now)
        if self._spool.rows:
            waits.append(self._retry_at - now)
        return max(min(waits), 0.0) if waits else None

    async def _step(self) -> None:
        if len(self._queue) > self._memory_max:
            # The store is slower than detection: bound memory, the disk spool absorbs the rest in order.
            now = time.monotonic()
            if now - self._lag_logged_at >= REFUSAL_LOG_INTERVAL_SECONDS:
                log.warning("anomaly store lags behind: %d rows queued (bound %d); spilling to %s",
                            len(self._queue), self._memory_max, self._spool.directory)
                self._lag_logged_at = now
            await self._spill(len(self._queue))
        now = time.monotonic()
        if self._queue and (self._flush_requested or len(self._queue) >= self._batch
                            or now >= self._queued_since + self._interval):
            if self._spool.rows or now < self._retry_at:
                # The store is down, or older rows wait on disk: keep order, keep memory bounded.
                await self._spill(len(self._queue))
            else:
                await self._write_from_memory()
        if self._spool.rows and time.monotonic() >= self._retry_at:
            await self._drain_one_segment()
        if not self._queue:
            self._flush_requested = False

    async def _write_from_memory(self) -> None:
        n = min(len(self._queue), self._batch)
        batch = self._queue[:n]  # rows leave memory only once confirmed or spooled (cancellation-safe)
        try:
            written = await self._store.write_anomalies(batch)
        except RetryableError as exc:
            self._write_failed(exc)
            self._mark_down()
            await self._spill(n)
            return
        except Exception as exc:
            self._write_failed(exc)
            leftover = await self._isolate(batch)
            del self._queue[:n]
            if leftover:
                await self._append_to_spool(leftover)
            self._mark_up()
            return
        del self._queue[:n]
        if self._queue:
            self._queued_since = time.monotonic()
        self._written(written)
        self._mark_up()

    async def _drain_one_segment(self) -> None:
        found = await self._in_spool_thread(self._spool.oldest)
        if found is None:
            return
        segment, rows = found
        try:
            written = await self._store.write_anomalies(rows) if rows else 0
        except RetryableError as exc:
            self._write_failed(exc)
            self._mark_down()
            return
        except Exception as exc:
            self._write_failed(exc)
            if await self._isolate(rows):
                self._mark_down()  # the store went away while isolating: retry the segment later
                return
            written = 0
        await self._in_spool_thread(self._spool.remove, segment)
        self._publish_spool_size()
        self._written(written)
        self._mark_up()

    async def _isolate(self, rows: list[AnomalyRecord]) -> list[AnomalyRecord]:
        """Write rows one by one after a batch failed permanently; keep the refused ones as dead letters.

        Returns the rows not yet handled because the store became unavailable meanwhile.
        """
        for i, row in enumerate(rows):
            try:
                self._written(await self._store.write_anomalies([row]))
            except RetryableError as exc:
                self._write_failed(exc)
                return rows[i:]
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("store refused anomaly %s (stream %s, window offset %d): %s; kept in %s",
                          row.id, row.stream_id, row.window_start_offset, reason, self._spool.directory)
                self._metrics.store_rejected.inc()
                await self._in_spool_thread(self._spool.reject, [row], reason)
        return []

    # --- helpers

    async def _spill(self, n: int) -> None:
        """Move the first ``n`` queued rows to the disk spool."""
        rows = self._queue[:n]
        await self._append_to_spool(rows)
        del self._queue[:n]
        if self._queue:
            self._queued_since = time.monotonic()

    async def _append_to_spool(self, rows: list[AnomalyRecord]) -> None:
        try:
            taken = await self._in_spool_thread(self._spool.append, rows)
        except OSError as exc:
            log.error("anomaly spool %s cannot be written: %s", self._spool.directory, exc)
            taken = 0
        self._publish_spool_size()
        if taken < len(rows):
            self._refuse(len(rows) - taken, f"the anomaly spool is full ({self._spool.max_rows} rows)")

    def _refuse(self, n: int, why: str) -> None:
        self._metrics.store_spool_refused.inc(n)
        self._refused_unlogged += n
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL_SECONDS:
            log.error("refused %d anomaly rows: %s", self._refused_unlogged, why)
            self._refused_unlogged = 0
            self._refusal_logged_at = now

    def _written(self, n: int) -> None:
        if n:
            self._metrics.store_written.labels(self._store.backend).inc(n)

    def _write_failed(self, exc: BaseException) -> None:
        self._metrics.store_write_failures.inc()
        if self._retry_at == 0.0:  # log the transition, not every retry
            log.warning("anomaly store write failed (%s: %s); spooling to %s", type(exc).__name__, exc,
                        self._spool.directory)

    def _mark_down(self) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._retry_max)

    def _mark_up(self) -> None:
        if self._retry_at:
            log.info("anomaly store reachable again; %d rows left in the spool", self._spool.rows)
        self._retry_at = 0.0
        self._backoff = self._retry_initial

    def _update_idle(self) -> None:
        if not self._queue and not self._spool.rows:
            self._idle.set()
        else:
            self._idle.clear()

    def _publish_spool_size(self) -> None:
        self._metrics.store_spooled.set(self._spool.rows)

    async def _in_spool_thread(self, fn: Any, *args: Any) -> Any:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _close_spool(self) -> None:
        if self._executor is not None:
            await self._in_spool_thread(self._spool.close)
            self._executor.shutdown(wait=True)
            self._executor = None
        self._publish_spool_size()
