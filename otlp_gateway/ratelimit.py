"""The global token bucket (``GLOBAL_RATE_LIMIT_RPS`` / ``GLOBAL_RATE_LIMIT_BURST``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Classic token bucket; thread-safe; ``try_acquire`` never blocks."""

    def __init__(self, rate_per_second: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate_per_second <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self._rate = float(rate_per_second)
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def try_acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` if available and return 0.0; otherwise take nothing and return the seconds
        to wait until they would be (the Retry-After / RetryInfo hint)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= tokens:
                self._tokens -= tokens
                return 0.0
            return (tokens - self._tokens) / self._rate
