"""Token buckets: one shared bucket (``GLOBAL_RATE_LIMIT_RPS`` / ``_BURST`` for the API,
``receiver.rate_limit`` for ingest) and buckets per key (client address before authentication, API key
after it)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
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


class KeyedTokenBuckets:
    """One token bucket per key (a client address, an API key), all with the same rate and size.

    Memory is bounded: beyond ``max_keys`` the least recently seen key's bucket is forgotten (it comes
    back full, which is the cost of the bound: a key seen that rarely was not flooding)."""

    def __init__(self, rate_per_second: float, burst: int, max_keys: int,
                 clock: Callable[[], float] = time.monotonic):
        if max_keys <= 0:
            raise ValueError("max_keys must be positive")
        TokenBucket(rate_per_second, burst, clock)  # validates rate and burst
        self._rate = rate_per_second
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def try_acquire(self, key: str, tokens: float = 1.0) -> float:
        """As ``TokenBucket.try_acquire``, on ``key``'s bucket."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._clock)
                if len(self._buckets) > self._max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
        return bucket.try_acquire(tokens)

    def __len__(self) -> int:
        return len(self._buckets)
