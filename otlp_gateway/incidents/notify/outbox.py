"""One receiver's outbox: notifications committed to disk in order, delivered oldest first with retries.

``put`` never blocks the caller (the event loop): payloads go through an in-memory queue to one task that
appends them to the ``DurableFifo`` in order; a ``RetryWorker`` delivers each entry until the receiver
takes it (or refuses it for good: counted and logged). Beyond ``outbox_max_entries`` new notifications are
refused, counted and logged, never dropped silently. Entries left at shutdown are delivered after the next
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from otlp_gateway.durable import DurableFifo, Entry, FifoError, RetrySettings, RetryWorker
from otlp_gateway.errors import RetryableError
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL_SECONDS = 60.0


class Outbox:
    def __init__(self, path: Path, receiver: str, deliver: Callable[[bytes], Awaitable[None]],
                 retry: RetrySettings, max_entries: int, metrics: GatewayMetrics):
        self.receiver = receiver
        self._deliver = deliver
        self._max = max_entries
        self._metrics = metrics
        self._fifo = DurableFifo(path, name=f"notify-{receiver}", tags={receiver},
                                 on_change=self._on_change)
        self._worker = RetryWorker(self._fifo, self._send, retry, name=f"notify-{receiver}",
                                   on_retry=self._on_retry, on_drop=self._on_drop)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._failing = False
        self._refusals_logged_at = -REFUSAL_LOG_INTERVAL_SECONDS
        self._closed = False

    @property
    def pending(self) -> int:
        """Notifications not yet delivered (queued in memory or on disk)."""
        return self._queue.qsize() + self._fifo.pending_entries

    async def start(self) -> None:
        recovered = await self._fifo.open()
        if recovered:
            log.info("notify %s: %d notifications from the previous run are delivered first", self.receiver,
                     recovered)
        self._worker.start()
        self._pump = asyncio.get_running_loop().create_task(self._run_pump(), name=f"notify-{self.receiver}")

    def put(self, payload: bytes) -> bool:
        """Queue one notification; False (counted, logged) when the outbox is full or shut down."""
        if self._closed or self.pending >= self._max:
            self._refuse("the outbox is full" if not self._closed else "the notifier is shut down")
            return False
        self._queue.put_nowait(payload)
        self._on_change()
        return True

    async def wait_idle(self, timeout: float) -> bool:
        """True once every queued notification was delivered or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def shutdown(self, grace: float) -> None:
        """Deliver for at most ``grace`` seconds; what is left stays on disk for the next start."""
        if self._closed:
            return
        self._closed = True
        if grace > 0:
            self._worker.poke()
            await self.wait_idle(grace)
        if self._pump is not None:
            await self._flush_queue()
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self._worker.stop()
        if self._fifo.pending_entries:
            log.warning("notify %s: %d notifications kept on disk for the next start", self.receiver,
                        self._fifo.pending_entries)
        await self._fifo.close()

    # --- internals
    async def _run_pump(self) -> None:
        while True:
            payload = await self._queue.get()
            await self._append(payload)
            self._queue.task_done()

    async def _flush_queue(self) -> None:
        """Let the pump commit what waits in memory."""
        if self._pump is not None and not self._pump.done():
            await self._queue.join()

    async def _append(self, payload: bytes) -> None:
        try:
            await self._fifo.append(self.receiver, payload, 1)
        except FifoError as exc:
            log.error("notify %s: a notification could not be written to its outbox (%s)", self.receiver, exc)
            self._metrics.notifications_failed.labels(self.receiver, "outbox_unwritable").inc()

    async def _send(self, entry: Entry) -> None:
        assert entry.payload is not None
        await self._deliver(entry.payload)
        self._metrics.notifications_sent.labels(self.receiver).inc()
        if self._failing:
            self._failing = False
            log.info("notify %s: the receiver takes notifications again (%d waiting)", self.receiver,
                     self.pending - 1)

    def _on_retry(self, entry: Entry, err: RetryableError, delay: float) -> None:
        self._metrics.notifications_retried.labels(self.receiver).inc()
        if not self._failing:  # the transition, not every retry
            self._failing = True
            log.warning("notify %s: delivery failed (%s); retrying, notifications wait in the outbox",
                        self.receiver, err)

    def _on_drop(self, entry: Entry, reason: str, err: BaseException) -> None:
        self._metrics.notifications_failed.labels(self.receiver, reason).inc()
        log.error("notify %s: notification given up (%s): %s", self.receiver, reason, err)

    def _refuse(self, why: str) -> None:
        self._metrics.notifications_failed.labels(self.receiver, "outbox_full").inc()
        now = time.monotonic()
        if now - self._refusals_logged_at >= REFUSAL_LOG_INTERVAL_SECONDS:
            self._refusals_logged_at = now
            log.error("notify %s: notification refused: %s (%d waiting; receiver unreachable?)",
                      self.receiver, why, self.pending)

    def _on_change(self) -> None:
        self._metrics.notify_outbox.labels(self.receiver).set(self.pending)
