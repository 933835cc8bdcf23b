"""The live-stream table: the streams that have a detector in memory, bounded, least recently used first out.

A stream is opened on first use: its lease claimed (when gateways share the store, see ``ownership``), then
its snapshot loaded from the store when it has one (lazily: nothing is loaded at start), else it starts
fresh. Beyond ``max_live`` streams the least recently used are snapshotted on their shard thread, after
the work already queued there, then saved, evicted and their leases let go; a stream reopened meanwhile
waits for that and resumes from the saved snapshot. Dirty streams are snapshotted periodically and every
stream at shutdown.

Operators' incident actions reach a live stream's detector on its shard thread; an action on a stream that
is not live waits in the store (``pending_action``) and is taken when the stream next opens here, or within
``PENDING_REFRESH_SECONDS`` when the stream is live here while the action was answered by another gateway
sharing the store.

With ownership on, a heartbeat task also answers other gateways' requests for streams owned here (handing a
stream over, like an eviction, once it is quiet here), holds the events of streams another gateway owns
until they are handed over (``handoff``), and reports conflicts.

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

from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.store.base import IncidentAction, StreamInfo
from otlp_gateway.store.leases import LeaseRequest
from otlp_gateway.streams.handoff import HeldStream
from otlp_gateway.streams.incidents import IncidentActionsUnsupported, IncidentChange
from otlp_gateway.streams.live import LiveStream, ScoreOutcome, detector_spec
from otlp_gateway.streams.ownership import StreamOwnership
from otlp_gateway.streams.places import DetectorPlace
from otlp_gateway.streams.records import StreamRecords
from otlp_gateway.streams.routing import DETECTOR_KIND, StreamKey
from otlp_gateway.streams.settings import StreamSettings, StreamSettingsResolver
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

PENDING_REFRESH_SECONDS = 30.0
"""How often the store is asked which streams have operators' actions waiting."""
MAX_PENDING_EVICTIONS = 256
"""Snapshots of evicted streams waiting to be saved; beyond this, opening a stream waits for the store."""


class Shards(Protocol):
    """Where streams run: one thread per shard, a stream always on the same one."""

    def shard_of(self, stream_id: str) -> int: ...

    def place(self, shard: int) -> DetectorPlace:
        """Where the detectors of the shard's streams live."""
        ...

    def score(self, shard: int, stream: LiveStream, batch: StreamBatch, ticket: int) -> Future[ScoreOutcome]:
        """``stream.score(batch, ticket)`` on the shard, in submission order."""
        ...

    def submit(self, shard: int, fn: Callable[..., T], *args: Any) -> Future[T]: ...


class IncidentChanges(Protocol):
    """Where incident changes caused by operators' actions go (the incident sink)."""

    def handle_changes(self, changes: list[IncidentChange]) -> object: ...


@dataclass(frozen=True, slots=True)
class DetectorDefaults:
    """What every stream's detector shares: the seed and the compressor."""

    seed: int
    compressor: str


@dataclass(frozen=True, slots=True)
class Opening:
    """What opening a stream found in the store."""

    state: bytes | None = None
    info: StreamInfo | None = None
    holder: str | None = None
    """Another live gateway owns the stream (and has been asked for it)."""


class LiveStreamTable:
    """A component: ``start`` begins the periodic snapshots (and the lease heartbeat), ``shutdown``
    snapshots every live stream (then lets its leases go)."""

    def __init__(self, resolver: StreamSettingsResolver, defaults: DetectorDefaults, shards: Shards,
                 records: StreamRecords, metrics: GatewayMetrics, *, max_live: int,
                 snapshot_interval: float, ownership: StreamOwnership | None = None):
        self._resolver = resolver
        self._defaults = defaults
        self._shards = shards
        self._records = records
        self._metrics = metrics
        self._max_live = max_live
        self._snapshot_interval = snapshot_interval
        self.ownership = ownership
        self._live: OrderedDict[str, LiveStream] = OrderedDict()
        self._evicting: dict[str, tuple[asyncio.Future[bytes], asyncio.Task[None]]] = {}
        self._held: dict[str, HeldStream] = {}
        self._stray: set[str] = set()
        """Leases held in the store for streams not live here, seen at the last reconciliation."""
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._shut_down = False
        self.incidents: IncidentChanges | None = None
        """The incident sink, for the changes operators' actions cause."""
        self._pending_streams: set[str] = set()
        """Streams with operators' actions their detector has not taken yet."""

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self._metrics.streams_live.set(len(self._live))
        if self._started or self._shut_down or self._records.store is None:
            return
        self._started = True
        self._tasks.append(asyncio.create_task(self._snapshot_periodically(), name="driftlock-snapshots"))
        self._tasks.append(asyncio.create_task(self._watch_pending_actions(), name="driftlock-pending"))
        if self.ownership is not None:
            await self.ownership.register()
            self._tasks.append(asyncio.create_task(self._keep_leases(), name="driftlock-leases"))

    async def shutdown(self, grace: float = 30.0) -> None:
        """Idempotent, safe without ``start``: stop the background tasks, snapshot every live stream, finish
        the evictions in progress (within ``grace`` seconds), then let every lease go."""
        if self._shut_down:
            return
        self._shut_down = True
        deadline = time.monotonic() + grace
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await asyncio.wait_for(self.snapshot_all(only_dirty=False), max(0.1, deadline - time.monotonic()))
        except Exception:
            log.exception("detection: could not snapshot every stream at shutdown")
        await self.drain(max(0.1, deadline - time.monotonic()))
        for held in self._held.values():
            self._refused(held.key.signal, held.refuse_all("shutting down"))
        self._held.clear()
        if self.ownership is not None and self._started:
            await self.ownership.close()

    # --- lookup -----------------------------------------------------------------------------------
    def get(self, stream_id: str) -> LiveStream | None:
        return self._live.get(stream_id)

    def streams(self) -> list[LiveStream]:
        return list(self._live.values())

    def __len__(self) -> int:
        return len(self._live)

    # --- opening and scoring ----------------------------------------------------------------------
    async def prepare(self, keys: Iterable[StreamKey]) -> dict[str, Opening]:
        """Mark ``keys`` most recently used and open the missing ones' leases and snapshots, concurrently.

        Pass the result to ``submit`` for each key's batch, in order."""
        missing = []
        for key in keys:
            if key.stream_id in self._live:
                self._live.move_to_end(key.stream_id)
            elif key.stream_id not in self._held:
                missing.append(key.stream_id)
        found = await asyncio.gather(*(self._look_up(sid) for sid in missing))
        return dict(zip(missing, found, strict=True))

    async def _look_up(self, stream_id: str) -> Opening:
        leaving = self._evicting.get(stream_id)
        if leaving is not None:  # its snapshot is saved and its lease let go first
            await asyncio.wait([leaving[1]])
        if self.ownership is not None:
            claim = await self.ownership.claim(stream_id)
            if not claim.owned:
                return Opening(holder=claim.holder)
        # loaded after the claim: a snapshot handed over is saved before the lease passes
        state, info = await self._records.load(stream_id)
        return Opening(state, info)

    async def submit(self, batch: StreamBatch, ticket: int, prepared: dict[str, Opening]
                     ) -> Future[ScoreOutcome] | None:
        """Queue ``batch`` on its stream's shard (opening the stream if needed, which may evict the least
        recently used ones); its outcome, or ``None`` when it will not be scored here (counted)."""
        key = batch.key
        held = self._held.get(key.stream_id)
        if held is not None:
            return self._hold(held, batch, ticket)
        stream = self._live.get(key.stream_id)
        if stream is None:
            opening = prepared.get(key.stream_id) or await self._look_up(key.stream_id)
            if opening.holder is not None:
                held = self._held[key.stream_id] = HeldStream(key, opening.holder, time.monotonic(), 0.0)
                self._metrics.streams_awaiting_handoff.set(len(self._held))
                log.info("ownership: stream %s is owned by gateway %r: its events wait here until that "
                         "gateway hands it over", key.stream_id, opening.holder,
                         extra={"stream_id": key.stream_id, "owner": opening.holder})
                return self._hold(held, batch, ticket)
            stream = self._live.get(key.stream_id)  # back meanwhile (a handoff that could not save)
            if stream is None:
                stream, fresh = self._build(key, opening.state, opening.info)
                self._admit(stream, opening.info, fresh)
                if key.stream_id in self._pending_streams:
                    await self._take_pending_actions(stream)
                await self._evict_beyond_limit()
        return self._queue(stream, batch, ticket)

    def _hold(self, held: HeldStream, batch: StreamBatch, ticket: int) -> Future[ScoreOutcome] | None:
        job = held.hold(batch, ticket, time.monotonic())
        if job is None:
            self._refused(batch.key.signal, len(batch.times))
        return job

    def _queue(self, stream: LiveStream, batch: StreamBatch, ticket: int) -> Future[ScoreOutcome] | None:
        if stream.spec.kind != DETECTOR_KIND[batch.key.signal]:
            # an explicit stream id shared between metrics and spans/logs: one detector kind per id
            self._metrics.detector_dropped_events.labels(batch.key.signal).inc(len(batch.times))
            return None
        stream.last_used = time.monotonic()
        return self._shards.score(stream.shard, stream, batch, ticket)

    def _refused(self, signal: str, events: int) -> None:
        if events:
            self._metrics.ownership_unscored_events.labels(signal).inc(events)

    def _build(self, key: StreamKey, state: bytes | None, info: StreamInfo | None) -> tuple[LiveStream, bool]:
        """The stream restored from ``state`` (or fresh: the flag)."""
        api = StreamSettings.stored(info.settings if info else None, key.stream_id)
        settings = self._resolver.resolve_or_fall_back(key, api)
        spec = detector_spec(key.signal, self._defaults.seed, self._defaults.compressor, settings)
        shard = self._shards.shard_of(key.stream_id)
        stream: LiveStream | None = None
        if state:
            try:
                stream = LiveStream.restore(state, key, spec, shard, self._shards.place(shard))
            except Exception:
                log.exception("detection: snapshot of stream %s is unreadable; starting it fresh",
                              key.stream_id)
        fresh = stream is None
        if stream is None:
            stream = LiveStream(key, spec, shard, place=self._shards.place(shard))
        stream.api_settings = api
        return stream, fresh

    def _admit(self, stream: LiveStream, info: StreamInfo | None, fresh: bool) -> None:
        self._live[stream.key.stream_id] = stream
        if fresh or info is None or info.state == "evicted":
            self._records.update_later(stream)
        self._metrics.streams_live.set(len(self._live))

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

    # --- eviction and handoff ---------------------------------------------------------------------
    async def _evict_beyond_limit(self) -> None:
        while len(self._live) > self._max_live:
            _, victim = self._live.popitem(last=False)
            self._retire(victim)
            self._metrics.streams_evicted.inc()
        while len(self._evicting) > MAX_PENDING_EVICTIONS:
            _, oldest = next(iter(self._evicting.values()))
            await asyncio.wait([oldest])

    def _retire(self, stream: LiveStream, handing_to: str | None = None) -> None:
        """Snapshot ``stream`` (already out of ``_live``) after its queued work, save it, let its lease go."""
        snapshot = asyncio.wrap_future(self._shards.submit(stream.shard, stream.snapshot))
        save = asyncio.create_task(self._save_retired(stream, snapshot, handing_to))
        self._evicting[stream.key.stream_id] = (snapshot, save)
        self._metrics.streams_live.set(len(self._live))

    async def _save_retired(self, stream: LiveStream, snapshot: asyncio.Future[bytes],
                            handing_to: str | None) -> None:
        stream_id = stream.key.stream_id
        try:
            try:
                data = await snapshot
            except Exception:
                log.exception("detection: could not snapshot stream %s", stream_id)
                self._metrics.detector_state_save_failures.inc()
                data = None
            saved = data is not None and await self._records.save(stream, data, row=False)
            if handing_to is not None and not saved and stream_id not in self._live:
                # never hand a stream over without its state: keep scoring it, retry at the next heartbeat
                self._live[stream_id] = stream
                self._metrics.streams_live.set(len(self._live))
                return
            if saved and stream_id not in self._live:
                await self._records.mark(stream, "evicted")
            if self.ownership is not None and stream_id not in self._live:
                outcome = await self.ownership.let_go(stream_id)
                if handing_to is not None and outcome == "transferred":
                    self._metrics.stream_handoffs.labels("out", "handoff").inc()
                    log.info("ownership: handed stream %s over to gateway %r with its snapshot (%d events)",
                             stream_id, handing_to, stream.events_seen,
                             extra={"stream_id": stream_id, "new_owner": handing_to})
        finally:
            entry = self._evicting.get(stream_id)
            if entry is not None and entry[0] is snapshot:
                del self._evicting[stream_id]

    # --- leases (ownership on) --------------------------------------------------------------------
    async def _keep_leases(self) -> None:
        assert self.ownership is not None
        while True:
            await asyncio.sleep(self.ownership.settings.heartbeat_interval_seconds)
            try:
                await self.lease_tick()
            except Exception:
                log.exception("ownership: lease upkeep failed")

    async def lease_tick(self) -> None:
        """One heartbeat: renew, answer requests, reconcile, poll held streams (public for tests)."""
        own = self.ownership
        assert own is not None
        beat = await own.heartbeat()
        if beat is not None:
            await self._answer_requests(beat.requests)
            if beat.leases != len(self._live) + len(self._evicting) or self._stray:
                await self._reconcile()
        await self._poll_held()

    async def _answer_requests(self, requests: list[LeaseRequest]) -> None:
        own = self.ownership
        assert own is not None
        settings = own.settings
        now = time.monotonic()
        asked = {r.stream_id for r in requests}
        for stream_id in [s for s in own.owner_requests.episodes if s not in asked]:
            own.owner_requests.end(stream_id)
        for request in requests:
            stream_id, requester = request.stream_id, request.requested_by
            if stream_id in self._evicting:
                continue  # its eviction passes the lease on
            stream = self._live.get(stream_id)
            if stream is None:  # not scored here (a lease left over): pass it on at once
                own.owner_requests.end(stream_id)
                if await own.let_go(stream_id) == "transferred":
                    self._metrics.stream_handoffs.labels("out", "handoff").inc()
                continue
            if now - stream.last_used >= settings.handoff_quiet_seconds:
                own.owner_requests.end(stream_id)
                del self._live[stream_id]
                self._retire(stream, handing_to=requester)
                continue
            episode = own.owner_requests.begin(stream_id, requester, now)
            if not episode.reported and now - episode.since >= settings.handoff_timeout_seconds:
                episode.reported = True
                own.conflict("owner", stream_id, requester,
                             f"this gateway keeps scoring it: it still receives its events "
                             f"({now - stream.last_used:.1f}s ago); it is handed over once they stop")

    async def _reconcile(self) -> None:
        """Compare the leases the store says this gateway holds with the streams live here."""
        own = self.ownership
        assert own is not None
        owned = await own.owned()
        if owned is None:
            return
        for stream_id in [s for s in self._live if s not in owned]:
            claim = await own.claim(stream_id)  # a store failure at opening left it without a lease
            stream = self._live.get(stream_id)
            if claim.owned or stream is None:
                continue
            # another gateway took it while this one's heartbeat lapsed: its state here is stale now
            del self._live[stream_id]
            self._metrics.streams_live.set(len(self._live))
            self._metrics.stream_handoffs.labels("out", "lost").inc()
            await own.withdraw(stream_id)
            log.warning("ownership: stream %s was taken over by gateway %r while this gateway's heartbeat "
                        "lapsed; its detector here is dropped (%d events), that gateway scores it",
                        stream_id, claim.holder, stream.events_seen,
                        extra={"stream_id": stream_id, "owner": claim.holder})
        stray = owned - self._live.keys() - self._evicting.keys() - self._held.keys()
        for stream_id in stray & self._stray:  # seen twice: not a stream being opened right now
            await own.let_go(stream_id)
        self._stray = stray - self._stray

    async def _poll_held(self) -> None:
        own = self.ownership
        assert own is not None
        timeout = own.settings.handoff_timeout_seconds
        for stream_id, held in list(self._held.items()):
            claim = await own.claim(stream_id)
            if self._held.get(stream_id) is not held:
                continue
            now = time.monotonic()
            if claim.owned:
                await self._resume(held, lapsed=claim.took_over_from is not None)
                continue
            held.holder = claim.holder or held.holder
            if held.refusing:
                if now - held.last_event >= timeout:  # no longer sent here
                    del self._held[stream_id]
                    await own.withdraw(stream_id)
                continue
            if now - held.since < timeout:
                continue
            refused = held.refuse_all("another gateway keeps the stream")
            self._refused(held.key.signal, refused)
            if now - held.last_event < timeout / 2:  # still sent here: both gateways receive it
                held.refusing = True
                own.conflict("requester", stream_id, held.holder,
                             f"{held.holder!r} keeps scoring it; its events here are forwarded unscored "
                             f"({refused} so far) until that gateway hands it over")
            else:  # a few late events after a move: the stream stays where it is
                del self._held[stream_id]
                await own.withdraw(stream_id)
                log.info("ownership: stream %s stays with gateway %r; %d of its events that reached this "
                         "gateway were forwarded unscored", stream_id, held.holder, refused)
        self._metrics.streams_awaiting_handoff.set(len(self._held))

    async def _resume(self, held: HeldStream, *, lapsed: bool) -> None:
        """The lease arrived: load the snapshot the owner saved, then score the held events in order."""
        stream_id = held.key.stream_id
        state, info = await self._records.load(stream_id)
        if self._held.get(stream_id) is not held:
            return
        stream, fresh = self._build(held.key, state, info)
        waiting, resumed_at = held.held_events, stream.events_seen
        # no await from here until the held jobs are queued: new batches must queue behind them
        self._admit(stream, info, fresh)
        del self._held[stream_id]
        held.release_to(stream, self._queue)
        self._metrics.streams_awaiting_handoff.set(len(self._held))
        if not lapsed:
            self._metrics.stream_handoffs.labels("in", "handoff").inc()
        log.info("ownership: took stream %s over from gateway %r: resumed from %s (%d events seen), %d held "
                 "events queued", stream_id, held.holder,
                 "its snapshot" if state else "no snapshot (it starts warming up)", resumed_at, waiting,
                 extra={"stream_id": stream_id, "previous_owner": held.holder})
        if stream_id in self._pending_streams:
            await self._take_pending_actions(stream)
        await self._evict_beyond_limit()

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
