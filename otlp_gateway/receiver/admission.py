"""Admission control: a bound on the items and bytes the receivers hold at once.

A request is admitted when its items and bytes fit under ``max_inflight_items`` / ``max_inflight_bytes``
next to what is already in flight; it stays counted until the next stage has taken it (or refused it).
Refused requests are answered at once with a retry hint (gRPC UNAVAILABLE + RetryInfo, HTTP 503 +
Retry-After), so memory stays bounded under a flood while clients back off and retry. grpcio's own
``maximum_concurrent_rpcs`` is not used: it answers RESOURCE_EXHAUSTED without RetryInfo.

A request larger than the whole budget is still admitted when nothing else is in flight, so an
oversized-but-legal request can never be refused forever.

OTLP/HTTP bodies are counted while they are still being read (a ``Transit``): the bytes received so far
(decompressed) hold their share of ``max_inflight_bytes`` and of the smaller ``max_transit_bytes``, so
stalled or slow uploads cannot hold unbounded memory, nor crowd out requests that have fully arrived.
When the body is complete, it stops counting against ``max_transit_bytes`` but keeps its share of
``max_inflight_bytes`` while it waits for a decode thread and is decoded; then admission takes its bytes
over in one step. OTLP/gRPC requests arrive whole: their bytes are held the same way from the moment the
handler sees them (``hold_arrived``), so requests queued for decoding count against the budget too.

Bytes alone do not bound how long a request waits: under a flood the event loop and the decode threads
fall behind, and every request (even one that will be refused) waits seconds before anything answers it.
The queues a request passes register a probe of their current delay (``watch_delay``); while one of them
is behind by more than ``max_queue_delay_seconds``, new requests are refused at once with the retry hint.
Refusing costs little, so the queues drain, and clients hear back while their deadlines still hold.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from otlp_gateway.receiver.loop_lag import LoopLag
from otlp_gateway.receiver.settings import AdmissionSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics


class Admission:
    """One admitted request's share of the budget; ``release`` is idempotent."""

    __slots__ = ("_controller", "items", "nbytes")

    def __init__(self, controller: AdmissionController, items: int, nbytes: int):
        self._controller: AdmissionController | None = controller
        self.items = items
        self.nbytes = nbytes

    def release(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller._give_back(self.items, self.nbytes)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Transit:
    """The bytes held by one body, being read (``reading``) or arrived and not yet admitted; ``release``
    is idempotent."""

    __slots__ = ("_controller", "nbytes", "reading")

    def __init__(self, controller: AdmissionController, reading: bool = True):
        self._controller: AdmissionController | None = controller
        self.nbytes = 0
        self.reading = reading

    def hold(self, nbytes: int) -> bool:
        """Grow the holding to ``nbytes`` in total; False (nothing changed) when that does not fit."""
        controller = self._controller
        if controller is None or nbytes <= self.nbytes:
            return controller is not None
        return controller._grow_transit(self, nbytes)

    def arrived(self) -> None:
        """The whole body is read: it no longer counts against the bytes-in-transit budget."""
        controller = self._controller
        if controller is not None and self.reading:
            controller._arrive(self)

    def release(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None and self.nbytes:
            controller._end_transit(self)

    def __enter__(self) -> Transit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AdmissionController:
    """Shared by the gRPC and HTTP receivers of one gateway; thread-safe."""

    def __init__(self, settings: AdmissionSettings, metrics: GatewayMetrics):
        self._max_items = settings.max_inflight_items
        self._max_bytes = settings.max_inflight_bytes
        self._max_transit = settings.max_transit_bytes
        self.retry_after = settings.retry_after_seconds
        """Seconds suggested to refused clients."""
        self._max_delay = settings.max_queue_delay_seconds
        self._delays: dict[str, list[Callable[[], float]]] = {}
        self._loops: dict[asyncio.AbstractEventLoop, LoopLag] = {}
        self._metrics = metrics
        self._lock = threading.Lock()
        self._items = 0
        self._bytes = 0
        self._transit = 0

    @property
    def inflight_items(self) -> int:
        return self._items

    @property
    def inflight_bytes(self) -> int:
        return self._bytes

    @property
    def saturated(self) -> bool:
        """True when no further request could be admitted (checked before reading or parsing a body)."""
        return self._items >= self._max_items or self._bytes >= self._max_bytes

    def watch_delay(self, queue: str, probe: Callable[[], float]) -> None:
        """Count ``probe()`` (seconds the oldest request in ``queue`` has waited) in ``behind``; a queue
        may have several probes (one pool per receiver in tests), its delay is their largest."""
        probes = self._delays.setdefault(queue, [])
        if probe in probes:
            return
        probes.append(probe)
        if len(probes) == 1:
            self._metrics.ingest_queue_delay.labels(queue).set_function(lambda: self._delay(queue))

    def watch_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch how late ``loop`` (the receivers' event loop; called on it) runs (idempotent)."""
        if loop not in self._loops:
            lag = self._loops[loop] = LoopLag(loop)
            self.watch_delay("event_loop", lag.seconds)

    def stop_watching(self, loop: asyncio.AbstractEventLoop) -> None:
        lag = self._loops.pop(loop, None)
        if lag is not None:
            lag.stop()
            self._delays["event_loop"].remove(lag.seconds)

    def _delay(self, queue: str) -> float:
        return max((probe() for probe in self._delays.get(queue, ())), default=0.0)

    def behind(self) -> tuple[str, float] | None:
        """The first queue whose delay is over ``max_queue_delay_seconds``, with that delay; None when none
        is (checked before reading or parsing a body)."""
        for queue in self._delays:
            delay = self._delay(queue)
            if delay > self._max_delay:
                return queue, delay
        return None

    @property
    def transit_bytes(self) -> int:
        return self._transit

    def try_admit(self, items: int, nbytes: int, transit: Transit | None = None) -> Admission | None:
        """Reserve ``items`` and ``nbytes``; None when they do not fit (the caller refuses the request).

        ``transit``: the body's bytes already held while it was read; they are taken over on success."""
        with self._lock:
            held = transit.nbytes if transit is not None and transit._controller is self else 0
            others = self._bytes - held
            idle = self._items == 0 and others == 0
            if not idle and (self._items + items > self._max_items or others + nbytes > self._max_bytes):
                return None
            if held:
                assert transit is not None
                self._end_transit_locked(transit)
            self._items += items
            self._bytes += nbytes
            self._publish()
        return Admission(self, items, nbytes)

    def open_transit(self) -> Transit:
        """Start counting a body being read (it holds nothing until its first ``hold``)."""
        return Transit(self)

    def hold_arrived(self, nbytes: int) -> Transit | None:
        """Hold a whole request body until it is admitted or refused; None when it does not fit (the caller
        refuses the request). Like ``try_admit``, a body larger than the budget fits when nothing else is
        held."""
        transit = Transit(self, reading=False)
        return transit if transit.hold(nbytes) else None

    def _grow_transit(self, transit: Transit, nbytes: int) -> bool:
        delta = nbytes - transit.nbytes
        with self._lock:
            alone = self._bytes == transit.nbytes and self._items == 0
            over = self._bytes + delta > self._max_bytes or (
                transit.reading and self._transit + delta > self._max_transit)
            if over and not alone:
                return False
            if transit.reading:
                self._transit += delta
            self._bytes += delta
            transit.nbytes = nbytes
            self._publish()
        return True

    def _end_transit(self, transit: Transit) -> None:
        with self._lock:
            self._end_transit_locked(transit)
            self._publish()

    def _arrive(self, transit: Transit) -> None:
        with self._lock:
            if transit.reading:
                self._transit -= transit.nbytes
                transit.reading = False
                self._publish()

    def _end_transit_locked(self, transit: Transit) -> None:
        if transit.reading:
            self._transit -= transit.nbytes
        self._bytes -= transit.nbytes
        transit.nbytes = 0
        transit._controller = None

    def _give_back(self, items: int, nbytes: int) -> None:
        with self._lock:
            self._items -= items
            self._bytes -= nbytes
            self._publish()

    def _publish(self) -> None:
        self._metrics.inflight_items.set(self._items)
        self._metrics.inflight_bytes.set(self._bytes)
        self._metrics.transit_bytes.set(self._transit)
