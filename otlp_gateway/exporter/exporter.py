"""The downstream exporter: bounded (optionally persistent) queue, concurrent senders, retries.

``consume()`` is the pipeline's last ``BatchConsumer``: it returns once the request is durably queued
(committed to the spool when persistent), so what a client got an OK for survives an outage and a
restart. Senders (a ``RetryWorker`` over the queue's FIFO) deliver at-least-once: a request is deleted
from the spool only after the downstream accepted it or it failed permanently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import cast

from otlp_gateway.batch import Signal, TelemetryBatch
from otlp_gateway.durable import DataDirBudget, Entry, RetryWorker
from otlp_gateway.errors import OverloadedError, RetryableError
from otlp_gateway.exporter.endpoint import Route, resolve_routes
from otlp_gateway.exporter.queue import QUEUE_FULL_RETRY_AFTER_SECONDS, ExportQueue, signal_of
from otlp_gateway.exporter.settings import ExporterSettings
from otlp_gateway.exporter.transport import SignalRouter, Transport
from otlp_gateway.otlp.signals import ExportOutcome
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

SPOOL_SUBDIR = "export-spool"


class Exporter:
    """Forwards accepted telemetry downstream over OTLP (gRPC or http/protobuf).

    Lifecycle: ``start()`` opens the spool, re-queues what a previous run left and starts the senders;
    ``shutdown(grace)`` refuses new requests, delivers what it can within ``grace`` seconds, and leaves
    the rest in the spool (a memory-only queue counts it as failed with reason ``shutdown``).
    Idempotent, and safe without ``start()``. With a ``budget``, ingest is refused while the data dir is
    at its size budget (also in detection-only mode: the store's rows land in the data dir too).
    """

    def __init__(self, settings: ExporterSettings, data_dir: Path, metrics: GatewayMetrics,
                 budget: DataDirBudget | None = None):
        self._settings = settings
        self._metrics = metrics
        self._budget = budget
        self._routes: dict[Signal, Route] = resolve_routes(settings)
        spool_dir = Path(data_dir) / SPOOL_SUBDIR if settings.queue.persistent else None
        self._queue = ExportQueue(settings.queue, spool_dir, metrics) if self.enabled else None
        self._transport: Transport | None = None
        self._senders: RetryWorker | None = None
        self._started = False
        self._closed = False
        self._downstream_failing = False
        self._held_requests = 0
        self._held_bytes = 0
        """Places held by reservations (``reserve``): counted as taken by every capacity check."""
        self.discarded_items = 0
        """Items of signals with no endpoint (detection only): counted, never forwarded."""

    @property
    def enabled(self) -> bool:
        return bool(self._routes)

    @property
    def queue(self) -> ExportQueue | None:
        return self._queue

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        if not self._routes or self._queue is None:
            log.info("exporter: no endpoint configured; telemetry is consumed for detection only and "
                     "not forwarded")
            return
        recovered = await self._queue.open()
        self._transport = SignalRouter(self._routes)
        q = self._settings.queue
        log.info("exporter: forwarding %s, %d concurrent senders, queue %d requests, %s%s",
                 self._describe_routes(), q.consumers, q.capacity_requests,
                 f"persistent spool ({q.spool_max_bytes} bytes max)" if q.persistent else "in memory only",
                 f"; {recovered} requests recovered from the spool" if recovered else "")
        self._senders = RetryWorker(self._queue.fifo, self._send, self._settings.retry,
                                    name="exporter-sender", concurrency=q.consumers,
                                    on_retry=self._on_retry, on_drop=self._drop)
        self._senders.start()

    async def shutdown(self, grace: float = 0.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self._queue is None:
            return
        if self._senders is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.fifo.wait_idle(), timeout=max(grace, 0.0))
            await self._senders.stop()  # a request cut off mid-delivery stays in the spool
            self._senders = None
        self._account_unfinished()
        await self._queue.close()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    def _account_unfinished(self) -> None:
        assert self._queue is not None
        left = self._queue.fifo.unfinished()
        if not left:
            return
        if self._queue.persistent:
            log.info("exporter: %d undelivered requests stay in the spool for the next start", len(left))
            return
        for entry in left:
            self._metrics.exporter_send_failed[signal_of(entry)].labels("shutdown").inc(entry.count)
        log.warning("exporter: shutdown with a memory-only queue dropped %d undelivered requests (%d items)",
                    len(left), sum(e.count for e in left))

    # ---- BatchConsumer ---------------------------------------------------------------------------
    def reserve(self, batch: TelemetryBatch) -> ExportReservation:
        """Hold a place in the queue for ``batch`` (``ReservingConsumer``), or raise ``OverloadedError``
        (counted as enqueue_failed) when ``consume`` would refuse it now. Detection reserves before
        scoring, so a request the client must retry is never scored twice; a held place counts as taken
        for every other request until the reservation is consumed or released."""
        self._check_room(batch)
        size = len(batch.payload)
        self._held_requests += 1
        self._held_bytes += size
        return ExportReservation(self, size)

    async def consume(self, batch: TelemetryBatch) -> None:
        self._check_room(batch)
        await self._enqueue(batch, checked=False)

    def _check_room(self, batch: TelemetryBatch, *, held: bool = False) -> None:
        """Raise ``OverloadedError`` (counted as enqueue_failed) when ``batch`` cannot be queued now: the
        data dir at its budget, shutting down, or the queue full with the places held by reservations
        counted as taken (``held``: ``batch`` already holds one)."""
        try:
            if self._budget is not None:
                self._budget.check()
            if self._queue is None or batch.signal not in self._routes:
                return
            if self._closed or not self._started:
                state = "shutting down" if self._closed else "not started yet"
                raise OverloadedError(f"exporter is {state}", retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS)
            if not held:
                self._queue.check_capacity(len(batch.payload), self._held_requests, self._held_bytes)
        except OverloadedError:
            self._metrics.exporter_enqueue_failed[batch.signal].inc(batch.item_count)
            raise

    async def _enqueue(self, batch: TelemetryBatch, *, checked: bool) -> None:
        """``checked``: a reservation held the place, so the queue's capacity check is not repeated."""
        if self._queue is None or batch.signal not in self._routes:
            self.discarded_items += batch.item_count
            self._metrics.exporter_discarded.labels(batch.signal).inc(batch.item_count)
            return
        try:
            await self._queue.put(batch, check=not checked)
        except OverloadedError:
            self._metrics.exporter_enqueue_failed[batch.signal].inc(batch.item_count)
            raise

    def _unhold(self, size: int) -> None:
        self._held_requests -= 1
        self._held_bytes -= size

    # ---- senders ---------------------------------------------------------------------------------
    async def _send(self, entry: Entry) -> None:
        """One attempt; the ``RetryWorker`` retries ``RetryableError`` and drops ``PermanentError``."""
        assert self._transport is not None and entry.payload is not None
        outcome = await self._transport.send(signal_of(entry), entry.payload)
        self._delivered(entry, outcome)

    def _on_retry(self, entry: Entry, err: RetryableError, delay: float) -> None:
        self._note_failing(signal_of(entry), str(err))
        self._metrics.exporter_retries.labels(entry.tag).inc()
        log.debug("exporter: %s request (%d items) failed (%s); retrying in %.3fs",
                  entry.tag, entry.count, err, delay)

    def _delivered(self, entry: Entry, outcome: ExportOutcome) -> None:
        if self._downstream_failing:
            self._downstream_failing = False
            log.info("exporter: downstream %s accepts requests again", self._describe(signal_of(entry)))
        accepted = entry.count
        if outcome.rejected or outcome.message:
            rejected = min(outcome.rejected, entry.count)
            accepted -= rejected
            self._metrics.exporter_partial_rejected.labels(entry.tag).inc(rejected)
            log.warning("exporter: downstream rejected %d of %d %s in a request (partial success): %s",
                        rejected, entry.count, entry.tag, outcome.message or "no message")
        self._metrics.exporter_sent[signal_of(entry)].inc(accepted)

    def _drop(self, entry: Entry, reason: str, err: BaseException) -> None:
        if isinstance(err, RetryableError):
            self._note_failing(signal_of(entry), str(err))
        self._metrics.exporter_send_failed[signal_of(entry)].labels(reason).inc(entry.count)
        log.error("exporter: dropped a %s request of %d items (%s): %s", entry.tag, entry.count, reason,
                  err if reason != "internal" else repr(err))

    def _note_failing(self, signal: str, detail: str) -> None:
        # One warning per outage, not one per attempt: with several senders retrying it would flood.
        if not self._downstream_failing:
            self._downstream_failing = True
            log.warning("exporter: downstream %s failing (%s); retrying with backoff",
                        self._describe(signal), detail)

    def _describe(self, signal: str) -> str:
        route = self._routes.get(cast(Signal, signal))
        return route.endpoint.describe() if route else "(none)"

    def _describe_routes(self) -> str:
        """``traces, metrics, logs to grpc://collector:4317 (grpc)``; per-signal routes listed apart."""
        groups: dict[str, list[str]] = {}
        for signal, route in self._routes.items():
            groups.setdefault(route.endpoint.describe(), []).append(signal)
        parts = [f"{', '.join(signals)} to {where}" for where, signals in groups.items()]
        unrouted = [s for s in ("traces", "metrics", "logs") if s not in self._routes]
        if unrouted:
            parts.append(f"{', '.join(unrouted)} for detection only")
        return "; ".join(parts)


class ExportReservation:
    """A place in the export queue held for one request (``Exporter.reserve``)."""

    def __init__(self, exporter: Exporter, size: int):
        self._exporter = exporter
        self._size = size
        self._held = True

    async def consume(self, batch: TelemetryBatch) -> None:
        """Queue ``batch`` in the held place (annotations may have made it a little larger)."""
        if not self._held:
            raise RuntimeError("this reservation was already consumed or released")
        self.release()  # the place is handed straight to the queue: nothing runs in between
        self._exporter._check_room(batch, held=True)
        await self._exporter._enqueue(batch, checked=True)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._exporter._unhold(self._size)
