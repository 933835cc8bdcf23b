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
When the body is complete, admission takes its bytes over in one step.
"""

from __future__ import annotations

import threading

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
    """The bytes held by one body being read; ``release`` is idempotent."""

    __slots__ = ("_controller", "nbytes")

    def __init__(self, controller: AdmissionController):
        self._controller: AdmissionController | None = controller
        self.nbytes = 0

    def hold(self, nbytes: int) -> bool:
        """Grow the holding to ``nbytes`` in total; False (nothing changed) when that does not fit."""
        controller = self._controller
        if controller is None or nbytes <= self.nbytes:
            return controller is not None
        return controller._grow_transit(self, nbytes)

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

    def _grow_transit(self, transit: Transit, nbytes: int) -> bool:
        delta = nbytes - transit.nbytes
        with self._lock:
            alone = self._bytes == transit.nbytes and self._items == 0
            over = self._transit + delta > self._max_transit or self._bytes + delta > self._max_bytes
            if over and not alone:
                return False
            self._transit += delta
            self._bytes += delta
            transit.nbytes = nbytes
            self._publish()
        return True

    def _end_transit(self, transit: Transit) -> None:
        with self._lock:
            self._end_transit_locked(transit)
            self._publish()

    def _end_transit_locked(self, transit: Transit) -> None:
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
