"""The detection stage's self-metrics: what was scored, found, skipped or dropped, and how fast."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Gauge

from detectors.profiles import resolve_profile
from otlp_gateway.detection.decision import Decision
from otlp_gateway.streams.live import ScoreOutcome
from otlp_gateway.telemetry.metrics import GatewayMetrics

RATE_INTERVAL = 1.0
"""Seconds over which the events-per-second gauges are averaged."""
RATIO_SMOOTHING = 0.1
"""Weight of the newest request in the compression-ratio moving average."""


class EventRate:
    """Events per second over the last ``RATE_INTERVAL`` (the gauge moves when events are counted)."""

    def __init__(self, gauge: Gauge):
        self._gauge = gauge
        self._events = 0
        self._since = time.monotonic()

    def count(self, n: int) -> None:
        self._events += n
        now = time.monotonic()
        elapsed = now - self._since
        if elapsed >= RATE_INTERVAL:
            self._gauge.set(self._events / elapsed)
            self._events = 0
            self._since = now


class DetectionMetrics:
    def __init__(self, metrics: GatewayMetrics, default_profile: str):
        self._m = metrics
        # the runbook's "Configuration Change" alert watches this series: it is set here and nowhere else
        metrics.anomaly_ncd_threshold.set(resolve_profile(default_profile).false_alarm_target)
        self._rates = {"cbad": EventRate(metrics.cbad_events_per_second),
                       "numeric": EventRate(metrics.numeric_events_per_second)}
        self._ratio_ewma: dict[str, float] = {}

    def dropped(self, signal: str, events: int) -> None:
        """Events forwarded without being scored."""
        self._m.detector_dropped_events.labels(signal).inc(events)

    def capped(self, signal: str, capped: dict[str, int]) -> None:
        """Attributes left out of detection by the stage's own extraction (the receivers count theirs)."""
        for reason, count in capped.items():
            self._m.detection_capped_attributes.labels(signal, reason).inc(count)

    def annotation_skipped(self, signal: str, reason: str) -> None:
        self._m.annotation_skipped.labels(signal, reason).inc()

    def annotation_failed(self, signal: str) -> None:
        self._m.annotation_failures.labels(signal).inc()

    def decided(self, signal: str, decision: Decision, outcomes: Sequence[ScoreOutcome],
                received_at: float) -> None:
        for record in decision.records:
            self._m.anomalies_detected.labels(signal, record.severity,
                                              self._m.service_label(record.service)).inc()
        self._m.anomaly_processing_duration.observe(max(0.0, time.time() - received_at))
        scored = 0
        ratio_sum, ratio_count = 0.0, 0
        for outcome in outcomes:
            scored += outcome.scored
            if outcome.scored:
                self._rates[outcome.stream.spec.kind].count(outcome.scored)
            ratio_sum += outcome.ratio_sum
            ratio_count += outcome.ratio_count
            for reason, n in outcome.skipped.items():
                self._m.detector_skipped_points.labels(signal, reason).inc(n)
            if outcome.series_evicted:
                self._m.cumulative_series_evicted.labels(signal).inc(outcome.series_evicted)
        if scored:
            self._m.detector_events.labels(signal).inc(scored)
        if ratio_count:
            mean = ratio_sum / ratio_count
            previous = self._ratio_ewma.get(signal)
            value = mean if previous is None else (1 - RATIO_SMOOTHING) * previous + RATIO_SMOOTHING * mean
            self._ratio_ewma[signal] = value
            self._m.cbad_compression_ratio.labels(signal).set(value)
