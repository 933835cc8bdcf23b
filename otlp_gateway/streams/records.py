"""What the store keeps about streams for detection: their rows (``StreamInfo``) and detector snapshots.

Detection never fails over the store: a read that fails starts the stream fresh, a write that fails is
logged and counted (``driftlock_detector_state_save_failures`` for snapshots). Row updates that nothing
waits for run as background tasks, tracked so shutdown and tests can wait for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from otlp_gateway.store.base import AnomalyStore, IncidentRecord, StreamInfo, StreamState
from otlp_gateway.streams.live import LiveStream, stream_info
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class StreamRecords:
    def __init__(self, store: AnomalyStore | None, metrics: GatewayMetrics):
        self.store = store
        self._metrics = metrics
        self._background: set[asyncio.Task[Any]] = set()

    async def load(self, stream_id: str) -> tuple[bytes | None, StreamInfo | None]:
        """The stream's snapshot and row, ``(None, None)`` when unknown or unreadable."""
        if self.store is None:
            return None, None
        try:
            state, info = await asyncio.gather(self.store.load_state(stream_id),
                                               self.store.get_stream(stream_id))
        except Exception:
            log.exception("detection: could not load stream %s from the store; starting it fresh", stream_id)
            return None, None
        return state, info

    async def get(self, stream_id: str) -> StreamInfo | None:
        """The stored row, or ``None`` (also when the store cannot be read)."""
        if self.store is None:
            return None
        try:
            return await self.store.get_stream(stream_id)
        except Exception:
            log.exception("detection: could not read stream %s from the store", stream_id)
            return None

    async def streams_with_pending_actions(self) -> set[str] | None:
        """Streams whose detector has operators' incident actions to take (None: the store cannot say now)."""
        if self.store is None:
            return set()
        try:
            return {rec.stream_id for rec in await self.store.pending_incident_actions()}
        except Exception as exc:
            log.info("detection: cannot read the pending incident actions yet (%s)", exc)
            return None

    async def pending_actions(self, stream_id: str) -> list[IncidentRecord]:
        if self.store is None:
            return []
        try:
            return await self.store.pending_incident_actions(stream_id)
        except Exception:
            log.exception("detection: could not read the pending incident actions of stream %s", stream_id)
            return []

    async def clear_pending_action(self, incident_id: str) -> bool:
        if self.store is None:
            return False
        try:
            await self.store.clear_pending_action(incident_id)
        except Exception:
            log.exception("detection: could not clear the pending action of incident %s", incident_id)
            return False
        return True

    async def save(self, stream: LiveStream, snapshot: bytes, state: StreamState | None = None, *,
                   row: bool = True) -> bool:
        """Store a snapshot of ``stream`` (and its row, unless ``row`` is false); ``False`` (logged, counted)
        when the store refused."""
        if self.store is None:
            return False
        try:
            await self.store.save_state(stream.key.stream_id, snapshot)
            if row:
                await self.store.upsert_stream(stream_info(stream, state))
        except Exception:
            log.exception("detection: could not save the snapshot of stream %s", stream.key.stream_id)
            self._metrics.detector_state_save_failures.inc()
            return False
        return True

    async def mark(self, stream: LiveStream, state: StreamState) -> None:
        """Record ``state`` (for example ``evicted``) in the stream's row."""
        if self.store is not None:
            await self._upsert(stream_info(stream, state))

    def update_later(self, stream: LiveStream) -> None:
        """Write the stream's row in the background (its state or settings changed)."""
        if self.store is not None:
            self._spawn(self._upsert(stream_info(stream)))

    async def _upsert(self, info: StreamInfo) -> None:
        assert self.store is not None
        try:
            await self.store.upsert_stream(info)
        except Exception:
            log.exception("detection: could not record stream %s", info.stream_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def busy(self) -> bool:
        return bool(self._background)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the background writes."""
        deadline = time.monotonic() + timeout
        while self._background and time.monotonic() < deadline:
            await asyncio.wait(list(self._background), timeout=max(0.01, deadline - time.monotonic()))
