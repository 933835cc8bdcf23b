"""Retry schedules: exponential backoff with jitter in the shape of the collector's exporterhelper.

One module for every retry loop of the gateway (forwarding downstream, draining the anomaly spool into the
store, preparing the store at start). Pure and clock-free: the caller measures elapsed time and sleeps;
``Backoff`` only decides how long.
"""

from __future__ import annotations

import random

from pydantic import Field

from otlp_gateway.settings_base import Duration, StrictModel


class RetrySettings(StrictModel):
    """Collector defaults (exporterhelper: 5 s initial, 30 s max interval), except that the gateway retries
    without an elapsed-time limit by default: its queues are persistent."""

    enabled: bool = True
    """Retry retryable failures; when off, a failed attempt is final (dropped and counted)."""
    initial_interval_seconds: Duration = Field(5.0, gt=0)
    """First backoff delay."""
    max_interval_seconds: Duration = Field(30.0, gt=0)
    """Upper bound of one backoff delay."""
    max_elapsed_seconds: Duration = Field(0.0, ge=0)
    """Give up after this long and count it as failed; 0 (the default) retries until it succeeds,
    bounded by the queue and spool capacity, so nothing acknowledged is dropped during a long outage
    (the collector's default is 300 s)."""
    multiplier: float = Field(1.5, ge=1.0)
    """Growth factor of the backoff delay."""
    randomization_factor: float = Field(0.5, ge=0, le=1)
    """Jitter: each delay is drawn from delay × [1 - f, 1 + f]."""


class Backoff:
    """One retry schedule (one request, one outage).

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

    def reset(self) -> None:
        """Start again from the initial interval (the failing peer answered)."""
        self._interval = self._s.initial_interval_seconds
