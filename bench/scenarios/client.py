"""One instrumented service process as the OpenTelemetry Python SDK sees it, with event times set by the
caller: spans get explicit start/end times, log records explicit timestamps, metric points explicit point
times. So ten minutes of a fault take seconds of wall time, and the gateway (which judges event time) sees
the same stream whatever the machine's speed.

Spans and logs go through the SDK's providers, batch processors and OTLP/gRPC exporters. Metrics: the
SDK's ``MeterProvider`` stamps points with the wall clock at collection, which event-time scenarios cannot
use, so points are built as the SDK's own ``MetricsData`` and handed to the SDK's ``OTLPMetricExporter``
(the same exporter and wire encoding a ``PeriodicExportingMetricReader`` uses).

``restart()`` shuts this SDK instance down and starts a new one (new exporters, new ``service.instance.id``),
as a redeployed or restarted process would.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

AttrValue = str | int | float | bool
QUEUE = 1_000_000
"""SDK batch queue bound: far above what one flush interval holds, so the SDK never drops an item."""
EXPORT_BATCH = 512
METRIC_BATCH = 60
"""Metric points per export request (one minute of a 1 s series)."""
SEVERITIES = {"DEBUG": SeverityNumber.DEBUG, "INFO": SeverityNumber.INFO, "WARN": SeverityNumber.WARN,
              "ERROR": SeverityNumber.ERROR, "FATAL": SeverityNumber.FATAL}


class SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator: unique per item, the same for the same seed."""

    def __init__(self, rng: random.Random):
        self._rng = rng

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


@dataclass
class Sent:
    """Items handed to the SDK per stream id (``signal/service/name``, the gateway's default key)."""

    per_stream: dict[str, int] = field(default_factory=dict)

    def add(self, stream: str, n: int = 1) -> None:
        self.per_stream[stream] = self.per_stream.get(stream, 0) + n

    @property
    def total(self) -> int:
        return sum(self.per_stream.values())


@dataclass
class _Points:
    kind: str  # "gauge" | "delta_sum" | "cumulative_sum"
    points: list[NumberDataPoint] = field(default_factory=list)


class ServiceClient:
    """The SDK of one service, pointed at ``endpoint`` (``host:port``, OTLP/gRPC, plaintext)."""

    def __init__(self, endpoint: str, service: str, version: str, rng: random.Random):
        self.endpoint = endpoint
        self.service = service
        self.version = version
        self.rng = rng
        self.sent = Sent()
        self.restarts = 0
        self._start()

    # --- SDK instance ---------------------------------------------------------------------------------
    def _start(self) -> None:
        instance = f"{self.service}-{self.rng.getrandbits(32):08x}"
        self.resource = Resource.create({"service.name": self.service, "service.version": self.version,
                                         "service.instance.id": instance,
                                         "deployment.environment.name": "production"})
        kw: dict[str, Any] = {"endpoint": self.endpoint, "insecure": True, "timeout": 60}
        self.tracer_provider = TracerProvider(resource=self.resource, id_generator=SeededIds(self.rng))
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(**kw), max_queue_size=QUEUE, max_export_batch_size=EXPORT_BATCH,
            schedule_delay_millis=3_600_000))
        self.logger_provider = LoggerProvider(resource=self.resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(**kw), max_queue_size=QUEUE, max_export_batch_size=EXPORT_BATCH,
            schedule_delay_millis=3_600_000))
        self.metric_exporter = OTLPMetricExporter(**kw)
        self._points: dict[str, _Points] = {}
        self._totals: dict[str, tuple[int, int]] = {}
        """Cumulative counters of this SDK instance: name -> (start time, total so far); a restart resets."""
        self._tracers: dict[str, Tracer] = {}

    def restart(self, version: str | None = None) -> None:
        """Shut this SDK instance down (flushing it) and start a new one, as a restarted process does."""
        self.close()
        if version is not None:
            self.version = version
        self.restarts += 1
        self._start()

    def set_version(self, version: str) -> None:
        """A deploy: the next SDK instance reports ``service.version=version``."""
        self.restart(version)

    # --- telemetry ------------------------------------------------------------------------------------
    def span(self, name: str, start_ns: int, duration_ns: int, attributes: Mapping[str, AttrValue],
             *, error: str | None = None, kind: SpanKind = SpanKind.SERVER, scope: str = "shop.http") -> None:
        tracer = self._tracers.get(scope)
        if tracer is None:
            tracer = self._tracers[scope] = self.tracer_provider.get_tracer(scope)
        span = tracer.start_span(name, kind=kind, start_time=start_ns, attributes=attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=start_ns + max(1, duration_ns))
        self.sent.add(f"traces/{self.service}/{name}")

    def log(self, scope: str, time_ns: int, severity: str, body: str,
            attributes: Mapping[str, AttrValue] | None = None) -> None:
        self.logger_provider.get_logger(scope).emit(
            timestamp=time_ns, observed_timestamp=time_ns, severity_text=severity,
            severity_number=SEVERITIES[severity], body=body, attributes=dict(attributes or {}))
        self.sent.add(f"logs/{self.service}/{scope}")

    def gauge(self, name: str, time_ns: int, value: float) -> None:
        self._point(name, "gauge", time_ns, time_ns, value)

    def delta_count(self, name: str, start_ns: int, time_ns: int, value: int) -> None:
        """One point of a monotonic counter in delta temporality (the count over [start, time))."""
        self._point(name, "delta_sum", start_ns, time_ns, value)

    def cumulative_count(self, name: str, time_ns: int, increment: int) -> None:
        """One point of a monotonic counter in cumulative temporality (the SDK's default): the total since
        this SDK instance started, which starts again from 0 after a restart."""
        start, total = self._totals.get(name, (time_ns, 0))
        self._totals[name] = (start, total + increment)
        self._point(name, "cumulative_sum", start, time_ns, total + increment)

    def _point(self, name: str, kind: str, start_ns: int, time_ns: int, value: float) -> None:
        series = self._points.setdefault(name, _Points(kind))
        series.points.append(NumberDataPoint(attributes={}, start_time_unix_nano=start_ns,
                                             time_unix_nano=time_ns, value=value))
        self.sent.add(f"metrics/{self.service}/{name}")
        if len(series.points) >= METRIC_BATCH:
            self._export_metric(name, series)

    def _export_metric(self, name: str, series: _Points) -> None:
        if not series.points:
            return
        temporality = (AggregationTemporality.CUMULATIVE if series.kind == "cumulative_sum" else
                       AggregationTemporality.DELTA)
        data = (Gauge(data_points=series.points) if series.kind == "gauge" else
                Sum(data_points=series.points, aggregation_temporality=temporality, is_monotonic=True))
        metric = Metric(name=name, description="", unit="1", data=data)
        scope = ScopeMetrics(scope=InstrumentationScope("shop.metrics"), metrics=[metric], schema_url="")
        request = MetricsData(resource_metrics=[ResourceMetrics(resource=self.resource, scope_metrics=[scope],
                                                                schema_url="")])
        result = self.metric_exporter.export(request)
        if result is not MetricExportResult.SUCCESS:
            raise RuntimeError(f"the gateway refused metric points of {name}: {result}")
        series.points = []

    # --- delivery -------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Export everything handed to the SDK so far (raises if an exporter gave up)."""
        for name, series in self._points.items():
            self._export_metric(name, series)
        if not self.tracer_provider.force_flush(120_000) or not self.logger_provider.force_flush(120_000):
            raise RuntimeError("the SDK could not flush within 120 s")

    def close(self) -> None:
        self.flush()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.metric_exporter.shutdown()
