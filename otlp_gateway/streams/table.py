"""The live-stream table: the streams that have a detector in memory, bounded, least recently used first out.

A stream is opened on first use: from its snapshot in the store when it has one (lazily: nothing is
loaded at start), else fresh. Beyond ``max_live`` streams the least recently used are snapshotted on their
shard thread, after the work already queued there, then saved and evicted; a stream reopened while its
snapshot is being saved resumes from that snapshot. Dirty streams are snapshotted periodically and every
stream at shutdown.

Operators' incident actions reach a live stream's detector on its shard thread; an action on a stream that
is not live waits in the store (``pending_action``) and is taken when the stream next opens here, or within
``PENDING_REFRESH_SECONDS`` when the stream is live here while the action was answered by another gateway
sharing the store.

The table runs on the event loop; a stream's detector is touched only on its shard thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from otlp_gateway.store.base import IncidentAction, StreamInfo
from otlp_gateway.streams.incidents import IncidentActionsUnsupported, IncidentChange
from otlp_gateway.streams.live import LiveStream, detector_spec
from otlp_gateway.streams.records import StreamRecords
from otlp_gateway.streams.routing import StreamKey
from otlp_gateway.streams.settings import StreamSettings, StreamSettingsResolver
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

PENDING_REFRESH_SECONDS = 30.0
"""How often the store is asked which streams have operators' actions waiting."""
MAX_PENDING_EVICTIONS = 256
"""Snapshots of evicted streams waiting to be saved; beyond this, opening a stream waits for the store."""

Stored = tuple[bytes | None, StreamInfo | None]
"""A stream's snapshot and row as loaded from the store."""


class Shards(Protocol):
    """Where streams run: one thread per shard, a stream always on the same one."""

    def shard_of(self, stream_id: str) -> int: ...

    def submit(self, shard: int, fn: Callable[..., T], *args: Any) -> Future[T]: ...


class IncidentChanges(Protocol):
    """Where incident changes caused by operators' actions go (the incident sink)."""

    def handle_changes(self, changes: list[IncidentChange]) -> object: ...


@dataclass(frozen=True, slots=True)
class DetectorDefaults:
    """What every stream's detector shares: the seed and the compressor."""

    seed: int
    compressor: str


class LiveStreamTable:
    """A component: ``start`` begins the periodic snapshots, ``shutdown`` snapshots every live stream."""

    def __init__(self, resolver: StreamSettingsResolver, defaults: DetectorDefaults, shards: Shards,
                 records: StreamRecords, metrics: GatewayMetrics, *, max_live: int,
                 snapshot_interval: float):
        self._resolver = resolver
        self._defaults = defaults
        self._shards = shards
        self._records = records
        self._metrics = metrics
        self._max_live = max_live
        self._snapshot_interval = snapshot_interval
        self._live: OrderedDict[str, LiveStream] = OrderedDict()
        self._evicting: dict[str, tuple[asyncio.Future[bytes], asyncio.Task[None]]] = {}
        self._periodic: asyncio.Task[None] | None = None
        self._shut_down = False
        self.incidents: IncidentChanges | None = None
        """The incident sink, for the changes operators' actions cause."""
        self._pending_streams: set[str] = set()
        """Streams with operators' actions their detector has not taken yet."""
        self._pending_load: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self._metrics.streams_live.set(len(self._live))
        if self._periodic is None and not self._shut_down and self._records.store is not None:
            self._periodic = asyncio.create_task(self._snapshot_periodically(), name="driftlock-snapshots")
            self._pending_load = asyncio.create_task(self._watch_pending_actions(), name="driftlock-pending")

    async def shutdown(self, grace: float = 30.0) -> None:
        """Idempotent, safe without ``start``: stop the periodic snapshots, snapshot every live stream,
        finish the evictions in progress (within ``grace`` seconds)."""
        if self._shut_down:
            return
        self._shut_down = True
        deadline = time.monotonic() + grace
        for task in (self._periodic, self._pending_load):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await asyncio.wait_for(self.snapshot_all(only_dirty=False), max(0.1, deadline - time.monotonic()))
        except Exception:
            log.exception("detection: could not snapshot every stream at shutdown")
        await self.drain(max(0.1, deadline - time.monotonic()))

    # --- lookup -----------------------------------------------------------------------------------
    def get(self, stream_id: str) -> LiveStream | None:
        return self._live.get(stream_id)

    def streams(self) -> list[LiveStream]:
        return list(self._live.values())

    def __len__(self) -> int:
        return len(self._live)

    # --- opening ----------------------------------------------------------------------------------
    async def prepare(self, keys: Iterable[StreamKey]) -> dict[str, Stored]:
        """Mark ``keys`` most recently used and load the missing ones from the store, concurrently.

        Pass the result to ``acquire`` for each key, in order."""
        missing = []
        for key in keys:
            if key.stream_id in self._live:
                self._live.move_to_end(key.stream_id)
            elif key.stream_id not in self._evicting:
                missing.append(key.stream_id)
        loaded = await asyncio.gather(*(self._records.load(sid) for sid in missing))
        return dict(zip(missing, loaded, strict=True))

    async def acquire(self, key: StreamKey, prepared: dict[str, Stored]) -> LiveStream:
        """The live stream of ``key``, opened if needed (which may evict the least recently used ones:
        call this right before queueing the stream's work, so an eviction snapshot follows it)."""
        stream = self._live.get(key.stream_id)
        if stream is None:
            stream = await self._open(key, prepared.get(key.stream_id))
        return stream

    async def _open(self, key: StreamKey, stored: Stored | None) -> LiveStream:
        pending = self._evicting.get(key.stream_id)
        state: bytes | None
        info: StreamInfo | None
        if pending is not None:
            try:
                state = await pending[0]
            except Exception:  # logged by the eviction task; the stream warms up again
                state = None
            info = await self._records.get(key.stream_id)
        else:
            state, info = stored if stored is not None else await self._records.load(key.stream_id)
        api = StreamSettings.stored(info.settings if info else None, key.stream_id)
        settings = self._resolver.resolve_or_fall_back(key, api)
        spec = detector_spec(key.signal, self._defaults.seed, self._defaults.compressor, settings)
        shard = self._shards.shard_of(key.stream_id)
        stream: LiveStream | None = None
        if state:
            try:
                stream = LiveStream.restore(state, key, spec, shard)
            except Exception:
                log.exception("detection: snapshot of stream %s is unreadable; starting it fresh",
                              key.stream_id)
        is_new = stream is None
        if stream is None:
            stream = LiveStream(key, spec, shard)
        stream.api_settings = api
        self._live[key.stream_id] = stream
        if is_new or info is None or info.state == "evicted":
            self._records.update_later(stream)
        if key.stream_id in self._pending_streams:
            await self._take_pending_actions(stream)
        await self._evict_beyond_limit()
        self._metrics.streams_live.set(len(self._live))
        return stream

    # --- operators' incident actions ----------------------------------------------------------------
    async def incident_action(self, stream_id: str, seq: int, action: IncidentAction,
                              actor: str | None = None,
                              incident_id: str | None = None) -> IncidentChange | None:
        """Have the live detector of ``stream_id`` take a closing action on incident ``seq``; None when the
        stream is not live. Raises ``IncidentActionsUnsupported`` or ``ValueError`` (see
        ``LiveStream.incident_action``). The change goes to the incident sink."""
        stream = self._live.get(stream_id)
        if stream is None:
            return None
        change = await asyncio.wrap_future(self._shards.submit(stream.shard, stream.incident_action, seq,
                                                               action, actor, incident_id))
        if self.incidents is not None:
            self.incidents.handle_changes([change])
        return change

    async def _watch_pending_actions(self) -> None:
        while True:
            waiting = await self._records.streams_with_pending_actions()
            for stream_id in waiting or ():
                self._pending_streams.add(stream_id)
                stream = self._live.get(stream_id)
                if stream is not None:  # live here, the action answered elsewhere: take it now
                    await self._take_pending_actions(stream)
            await asyncio.sleep(PENDING_REFRESH_SECONDS)

    def note_pending_action(self, stream_id: str) -> None:
        """An action on ``stream_id`` waits in the store for the stream's detector."""
        self._pending_streams.add(stream_id)

    async def _take_pending_actions(self, stream: LiveStream) -> None:
        stream_id = stream.key.stream_id
        waiting = await self._records.pending_actions(stream_id)
        left = 0
        for rec in waiting:
            try:
                change = await asyncio.wrap_future(self._shards.submit(
                    stream.shard, stream.incident_action, rec.seq, rec.pending_action, rec.closed_by, rec.id))
            except IncidentActionsUnsupported:
                left += 1  # waits for a detector that tracks incidents
                continue
            except ValueError as exc:  # closed already, or an earlier detector's incident: nothing to take
                log.info("detection: %s's pending %s on incident %s not taken: %s", stream_id,
                         rec.pending_action, rec.id, exc)
            except Exception:  # a defect: never costs the stream its scoring; the action stays pending
                log.exception("detection: %s's pending %s on incident %s failed", stream_id,
                              rec.pending_action, rec.id)
                left += 1
                continue
            else:
                if self.incidents is not None:
                    self.incidents.handle_changes([change])
            if not await self._records.clear_pending_action(rec.id):
                left += 1
        if not left:
            self._pending_streams.discard(stream_id)

    # --- changes from the API ---------------------------------------------------------------------
    def reconfigure(self, stream_id: str, api: StreamSettings, resolved: StreamSettings) -> LiveStream | None:
        """Give a live stream new API settings; its next job on its shard applies them."""
        stream = self._live.get(stream_id)
        if stream is None:
            return None
        stream.api_settings = api
        stream.desired_spec = detector_spec(stream.key.signal, self._defaults.seed, self._defaults.compressor,
                                            resolved)
        return stream

    def changed(self, stream: LiveStream) -> None:
        """The stream's state changed while scoring: record it."""
        self._records.update_later(stream)

    # --- eviction ---------------------------------------------------------------------------------
    async def _evict_beyond_limit(self) -> None:
        while len(self._live) > self._max_live:
            stream_id, victim = self._live.popitem(last=False)
            snapshot = asyncio.wrap_future(self._shards.submit(victim.shard, victim.snapshot))
            save = asyncio.create_task(self._save_evicted(victim, snapshot))
            self._evicting[stream_id] = (snapshot, save)
            self._metrics.streams_evicted.inc()
        while len(self._evicting) > MAX_PENDING_EVICTIONS:
            _, oldest = next(iter(self._evicting.values()))
            await asyncio.wait([oldest])

    async def _save_evicted(self, victim: LiveStream, snapshot: asyncio.Future[bytes]) -> None:
        stream_id = victim.key.stream_id
        try:
            data = await snapshot
        except Exception:
            log.exception("detection: could not snapshot evicted stream %s", stream_id)
            self._metrics.detector_state_save_failures.inc()
            data = None
        try:
            if data is not None and await self._records.save(victim, data, row=False) \
                    and stream_id not in self._live:  # not reopened meanwhile
                await self._records.mark(victim, "evicted")
        finally:
            entry = self._evicting.get(stream_id)
            if entry is not None and entry[0] is snapshot:
                del self._evicting[stream_id]

    # --- snapshots --------------------------------------------------------------------------------
    async def snapshot_all(self, only_dirty: bool = True) -> int:
        """Snapshot live streams (on their shard threads, after their queued work) into the store."""
        if self._records.store is None:
            return 0
        streams = [s for s in self._live.values() if s.dirty or not only_dirty]
        jobs = [(s, asyncio.wrap_future(self._shards.submit(s.shard, s.snapshot))) for s in streams]
        saved = 0
        for stream, job in jobs:
            try:
                data = await job
            except Exception:
                log.exception("detection: could not snapshot stream %s", stream.key.stream_id)
                self._metrics.detector_state_save_failures.inc()
                continue
            saved += await self._records.save(stream, data)
        return saved

    async def _snapshot_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._snapshot_interval)
            try:
                await self.snapshot_all(only_dirty=True)
            except Exception:
                log.exception("detection: periodic snapshot failed")

    @property
    def busy(self) -> bool:
        return bool(self._evicting) or self._records.busy

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout`` seconds) for evictions and background row writes."""
        deadline = time.monotonic() + timeout
        while self._evicting and time.monotonic() < deadline:
            tasks = [task for _, task in self._evicting.values()]
            await asyncio.wait(tasks, timeout=max(0.01, deadline - time.monotonic()))
        await self._records.drain(max(0.01, deadline - time.monotonic()))

