"""Exponential backoff with jitter, in the shape of the collector's exporterhelper retry sender.

Pure and clock-free: the caller measures elapsed time and sleeps; this only decides how long.
"""

from __future__ import annotations

import random

from otlp_gateway.exporter.settings import RetrySettings


class Backoff:
    """One export's retry schedule.

    ``next_delay(elapsed, hint)`` returns the seconds to wait before the next attempt, or ``None`` when
    retrying is disabled or the wait would overrun ``max_elapsed_seconds`` (0 = no limit). A server hint
    (RetryInfo / Retry-After) lengthens the wait, never shortens it, as the collector does.
    """

    def __init__(self, settings: RetrySettings, rng: random.Random | None = None):
        self._s = settings
        self._rng = rng or random.Random()
        self._interval = settings.initial_interval_seconds

    def next_delay(self, elapsed: float, hint: float | None = None) -> float | None:
        s = self._s
        if not s.enabled:
            return None
        spread = s.randomization_factor * self._interval
        delay = self._rng.uniform(self._interval - spread, self._interval + spread)
        self._interval = min(self._interval * s.multiplier, s.max_interval_seconds)
        if hint is not None and hint > delay:
            delay = hint
        if s.max_elapsed_seconds and elapsed + delay > s.max_elapsed_seconds:
            return None
        return delay
