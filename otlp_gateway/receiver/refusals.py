"""Whether ingest is being refused right now, for ``/readyz``.

Every refusal that says "this gateway cannot take data now" (in-flight limit reached, export queue or
spool full, the disk full under the spool, the next stage failing) is recorded here by both receivers;
rate limiting, bad input and draining are not (they say nothing about this gateway's capacity, or
readiness already reports them). Once every request has been refused for ``refusing_after_seconds``
without one accepted in between, the gateway reports not ready with the last reason, so a load balancer
sends clients elsewhere. One accepted request ends that; so does ``recheck_after_seconds`` without any
refusal, because a gateway out of rotation gets no traffic that could prove it recovered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from otlp_gateway.receiver.settings import ReadinessSettings


class IngestRefusals:
    """Shared by the gRPC and HTTP receivers of one gateway; thread-safe."""

    def __init__(self, settings: ReadinessSettings, clock: Callable[[], float] = time.monotonic):
        self._after = settings.refusing_after_seconds
        self._recheck = settings.recheck_after_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last = 0.0
        self._why = ""

    def refused(self, why: str) -> None:
        now = self._clock()
        with self._lock:
            if self._since is None or now - self._last > self._recheck:
                self._since = now
            self._last = now
            self._why = why

    def accepted(self) -> None:
        with self._lock:
            self._since = None

    def reason(self) -> str | None:
        """Why ingest counts as refused now, or None."""
        now = self._clock()
        with self._lock:
            if self._since is None or now - self._last > self._recheck:
                return None
            streak = self._last - self._since
            if streak < self._after:
                return None
            return f"every ingest request refused for {streak:.0f} s; last refusal: {self._why}"
