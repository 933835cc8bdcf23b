"""Rate limits of the ``/v1`` API, in the order a request meets them.

1. Before authentication, per client address (``api.rate_limit.per_client_*``): an unauthenticated flood
   only throttles the address it comes from; it never reaches the buckets below.
2. After authentication, per API key or JWT subject (``per_key_*``): one busy caller cannot starve
   another.
3. Then the shared bucket (``GLOBAL_RATE_LIMIT_RPS`` / ``GLOBAL_RATE_LIMIT_BURST``): a ceiling on all
   authenticated ``/v1`` requests of this gateway together.

Health checks and ``/metrics`` are never throttled, and OTLP ingest has its own bucket
(``receiver.rate_limit``): nothing on :8080 can drain it.
"""

from __future__ import annotations

import math

from otlp_gateway.ratelimit import KeyedTokenBuckets, TokenBucket
from otlp_gateway.telemetry.metrics import GatewayMetrics

from .settings import RateLimitSettings


class ApiRateLimits:
    def __init__(self, settings: RateLimitSettings, shared: TokenBucket, metrics: GatewayMetrics):
        self._per_client = KeyedTokenBuckets(settings.per_client_rps, settings.per_client_burst,
                                             settings.tracked_clients)
        self._per_key = KeyedTokenBuckets(settings.per_key_rps, settings.per_key_burst,
                                          settings.tracked_clients)
        self._shared = shared
        self._metrics = metrics

    def before_auth(self, client: str) -> int | None:
        """Seconds to wait (the Retry-After) when ``client`` is over its rate, else None."""
        return self._refused(self._per_client.try_acquire(client))

    def after_auth(self, actor: str) -> int | None:
        """Seconds to wait when the caller ``actor`` (``key:<id>``, ``jwt:<sub>``) or everyone together is
        over the rate, else None. The shared bucket is charged only when the caller's own allows."""
        wait = self._per_key.try_acquire(actor)
        if wait <= 0:
            wait = self._shared.try_acquire()
        return self._refused(wait)

    def _refused(self, wait: float) -> int | None:
        if wait <= 0:
            return None
        self._metrics.rate_limited.labels("api").inc()
        return max(1, math.ceil(wait))
