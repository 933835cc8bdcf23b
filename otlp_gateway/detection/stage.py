"""The detection stage, between the receivers and the exporter: consume, ordering, shard dispatch, decision.

Flow of one request:

1. admission: when the events or bytes waiting for detection would pass their bounds, the request is
   forwarded unscored and its items counted in ``driftlock_detector_dropped_events``;
2. a place is reserved in the next stage: a request it would refuse is refused now, before scoring, so the
   client's retry is never scored twice;
3. detection runs as a task of its own: extraction on the extraction thread; then, strictly in arrival
   order (a turnstile over tickets taken on arrival), the request's streams are taken from the live-stream
   table and their events queued on their shard threads; the decision turns the outcomes into anomaly
   records (to the writer) and marks for this request's blamed items;
4. the request waits for its decision (and annotation) at most ``budget_ms``: in time, its blamed items
   are annotated and the request re-serialized (requests without anomalies keep their original bytes);
   past the budget it is forwarded unannotated while its detection goes on, counted in
   ``driftlock_annotation_skipped_total{reason="budget"}``. When detection is behind (as many requests in
   it as twice its shard threads, or the oldest one there longer than the budget), a new request does not
   wait at all: it is forwarded at once (``reason="backlog"``), and the receivers stop extracting events
   while decoding (``wants_events``): the stage extracts them itself, off the forwarding path, so
   forwarding never slows to detection's pace; past ``queue_max_*`` requests are not scored at all (step
   1). Events are scored in arrival order either way, so results depend neither on the budget, nor on
   whether detection kept up, nor on how requests were split;
5. the incident changes and score-series buckets of the request's streams go to the incident sink, in
   arrival order (``IncidentHandler.handle``, on the event loop, after the anomaly records).

The detection task is never cancelled by the caller: a scored window is always recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, cast

from otlp_gateway.batch import ReservingConsumer, TelemetryBatch
from otlp_gateway.detection.decision import Decision, decide
from otlp_gateway.detection.detector_processes import DetectorProcess
from otlp_gateway.detection.extract_processes import ExtractionProcesses
from otlp_gateway.detection.metrics import DetectionMetrics
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.detection.shards import ShardPool
from otlp_gateway.detection.turnstile import Turnstile
from otlp_gateway.errors import RetryableError
from otlp_gateway.otlp.annotate import AnomalyMark, annotate
from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec
from otlp_gateway.otlp.extract import Extraction, StreamBatch, parse_request
from otlp_gateway.serial import SerialExecutor
from otlp_gateway.store.base import AnomalyRecord, AnomalyStore
from otlp_gateway.store.leases import LeaseStore
from otlp_gateway.streams.handoff import StreamNotScored
from otlp_gateway.streams.incidents import IncidentChange
from otlp_gateway.streams.live import ScoreOutcome
from otlp_gateway.streams.ownership import StreamOwnership
from otlp_gateway.streams.records import StreamRecords
from otlp_gateway.streams.table import DetectorDefaults, LiveStreamTable
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

SHUTTING_DOWN_RETRY_AFTER = 1.0


class AnomalySink(Protocol):
    """Where anomaly records go (the anomaly writer): takes them at once, never blocks."""

    def submit(self, rows: list[AnomalyRecord]) -> None: ...


class IncidentHandler(Protocol):
    """Where incident changes go (the incident sink): takes them at once, never blocks."""

    def handle(self, outcomes: Sequence[ScoreOutcome]) -> None:
        """The incident changes and score buckets of one decided request's streams."""
        ...

    def handle_changes(self, changes: list[IncidentChange]) -> object:
        """Changes caused by operators' actions (the live-stream table's)."""
        ...


class DetectionStage:
    """A ``BatchConsumer`` and a component (``start``/``shutdown``)."""

    def __init__(self, settings: DetectionSettings, next_consumer: ReservingConsumer, table: LiveStreamTable,
                 shards: ShardPool, writer: AnomalySink | None, metrics: DetectionMetrics,
                 engine_version: str, incidents: IncidentHandler | None = None):
        self.settings = settings
        self._next = next_consumer
        self._table = table
        self._shards = shards
        self._writer = writer
        self._incidents = incidents
        table.incidents = incidents
        self._metrics = metrics
        self._engine_version = engine_version
        self._codec = RequestCodec(ExtractionOptions.of(settings))
        """Extracts batches that arrive without their extraction (the receivers extract while decoding)."""
        self._extraction = SerialExecutor("driftlock-extract")
        self._processes = ExtractionProcesses(settings.extract_processes, ExtractionOptions.of(settings)) \
            if settings.enabled and settings.extract_processes else None
        """Extract instead of the extraction thread once ready (they do not hold this process's GIL)."""
        self._annotation = SerialExecutor("driftlock-annotate")
        self._turnstile = Turnstile()
        self._budget = settings.budget_ms / 1000.0
        self._pending_events = 0
        self._pending_bytes = 0
        self._inflight: set[asyncio.Task[Decision | None]] = set()
        self._started_at: dict[asyncio.Task[Decision | None], float] = {}
        """When each request in detection started, oldest first (dicts keep insertion order)."""
        self._started = False
        self._closed = False

    @classmethod
    def create(cls, settings: DetectionSettings, next_consumer: ReservingConsumer, writer: AnomalySink | None,
               store: AnomalyStore | None, metrics: GatewayMetrics, engine_version: str,
               incidents: IncidentHandler | None = None) -> DetectionStage:
        """The stage with its collaborators: shard threads, the live-stream table over ``store``, metrics."""
        shards = ShardPool(settings.workers, processes=settings.enabled and settings.detector_processes)
        defaults = DetectorDefaults(settings.seed, settings.compressor)
        ownership = None
        if store is not None and settings.ownership.active(store.backend):
            ownership = StreamOwnership(cast(LeaseStore, store), settings.ownership, metrics)
        table = LiveStreamTable(settings.stream_settings(), defaults, shards, StreamRecords(store, metrics),
                                metrics, max_live=settings.max_live_streams,
                                snapshot_interval=settings.snapshot_interval_seconds, ownership=ownership)
        return cls(settings, next_consumer, table, shards, writer,
                   DetectionMetrics(metrics, settings.profile), engine_version, incidents)

    @property
    def extract_processes(self) -> ExtractionProcesses | None:
        """The worker processes extracting requests the receivers did not (``None``: the thread does)."""
        return self._processes

    @property
    def detector_processes(self) -> list[DetectorProcess]:
        """The shards' detector processes (empty: the detectors run in this process)."""
        return self._shards.processes

    @property
    def streams(self) -> LiveStreamTable:
        """The live-stream table (the API's stream control reads and reconfigures it)."""
        return self._table

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Returns at once; streams load their snapshots lazily on first use."""
        if self._started or self._closed:
            return
        self._started = True
        if self.settings.enabled:
            for starting in self._shards.start():  # the detector processes load the kernels meanwhile
                starting.add_done_callback(_log_failure("starting a detector process"))
            await self._table.start()
            # compile (or load from cache) the wire kernels on the extraction thread, ahead of requests
            from otlp_gateway.otlp.codec import warm_up

            warming = self._extraction.submit(warm_up)
            warming.add_done_callback(_log_failure("warming up the codec kernels"))
            if self._processes is not None:  # after the warm-up: the workers load the kernels it cached
                processes = self._processes
                warming.add_done_callback(lambda _: processes.start())

    async def shutdown(self, grace: float = 30.0) -> None:
        """Idempotent, safe without ``start``: refuse new requests, let in-flight detection finish (at most
        ``grace`` seconds), then snapshot every live stream to the store."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + grace
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=max(0.0, deadline - time.monotonic()))
        await self._table.shutdown(max(0.1, deadline - time.monotonic()))
        self._shards.shutdown(wait=False)
        self._extraction.shutdown(wait=False)
        if self._processes is not None:
            self._processes.shutdown()
        self._annotation.shutdown(wait=False)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until in-flight detection and the table's background store writes are done (tests)."""
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            await asyncio.wait(list(self._inflight), timeout=max(0.01, deadline - time.monotonic()))
        await self._table.drain(max(0.01, deadline - time.monotonic()))

    # --- BatchConsumer ----------------------------------------------------------------------------
    async def consume(self, batch: TelemetryBatch) -> None:
        if self._closed:
            raise RetryableError("detection stage is shutting down", retry_after=SHUTTING_DOWN_RETRY_AFTER)
        if not self.settings.enabled or batch.item_count == 0:
            await self._next.consume(batch)
            return
        if not self._room_for(batch):
            self._metrics.dropped(batch.signal, batch.item_count)
            await self._next.consume(batch)
            return
        reservation = self._next.reserve(batch)  # a refusal here leaves the request unscored
        try:
            behind = self._behind()
            deadline = time.monotonic() + self._budget
            task = self._start_detection(batch)
            if behind:  # it would wait the whole budget for nothing: forwarded now, scored behind the rest
                self._metrics.annotation_skipped(batch.signal, "backlog")
                decision = None
            else:
                decision = await self._decision_by(task, deadline, batch.signal)
            if decision is not None and decision.marks:
                await self._annotate(batch, decision, deadline)
            await reservation.consume(batch)
        finally:
            reservation.release()

    def wants_events(self, size: int) -> bool:
        """``ScoringConsumer``: whether the receivers should extract a request of ``size`` bytes while
        decoding it: it would be scored, and detection keeps up. When detection is behind, the request is
        forwarded at once and extracted here, off the forwarding path (or not scored at all when the
        backlog is full), so forwarding never runs at extraction's pace."""
        return (self.settings.enabled and not self._closed and not self._behind()
                and self._pending_events < self.settings.queue_max_events
                and (not self._pending_bytes or self._pending_bytes + size <= self.settings.queue_max_bytes))

    def _behind(self) -> bool:
        """Whether detection is behind: as many requests in it as its shard threads can score at once
        (two per thread), or the oldest one there for longer than the budget. A new request is decided
        after the ones ahead of it (arrival order), so waiting for its decision would hold the client;
        clients with a bounded number of requests in flight (every OTLP exporter) would then send only as
        fast as detection scores, and forwarding would run at detection's pace."""
        if not self._started_at:
            return False
        if len(self._started_at) >= 2 * self.settings.workers:
            return True
        oldest = next(iter(self._started_at.values()))
        return time.monotonic() - oldest > self._budget

    def _room_for(self, batch: TelemetryBatch) -> bool:
        # an empty backlog takes a request of any size, so no request is too large to be ever scored
        size = len(batch.payload)
        return (self._pending_events + batch.item_count <= self.settings.queue_max_events
                and (not self._pending_bytes or self._pending_bytes + size <= self.settings.queue_max_bytes))

    def _start_detection(self, batch: TelemetryBatch) -> asyncio.Task[Decision | None]:
        events, size = batch.item_count, len(batch.payload)
        self._pending_events += events
        self._pending_bytes += size
        ticket = self._turnstile.ticket()  # taken on arrival: the order streams see events in
        # detection keeps its own copy: the batch belongs to the next stage once forwarded
        task = asyncio.create_task(self._detect(dataclasses.replace(batch), ticket))
        self._inflight.add(task)
        self._started_at[task] = time.monotonic()

        def done(task: asyncio.Task[Decision | None]) -> None:
            self._pending_events -= events
            self._pending_bytes -= size
            self._inflight.discard(task)
            self._started_at.pop(task, None)

        task.add_done_callback(done)
        return task

    async def _decision_by(self, task: asyncio.Task[Decision | None], deadline: float,
                           signal: str) -> Decision | None:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
        if not done:  # forwarded now; the task goes on and stores what it finds
            self._metrics.annotation_skipped(signal, "budget")
            return None
        try:
            return task.result()
        except Exception:  # a detection fault never costs the telemetry: forward it as received
            log.exception("detection: deciding on a %s request failed; forwarded unscored", signal)
            return None

    async def _annotate(self, batch: TelemetryBatch, decision: Decision, deadline: float) -> None:
        message = decision.message if decision.message is not None else batch.message
        job = asyncio.wrap_future(self._annotation.submit(_annotate_and_serialize, batch.signal, message,
                                                          batch.payload, decision.marks))
        done, _ = await asyncio.wait({job}, timeout=max(0.0, deadline - time.monotonic()))
        if not done:
            self._metrics.annotation_skipped(batch.signal, "budget")
            batch.message = None  # the annotation thread may still be editing it
            return
        try:
            batch.payload, batch.message = job.result()
        except Exception:  # annotation is best effort; the original bytes still go out
            log.exception("detection: annotation failed; forwarding the request unannotated")
            self._metrics.annotation_failed(batch.signal)

    # --- detection --------------------------------------------------------------------------------
    async def _detect(self, batch: TelemetryBatch, ticket: int) -> Decision | None:
        try:
            try:
                extraction = batch.extraction if isinstance(batch.extraction, Extraction) else \
                    await self._extract(batch)
            except Exception as exc:
                log.warning("detection: could not extract %s request (%s); forwarded unscored",
                            batch.signal, exc)
                self._metrics.dropped(batch.signal, batch.item_count)
                return None
            await self._turnstile.wait(ticket)
            try:
                jobs = await self._dispatch(extraction, ticket)
            except Exception:  # never lose the batch over a detection fault; it goes out unscored
                log.exception("detection: could not dispatch a %s request; forwarded unscored", batch.signal)
                self._metrics.dropped(batch.signal, batch.item_count)
                return None
        finally:
            self._turnstile.release(ticket)
        outcomes: list[ScoreOutcome] = []
        await _all_done([job for _, job in jobs])
        for stream_batch, job in jobs:
            try:
                outcomes.append(job.result())
            except StreamNotScored:
                continue  # another gateway owns the stream: forwarded unscored, counted by the table
            except Exception:
                log.exception("detection: scoring stream %s failed", stream_batch.key.stream_id)
                self._metrics.dropped(batch.signal, len(stream_batch.times))
        decision = decide(outcomes, ticket=ticket, received_at=batch.received_at,
                          engine_version=self._engine_version, message=extraction.message)
        for outcome in outcomes:
            if outcome.state_changed:
                self._table.changed(outcome.stream)
        self._metrics.decided(batch.signal, decision, outcomes, batch.received_at)
        if decision.records and self._writer is not None:
            self._writer.submit(decision.records)
        if self._incidents is not None:
            try:
                self._incidents.handle(outcomes)
            except Exception:  # incidents never cost the telemetry or its anomalies
                log.exception("detection: handing a %s request's incident changes over failed", batch.signal)
        return decision

    async def _extract(self, batch: TelemetryBatch) -> Extraction:
        """A request the receiver did not extract: on a worker process when one is ready, else on the
        extraction thread (same result either way)."""
        extraction = None
        if self._processes is not None:
            extraction = await self._processes.extract(batch.signal, batch.payload)
        if extraction is None:
            extraction = await self._extraction.run(self._codec.extract, batch.signal, batch.payload)
        # the receiver counted nothing for a request it did not extract: the caps it hit count here
        self._metrics.capped(batch.signal, extraction.capped)
        return extraction

    async def _dispatch(self, extraction: Extraction, ticket: int
                        ) -> list[tuple[StreamBatch, Future[ScoreOutcome]]]:
        """Take every stream of the request from the table and queue its events on its shard (in order)."""
        streams = extraction.streams
        prepared = await self._table.prepare(b.key for b in streams.values())
        jobs = []
        for stream_batch in streams.values():
            job = await self._table.submit(stream_batch, ticket, prepared)
            if job is not None:  # None: not scored here, counted by the table
                jobs.append((stream_batch, job))
        return jobs


def _all_done(jobs: Sequence[Future[Any]]) -> asyncio.Future[None]:
    """Done once every job is (results and exceptions stay in the jobs). One wake-up of the event loop for
    a request's streams, where awaiting each job's future woke it once per stream."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    left = len(jobs)
    if not left:
        waiter.set_result(None)
        return waiter
    lock = threading.Lock()

    def one_done(_: Future[Any]) -> None:
        nonlocal left
        with lock:
            left -= 1
            last = left == 0
        if last:
            loop.call_soon_threadsafe(_settle, waiter)

    for job in jobs:
        job.add_done_callback(one_done)
    return waiter


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _log_failure(what: str) -> Callable[[Future[Any]], None]:
    def done(future: Future[Any]) -> None:
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
