"""The detection stage: extract -> route -> score (worker threads) -> record -> annotate -> forward.

Flow of one batch:

1. admission: when the events waiting for detection would exceed ``queue_max_events`` the batch is
   forwarded unscored and its items are counted in ``detector_dropped_events`` (ingest never waits on
   a full detection queue, telemetry is never dropped);
2. extraction on one extraction thread (parse + canonical events per stream);
3. dispatch, in arrival order (a turnstile over request tickets): streams are found or loaded (lazily,
   from the store's snapshot), least recently used ones beyond ``max_live_streams`` are snapshotted and
   evicted, and each stream's events go to its shard's single thread;
4. the decision: anomaly records go to the writer, blamed items still in this request are annotated
   and the request re-serialized; requests without anomalies keep their original bytes;
5. forwarding to the next consumer.

Steps 2-4 run as a task shielded from the caller's cancellation, so a scored window is always recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from detectors.profiles import resolve_profile
from otlp_gateway.batch import BatchConsumer, TelemetryBatch
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.detection.shards import ShardPool
from otlp_gateway.detection.turnstile import Turnstile
from otlp_gateway.errors import RetryableError
from otlp_gateway.otlp.annotate import AnomalyMark, annotate
from otlp_gateway.otlp.extract import Extraction, Extractor, StreamBatch, parse_request
from otlp_gateway.store.base import AnomalyRecord, AnomalyStore, StreamInfo
from otlp_gateway.streams.live import LiveStream, ScoreOutcome, build_record, detector_spec
from otlp_gateway.streams.routing import (
    DETECTOR_KIND,
    StreamConfig,
    StreamKey,
    StreamRouter,
    check_profile,
    resolve_stream_config,
)
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

MAX_PENDING_EVICTIONS = 256
"""Snapshots of evicted streams waiting to be saved; beyond this, dispatch waits for the store."""
RATE_INTERVAL = 1.0


@dataclass(slots=True)
class Decision:
    records: list[AnomalyRecord]
    marks: dict[int, AnomalyMark]
    message: Any


class Pipeline:
    """A ``BatchConsumer`` running anomaly detection between the receiver and the exporter."""

    def __init__(self, settings: DetectionSettings, next_consumer: BatchConsumer, writer: Any | None,
                 store: AnomalyStore | None, metrics: GatewayMetrics, engine_version: str):
        from otlp_gateway.streams.control import PipelineStreamControl

        self.settings = settings
        self._next = next_consumer
        self._writer = writer
        self._store = store
        self._metrics = metrics
        self._engine_version = engine_version
        self._extractor = Extractor(StreamRouter(settings.stream_key))
        self._extract_pool = ThreadPoolExecutor(1, thread_name_prefix="driftlock-extract")
        self._shards = ShardPool(settings.workers)
        self._live: OrderedDict[str, LiveStream] = OrderedDict()
        self._evicting: dict[str, tuple[asyncio.Future[bytes], asyncio.Task[None]]] = {}
        self._turnstile = Turnstile()
        self._pending_events = 0
        self._inflight: set[asyncio.Task[Decision | None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._periodic: asyncio.Task[None] | None = None
        self._closed = False
        self._shutdown_done = False
        self._rate_events = 0
        self._rate_since = time.monotonic()
        self._ratio_ewma: dict[str, float] = {}
        self.stream_control = PipelineStreamControl(self)

    @property
    def store(self) -> AnomalyStore | None:
        return self._store

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Returns at once; streams load their snapshots lazily on first use."""
        self._metrics.anomaly_ncd_threshold.set(resolve_profile(self.settings.profile).false_alarm_target)
        self._metrics.streams_live.set(0)
        if self.settings.enabled:  # compile/load the wire kernels on the extraction thread, ahead of requests
            from otlp_gateway.otlp.wire import warm_up

            self._extract_pool.submit(warm_up).add_done_callback(_log_failure("warming up the wire kernels"))
        if self._periodic is None and self._store is not None and self.settings.enabled:
            self._periodic = asyncio.create_task(self._snapshot_periodically(), name="driftlock-snapshots")

    async def shutdown(self, grace: float = 30.0) -> None:
        """Idempotent, safe without ``start``: refuse new batches, let in-flight detection finish (at
        most ``grace`` seconds), then snapshot every live stream to the store."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self._closed = True
        deadline = time.monotonic() + grace
        if self._periodic is not None:
            self._periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._periodic
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=max(0.0, deadline - time.monotonic()))
        try:
            await asyncio.wait_for(self.snapshot_all(only_dirty=False), max(0.1, deadline - time.monotonic()))
        except (TimeoutError, Exception):
            log.exception("detection: could not snapshot every stream at shutdown")
        for _, task in list(self._evicting.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, max(0.1, deadline - time.monotonic()))
        if self._background:
            await asyncio.wait(list(self._background), timeout=max(0.1, deadline - time.monotonic()))
        self._shards.shutdown(wait=False)
        self._extract_pool.shutdown(wait=False, cancel_futures=True)

    # --- BatchConsumer ----------------------------------------------------------------------------
    async def consume(self, batch: TelemetryBatch) -> None:
        if self._closed:
            raise RetryableError("detection pipeline is shutting down", retry_after=1.0)
        if not self.settings.enabled or batch.item_count == 0:
            await self._next.consume(batch)
            return
        n = batch.item_count
        if self._pending_events + n > self.settings.queue_max_events:
            self._metrics.detector_dropped_events.labels(batch.signal).inc(n)
            await self._next.consume(batch)
            return
        check_capacity = getattr(self._next, "check_capacity", None)
        if check_capacity is not None:
            check_capacity(batch)  # refuse before scoring: the client's retry must not be scored twice
        self._pending_events += n
        task = asyncio.create_task(self._detect(batch))
        self._inflight.add(task)
        task.add_done_callback(self._detection_done(n))
        try:
            decision = await asyncio.shield(task)
        except Exception:  # a detection fault never costs the telemetry: forward it as received
            log.exception("detection: deciding on a %s request failed; forwarded unscored", batch.signal)
            decision = None
        if decision is not None and decision.marks:
            loop = asyncio.get_running_loop()
            try:
                message = decision.message if decision.message is not None else batch.message
                batch.payload, batch.message = await loop.run_in_executor(
                    self._extract_pool, _annotate_and_serialize, batch.signal, message, batch.payload,
                    decision.marks)
            except Exception:  # annotation is best effort; the original bytes still go out
                log.exception("detection: annotation failed; forwarding the request unannotated")
                self._metrics.annotation_failures.labels(batch.signal).inc()
        await self._next.consume(batch)

    def _detection_done(self, n: int) -> Any:
        def done(task: asyncio.Task[Decision | None]) -> None:
            self._pending_events -= n
            self._inflight.discard(task)

        return done

    # --- detection ----------------------------------------------------------------------------------
    async def _detect(self, batch: TelemetryBatch) -> Decision | None:
        loop = asyncio.get_running_loop()
        ticket = self._turnstile.ticket()
        try:
            try:
                extraction = await loop.run_in_executor(self._extract_pool, self._extract, batch)
            except Exception as exc:
                log.warning("detection: could not extract %s request (%s); forwarded unscored",
                            batch.signal, exc)
                self._metrics.detector_dropped_events.labels(batch.signal).inc(batch.item_count)
                return None
            await self._turnstile.wait(ticket)
            try:
                jobs = await self._dispatch(extraction, ticket)
            except Exception:  # never lose the batch over a detection fault; it goes out unscored
                log.exception("detection: could not dispatch a %s request; forwarded unscored", batch.signal)
                self._metrics.detector_dropped_events.labels(batch.signal).inc(batch.item_count)
                return None
        finally:
            self._turnstile.release(ticket)
        outcomes: list[ScoreOutcome] = []
        for stream_batch, job in jobs:
            try:
                outcomes.append(await asyncio.wrap_future(job))
            except Exception:
                log.exception("detection: scoring stream %s failed", stream_batch.key.stream_id)
                self._metrics.detector_dropped_events.labels(batch.signal).inc(len(stream_batch.times))
        return self._decide(batch, extraction, ticket, outcomes)

    def _extract(self, batch: TelemetryBatch) -> Extraction:
        return self._extractor.extract_payload(batch.signal, batch.payload, batch.message)

    async def _dispatch(self, extraction: Extraction, ticket: int) -> list[tuple[StreamBatch, Any]]:
        """Find or load every stream of the request and queue its events on its shard (in order)."""
        streams = extraction.streams
        for stream_id in streams:  # this request's streams become the most recently used
            if stream_id in self._live:
                self._live.move_to_end(stream_id)
        missing = [sid for sid in streams if sid not in self._live and sid not in self._evicting]
        preloaded = dict(zip(missing, await asyncio.gather(*(self._load(sid) for sid in missing)),
                             strict=True))
        jobs = []
        for stream_id, stream_batch in streams.items():
            stream = self._live.get(stream_id)
            if stream is None:
                stream = await self._open(stream_batch.key, preloaded.get(stream_id))
            elif stream.spec.kind != DETECTOR_KIND[stream_batch.key.signal]:
                # an explicit stream id shared between metrics and spans/logs: one detector kind per id
                self._metrics.detector_dropped_events.labels(extraction.signal).inc(len(stream_batch.times))
                continue
            jobs.append((stream_batch, self._shards.submit(stream.shard, stream.score, stream_batch, ticket)))
        return jobs

    def _decide(self, batch: TelemetryBatch, extraction: Extraction, ticket: int,
                outcomes: list[ScoreOutcome]) -> Decision:
        signal = batch.signal
        records: list[AnomalyRecord] = []
        marks: dict[int, AnomalyMark] = {}
        scored = 0
        ratio_sum, ratio_count = 0.0, 0
        for outcome in outcomes:
            stream = outcome.stream
            scored += outcome.scored
            ratio_sum += outcome.ratio_sum
            ratio_count += outcome.ratio_count
            for reason, n in outcome.skipped.items():
                self._metrics.detector_skipped_points.labels(signal, reason).inc(n)
            for window in outcome.windows:
                record = build_record(stream, window, engine_version=self._engine_version,
                                      received_at=batch.received_at)
                records.append(record)
                self._metrics.anomalies_detected.labels(signal, record.severity).inc()
                mark = AnomalyMark(record.id, record.score, record.p_value, record.severity, record.detector,
                                   str(record.explanation.get("sentence", "")), record.stream_id)
                for item in window.blamed:
                    if item.request_seq == ticket and item.position >= 0:
                        current = marks.get(item.position)
                        if current is None or mark.score > current.score:
                            marks[item.position] = mark
            if outcome.state_changed:
                self._spawn(self._upsert(stream))
        self._metrics.anomaly_processing_duration.observe(max(0.0, time.time() - batch.received_at))
        if scored:
            self._metrics.detector_events.labels(signal).inc(scored)
            self._count_rate(scored)
        if ratio_count:
            mean = ratio_sum / ratio_count
            previous = self._ratio_ewma.get(signal)
            value = mean if previous is None else 0.9 * previous + 0.1 * mean
            self._ratio_ewma[signal] = value
            self._metrics.cbad_compression_ratio.labels(signal).set(value)
        if records and self._writer is not None:
            self._writer.submit(records)
        return Decision(records, marks, extraction.message)

    def _count_rate(self, n: int) -> None:
        self._rate_events += n
        now = time.monotonic()
        elapsed = now - self._rate_since
        if elapsed >= RATE_INTERVAL:
            self._metrics.cbad_events_per_second.set(self._rate_events / elapsed)
            self._rate_events = 0
            self._rate_since = now

    # --- streams: load, open, evict ------------------------------------------------------------------
    async def _load(self, stream_id: str) -> tuple[bytes | None, StreamInfo | None]:
        if self._store is None:
            return None, None
        try:
            state, info = await asyncio.gather(self._store.load_state(stream_id),
                                               self._store.get_stream(stream_id))
        except Exception:
            log.exception("detection: could not load stream %s from the store; starting it fresh", stream_id)
            return None, None
        return state, info

    def config_for(self, key: StreamKey, api_settings: dict[str, Any] | None) -> StreamConfig:
        config = resolve_stream_config(self.settings, key, api_settings)
        try:
            check_profile(config)
        except ValueError as exc:
            log.error("detection: stream %s: %s; using the %s profile", key.stream_id, exc,
                      self.settings.profile)
            config = StreamConfig(profile=self.settings.profile, enabled=config.enabled)
        return config

    async def _open(self, key: StreamKey, preloaded: tuple[bytes | None, StreamInfo | None] | None
                    ) -> LiveStream:
        pending = self._evicting.get(key.stream_id)
        info: StreamInfo | None = None
        state: bytes | None = None
        if pending is not None:
            try:
                state = await pending[0]
            except Exception:  # logged by the eviction task; the stream warms up again
                state = None
            info = await self.stream_control.get_stored(key.stream_id)
        else:
            state, info = preloaded if preloaded is not None else await self._load(key.stream_id)
        api_settings = dict(info.settings) if info is not None else {}
        spec = detector_spec(key.signal, self.settings.seed, self.settings.compressor,
                             self.config_for(key, api_settings))
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
        stream.api_settings = api_settings
        self._live[key.stream_id] = stream
        if is_new or info is None or info.state == "evicted":
            self._spawn(self._upsert(stream))
        await self._evict_beyond_limit()
        self._metrics.streams_live.set(len(self._live))
        return stream

    async def _evict_beyond_limit(self) -> None:
        while len(self._live) > self.settings.max_live_streams:
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
            if self._store is not None:
                await self._store.save_state(stream_id, data)
                if stream_id not in self._live:
                    await self._store.upsert_stream(self.stream_info(victim, state="evicted"))
        except Exception:
            log.exception("detection: could not save evicted stream %s", stream_id)
            self._metrics.detector_state_save_failures.inc()
        finally:
            entry = self._evicting.get(stream_id)
            if entry is not None and entry[0] is snapshot:
                del self._evicting[stream_id]

    # --- snapshots --------------------------------------------------------------------------------
    async def snapshot_all(self, only_dirty: bool = True) -> int:
        """Snapshot live streams (on their shard threads, after their queued work) into the store."""
        if self._store is None:
            return 0
        streams = [s for s in self._live.values() if s.dirty or not only_dirty]
        jobs = [(s, asyncio.wrap_future(self._shards.submit(s.shard, s.snapshot))) for s in streams]
        saved = 0
        for stream, job in jobs:
            try:
                data = await job
                await self._store.save_state(stream.key.stream_id, data)
                await self._store.upsert_stream(self.stream_info(stream))
                saved += 1
            except Exception:
                log.exception("detection: could not snapshot stream %s", stream.key.stream_id)
                self._metrics.detector_state_save_failures.inc()
        return saved

    async def _snapshot_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.snapshot_interval_seconds)
            try:
                await self.snapshot_all(only_dirty=True)
            except Exception:
                log.exception("detection: periodic snapshot failed")

    # --- stream info ------------------------------------------------------------------------------
    def live_stream(self, stream_id: str) -> LiveStream | None:
        return self._live.get(stream_id)

    def live_streams(self) -> list[LiveStream]:
        return list(self._live.values())

    def stream_info(self, stream: LiveStream, state: str | None = None) -> StreamInfo:
        key = stream.key
        return StreamInfo(stream_id=key.stream_id, signal=key.signal, service=key.service, name=key.name,
                          state=state or stream.state,  # type: ignore[arg-type]
                          profile=stream.spec.config.profile, settings=dict(stream.api_settings),
                          events_seen=stream.events_seen, updated_at=dt.datetime.now(dt.UTC))

    async def _upsert(self, stream: LiveStream) -> None:
        if self._store is None:
            return
        try:
            await self._store.upsert_stream(self.stream_info(stream))
        except Exception:
            log.exception("detection: could not record stream %s", stream.key.stream_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until in-flight detection and background store writes are done (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._inflight or self._background or self._evicting) and time.monotonic() < deadline:
            pending = [*self._inflight, *self._background, *(t for _, t in self._evicting.values())]
            await asyncio.wait(pending, timeout=max(0.01, deadline - time.monotonic()))


def _log_failure(what: str) -> Any:
    def done(future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("detection: %s failed", what, exc_info=future.exception())

    return done


def _annotate_and_serialize(signal: str, message: Any, payload: bytes, marks: dict[int, AnomalyMark]
                            ) -> tuple[bytes, Any]:
    """(annotated bytes, annotated message); the request is parsed here when extraction did not need to."""
    if message is None:
        message = parse_request(signal, payload)
    annotate(signal, message, marks)
    return message.SerializeToString(), message
