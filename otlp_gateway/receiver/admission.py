"""Admission control: a bound on the items and bytes the receivers hold at once.

A request is admitted when its items and bytes fit under ``max_inflight_items`` / ``max_inflight_bytes``
next to what is already in flight; it stays counted until the next stage has taken it (or refused it).
Refused requests are answered at once with a retry hint (gRPC UNAVAILABLE + RetryInfo, HTTP 503 +
Retry-After), so memory stays bounded under a flood while clients back off and retry. grpcio's own
``maximum_concurrent_rpcs`` is not used: it answers RESOURCE_EXHAUSTED without RetryInfo.

A request larger than the whole budget is still admitted when nothing else is in flight, so an
oversized-but-legal request can never be refused forever.
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


class AdmissionController:
    """Shared by the gRPC and HTTP receivers of one gateway; thread-safe."""

    def __init__(self, settings: AdmissionSettings, metrics: GatewayMetrics):
        self._max_items = settings.max_inflight_items
        self._max_bytes = settings.max_inflight_bytes
        self.retry_after = settings.retry_after_seconds
        """Seconds suggested to refused clients."""
        self._metrics = metrics
        self._lock = threading.Lock()
        self._items = 0
        self._bytes = 0

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

    def try_admit(self, items: int, nbytes: int) -> Admission | None:
        """Reserve ``items`` and ``nbytes``; None when they do not fit (the caller refuses the request)."""
        with self._lock:
            idle = self._items == 0 and self._bytes == 0
            if not idle and (self._items + items > self._max_items or self._bytes + nbytes > self._max_bytes):
                return None
            self._items += items
            self._bytes += nbytes
            self._publish()
        return Admission(self, items, nbytes)

    def _give_back(self, items: int, nbytes: int) -> None:
        with self._lock:
            self._items -= items
            self._bytes -= nbytes
            self._publish()

    def _publish(self) -> None:
        self._metrics.inflight_items.set(self._items)
        self._metrics.inflight_bytes.set(self._bytes)
