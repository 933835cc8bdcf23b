"""The bounded export queue: a ``DurableFifo`` of serialized requests plus the capacity accounting.

Bounds count everything not yet finished (being committed, queued, in flight): ``capacity_requests``
always; bytes up to ``capacity_bytes`` in memory mode, or ``spool_max_bytes`` with the persistent spool,
where ``capacity_bytes`` instead caps the payloads also kept in memory (the rest are read back from disk
when their turn comes). Byte figures are uncompressed payload sizes (the spool file holds them
zstd-compressed, so it is smaller). Requests recovered at start are always taken, even past the bounds:
they were acknowledged.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from otlp_gateway.batch import SIGNALS, Signal, TelemetryBatch
from otlp_gateway.durable import DurableFifo, Entry, FifoError
from otlp_gateway.errors import OverloadedError
from otlp_gateway.exporter.settings import QueueSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

QUEUE_FULL_RETRY_AFTER_SECONDS = 1.0
"""Hint given to clients refused because the queue is full (receiver maps it to RetryInfo/Retry-After)."""
SPOOL_FILE_NAME = "export-spool.sqlite3"
"""The spool file's name under ``<data_dir>/export-spool`` (the same name the previous format used, so an
upgrade converts it in place)."""


def signal_of(entry: Entry) -> Signal:
    return cast(Signal, entry.tag)


class ExportQueue:
    def __init__(self, settings: QueueSettings, spool_dir: Path | None, metrics: GatewayMetrics):
        self._metrics = metrics
        self._cap_requests = settings.capacity_requests
        self._cap_bytes = settings.spool_max_bytes if spool_dir is not None else settings.capacity_bytes
        self.fifo = DurableFifo(spool_dir / SPOOL_FILE_NAME if spool_dir is not None else None,
                                name="export-spool", tags=SIGNALS, memory_bytes=settings.capacity_bytes,
                                on_change=self._publish, on_lost=self._on_lost)
        metrics.exporter_queue_capacity.set(self._cap_requests)
        self._publish()

    @property
    def persistent(self) -> bool:
        return self.fifo.durable

    @property
    def pending_requests(self) -> int:
        return self.fifo.pending_entries

    @property
    def pending_bytes(self) -> int:
        return self.fifo.pending_bytes

    async def open(self) -> int:
        """Load what a previous run left in the spool; returns the number of requests recovered."""
        return await self.fifo.open()

    async def close(self) -> None:
        await self.fifo.close()

    def check_capacity(self, size: int, held_requests: int = 0, held_bytes: int = 0) -> None:
        """Raise ``OverloadedError`` when a request of ``size`` bytes would be refused right now; places
        held by reservations (``held_*``) count as taken."""
        requests = self.pending_requests + held_requests
        if requests >= self._cap_requests:
            raise OverloadedError(f"export queue full ({requests} requests)",
                                  retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS)
        # An empty queue takes any one request, so an outsized request cannot be refused forever.
        taken = self.pending_bytes + held_bytes
        if taken and taken + size > self._cap_bytes:
            raise OverloadedError(f"export queue full ({taken} bytes)",
                                  retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS)

    async def put(self, batch: TelemetryBatch, check: bool = True) -> None:
        """Returns once the request is queued (and committed to disk when persistent); ``check=False``
        when a reservation already held its place."""
        if check:
            self.check_capacity(len(batch.payload))
        try:  # the FIFO counts the request from here on, so the check above and this admission are atomic
            await self.fifo.append(batch.signal, batch.payload, batch.item_count)
        except FifoError as err:
            raise OverloadedError(str(err), retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS) from None

    def _on_lost(self, entry: Entry) -> None:
        self._metrics.exporter_send_failed[signal_of(entry)].labels("spool_lost").inc(entry.count)

    def _publish(self) -> None:
        self._metrics.exporter_queue_size.set(self.fifo.pending_entries)
        self._metrics.exporter_spool_bytes.set(self.fifo.pending_bytes if self.fifo.durable else 0)
