"""The one retry schedule (collector shape): interval, multiplier, cap, jitter, elapsed limit, hints."""

from __future__ import annotations

import random

from otlp_gateway.durable.backoff import Backoff, RetrySettings
from otlp_gateway.store.settings import StoreRetrySettings


def test_backoff_grows_by_multiplier_within_jitter_up_to_the_cap() -> None:
    backoff = Backoff(RetrySettings(), random.Random(1))  # collector defaults: 5 s, x1.5, 30 s, +-50 %
    intervals = [5.0, 7.5, 11.25, 16.875, 25.3125, 30.0, 30.0]
    elapsed = 0.0
    for interval in intervals:
        delay = backoff.next_delay(elapsed)
        assert delay is not None and 0.5 * interval <= delay <= 1.5 * interval
        elapsed += delay


def test_backoff_jitter_spreads_delays() -> None:
    delays = {Backoff(RetrySettings(), random.Random(seed)).next_delay(0) for seed in range(20)}
    assert len(delays) == 20


def test_backoff_hint_lengthens_never_shortens() -> None:
    settings = RetrySettings(initial_interval_seconds=1, randomization_factor=0)
    assert Backoff(settings).next_delay(0, hint=4.0) == 4.0
    assert Backoff(settings).next_delay(0, hint=0.1) == 1.0


def test_backoff_stops_at_max_elapsed_and_zero_means_forever() -> None:
    settings = RetrySettings(initial_interval_seconds=1, randomization_factor=0, max_elapsed_seconds=10)
    limited = Backoff(settings)
    assert limited.next_delay(8.5) == 1.0
    assert limited.next_delay(9.5) is None
    forever = Backoff(RetrySettings(max_elapsed_seconds=0))
    assert forever.next_delay(1e9) is not None


def test_backoff_disabled() -> None:
    assert Backoff(RetrySettings(enabled=False)).next_delay(0) is None


def test_reset_starts_again_from_the_initial_interval() -> None:
    settings = RetrySettings(initial_interval_seconds=1, randomization_factor=0, multiplier=2)
    backoff = Backoff(settings)
    assert [backoff.next_delay(0) for _ in range(3)] == [1.0, 2.0, 4.0]
    backoff.reset()
    assert backoff.next_delay(0) == 1.0


def test_the_store_schedule_has_the_same_shape_with_shorter_intervals() -> None:
    store = StoreRetrySettings()
    assert (store.initial_interval_seconds, store.max_interval_seconds) == (0.5, 15.0)
    assert (store.multiplier, store.randomization_factor, store.max_elapsed_seconds) == (1.5, 0.5, 0.0)
    backoff = Backoff(store, random.Random(3))
    delays = [backoff.next_delay(0) for _ in range(12)]
    assert all(d is not None and 0.25 <= d <= 22.5 for d in delays)
