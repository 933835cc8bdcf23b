"""The bounded export queue: accounting, the optional disk spool, and hand-out to the senders.

Bounds count everything not yet finished (queued, being committed, in flight):
``capacity_requests`` always; bytes up to ``capacity_bytes`` in memory mode, or ``spool_max_bytes``
with the persistent spool, where ``capacity_bytes`` instead caps the payloads also kept in memory (the
rest are read back from disk when their turn comes, so a large spool replay does not fill RAM).
Byte figures are uncompressed payload sizes (the spool file holds them zstd-compressed, so it is
smaller). Rows recovered at start are always taken, even past the bounds: they were acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from otlp_gateway.batch import Signal, TelemetryBatch
from otlp_gateway.errors import OverloadedError
from otlp_gateway.exporter.settings import QueueSettings
from otlp_gateway.exporter.spool import Spool, SpoolError, SpoolRecord
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

QUEUE_FULL_RETRY_AFTER_SECONDS = 1.0
"""Hint given to clients refused because the queue is full (receiver maps it to RetryInfo/Retry-After)."""


@dataclass(slots=True)
class QueuedRequest:
    signal: Signal
    item_count: int
    size: int
    payload: bytes | None
    """``None`` while the bytes live only in the spool."""
    spool_id: int | None = None


class ExportQueue:
    def __init__(self, settings: QueueSettings, spool_dir: Path | None, metrics: GatewayMetrics):
        self._metrics = metrics
        self._cap_requests = settings.capacity_requests
        self._cap_bytes = settings.spool_max_bytes if spool_dir is not None else settings.capacity_bytes
        self._memory_budget = settings.capacity_bytes
        self._spool = (Spool(spool_dir, self._on_durable, self._on_spool_failed)
                       if spool_dir is not None else None)
        self._ready: deque[QueuedRequest] = deque()
        self._in_flight_items: dict[int, QueuedRequest] = {}
        self._nonempty = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.pending_requests = 0
        self.pending_bytes = 0
        self._memory_bytes = 0
        metrics.exporter_queue_capacity.set(self._cap_requests)
        self._publish()

    @property
    def persistent(self) -> bool:
        return self._spool is not None

    @property
    def spool(self) -> Spool | None:
        return self._spool

    async def open(self) -> int:
        """Load what a previous run left in the spool; returns the number of requests recovered."""
        if self._spool is None:
            return 0
        records = await self._spool.open()
        for r in records:
            self._reserve(r.size)
            self._push(QueuedRequest(r.signal, r.item_count, r.size, None, r.id))
        return len(records)

    async def close(self) -> None:
        if self._spool is not None:
            await self._spool.close()

    # ---- producer side ---------------------------------------------------------------------------
    def check_capacity(self, size: int) -> None:
        """Raise ``OverloadedError`` when a request of ``size`` bytes would be refused right now."""
        if self.pending_requests >= self._cap_requests:
            raise OverloadedError(f"export queue full ({self.pending_requests} requests)",
                                  retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS)
        # An empty queue takes any one request, so an outsized request cannot be refused forever.
        if self.pending_bytes and self.pending_bytes + size > self._cap_bytes:
            raise OverloadedError(f"export queue full ({self.pending_bytes} bytes)",
                                  retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS)

    async def put(self, batch: TelemetryBatch) -> None:
        """Returns once the request is queued (and committed to disk when persistent)."""
        size = len(batch.payload)
        self.check_capacity(size)
        self._reserve(size)
        if self._spool is None:
            self._memory_bytes += size
            self._push(QueuedRequest(batch.signal, batch.item_count, size, batch.payload))
            return
        try:
            await self._spool.append(batch.signal, batch.payload, batch.item_count)
        except SpoolError as err:  # accounting already released by _on_spool_failed
            raise OverloadedError(str(err), retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS) from None

    def _on_durable(self, record: SpoolRecord, payload: bytes) -> None:
        keep = self._memory_bytes + record.size <= self._memory_budget
        if keep:
            self._memory_bytes += record.size
        self._push(QueuedRequest(record.signal, record.item_count, record.size, payload if keep else None,
                                 record.id))

    def _on_spool_failed(self, signal: Signal, item_count: int, size: int) -> None:
        self._release(size)

    # ---- consumer side ---------------------------------------------------------------------------
    async def get(self) -> QueuedRequest:
        """The oldest request, with its payload loaded; waits while the queue is empty."""
        while True:
            while not self._ready:
                self._nonempty.clear()
                await self._nonempty.wait()
            request = self._ready.popleft()
            self._in_flight_items[id(request)] = request
            if request.payload is not None:
                return request
            payload = await self._load(request)
            if payload is not None:
                request.payload = payload
                self._memory_bytes += request.size
                return request
            self.done(request)

    async def _load(self, request: QueuedRequest) -> bytes | None:
        assert self._spool is not None and request.spool_id is not None
        try:
            payload = await self._spool.load(request.spool_id)
        except Exception as err:
            log.error("export spool: cannot read request %d back (%s); it stays in the spool for the "
                      "next start", request.spool_id, err)
            self._in_flight_items.pop(id(request), None)
            self._release(request.size)
            return None
        if payload is None:
            log.error("export spool: request %d vanished from the spool; %d %s not forwarded",
                      request.spool_id, request.item_count, request.signal)
            self._metrics.exporter_send_failed[request.signal].labels("spool_lost").inc(request.item_count)
        return payload

    def done(self, request: QueuedRequest) -> None:
        """Delivered or dropped for good: free its place and delete it from the spool."""
        if self._in_flight_items.pop(id(request), None) is None:
            return
        if request.payload is not None:
            self._memory_bytes -= request.size
            request.payload = None
        if self._spool is not None and request.spool_id is not None:
            self._spool.forget(request.spool_id)
        self._release(request.size)

    def requeue(self, request: QueuedRequest) -> None:
        """Put a handed-out request back at the front (its sender failed, not its delivery)."""
        if self._in_flight_items.pop(id(request), None) is not None:
            self._ready.appendleft(request)
            self._nonempty.set()

    def unfinished(self) -> list[QueuedRequest]:
        """Queued and in-flight requests (what a memory-only queue loses at shutdown)."""
        return [*self._ready, *self._in_flight_items.values()]

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # ---- accounting ------------------------------------------------------------------------------
    def _push(self, request: QueuedRequest) -> None:
        self._ready.append(request)
        self._nonempty.set()

    def _reserve(self, size: int) -> None:
        self.pending_requests += 1
        self.pending_bytes += size
        self._idle.clear()
        self._publish()

    def _release(self, size: int) -> None:
        self.pending_requests -= 1
        self.pending_bytes -= size
        if self.pending_requests == 0:
            self._idle.set()
        self._publish()

    def _publish(self) -> None:
        self._metrics.exporter_queue_size.set(self.pending_requests)
        self._metrics.exporter_spool_bytes.set(self.pending_bytes if self._spool is not None else 0)
