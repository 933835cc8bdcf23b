"""The OpenTelemetry SDK's own OTLP exporters and SDK-made telemetry, for the receiver tests."""

from __future__ import annotations

from typing import Literal

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

Transport = Literal["grpc", "http"]
RESOURCE = Resource.create({"service.name": "receiver-tests", "deployment.environment": "test"})


def exporters(transport: Transport, endpoint: str, **kw):
    """(span, metric, log) exporters of ``transport``; ``endpoint`` is host:port (gRPC) or a base URL."""
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        kw.setdefault("insecure", "credentials" not in kw)
        return (OTLPSpanExporter(endpoint=endpoint, **kw), OTLPMetricExporter(endpoint=endpoint, **kw),
                OTLPLogExporter(endpoint=endpoint, **kw))
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", **kw),
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", **kw),
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", **kw))


def make_spans(count: int = 3):
    """SDK-made spans: a parent with children, attributes of several types, an event and a link."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("receiver.tests", "1.2.3")
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER,
                                      attributes={"http.method": "GET", "http.status_code": 200}) as parent:
        link = Link(parent.get_span_context(), {"link.kind": "sibling"})
        for i in range(count - 1):
            with tracer.start_as_current_span(f"query {i}", links=[link],
                                              attributes={"db.rows": i, "db.ok": True, "ratio": 0.5}) as span:
                span.add_event("fetched", {"rows": i})
    provider.shutdown()
    return memory.get_finished_spans()


def encoded_spans(spans) -> bytes:
    """The bytes the SDK exporters put on the wire for ``spans`` (its own encoder)."""
    return encode_spans(spans).SerializeToString()


def send_metrics(exporter) -> None:
    """A counter (total 7) and a histogram (3 values) through a PeriodicExportingMetricReader."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("receiver.tests")
    counter = meter.create_counter("orders.placed", unit="1", description="orders placed")
    histogram = meter.create_histogram("order.value", unit="EUR")
    counter.add(3, {"region": "eu"})
    counter.add(4, {"region": "eu"})
    for value in (10.0, 20.0, 30.5):
        histogram.record(value, {"region": "eu"})
    assert provider.force_flush(30_000)
    provider.shutdown()  # exports once more: tests look at the first metrics batch


def send_logs(exporter, messages: list[str]) -> tuple[list, bytes]:
    """Emit ``messages`` through a LoggerProvider inside a span; returns the SDK records and the encoding of
    the last one (the bytes its request carried)."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("receiver.tests", "1.0")
    tracer_provider = TracerProvider(resource=RESOURCE)
    with tracer_provider.get_tracer("receiver.tests").start_as_current_span("work"):
        for message in messages:
            logger.emit(body=message, severity_number=SeverityNumber.WARN, severity_text="WARN",
                        attributes={"order.id": 42})
    assert provider.force_flush(30_000)
    provider.shutdown()
    records = memory.get_finished_logs()
    return list(records), encode_logs(records[-1:]).SerializeToString()
