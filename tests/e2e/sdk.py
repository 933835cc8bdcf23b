"""Emit telemetry through the OpenTelemetry SDK's own OTLP exporters (the real clients users run)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

Transport = Literal["grpc", "http"]


def _exporters(transport: Transport, endpoint: str, headers: dict[str, str] | None = None):
    """``endpoint``: ``host:port`` for gRPC, ``http://host:port`` for HTTP."""
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        kw = {"endpoint": endpoint, "insecure": True, "headers": headers, "timeout": 30}
        return OTLPSpanExporter(**kw), OTLPMetricExporter(**kw), OTLPLogExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers, timeout=30),
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", headers=headers, timeout=30),
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", headers=headers, timeout=30))


@dataclass
class SdkClient:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    logger: logging.Logger

    def flush(self) -> None:
        assert self.tracer_provider.force_flush(60_000)
        assert self.meter_provider.force_flush(60_000)
        assert self.logger_provider.force_flush(60_000)


@contextmanager
def sdk_client(transport: Transport, endpoint: str, service: str = "checkout",
               headers: dict[str, str] | None = None) -> Iterator[SdkClient]:
    """Providers wired to the OTLP exporters of ``transport``; flushed and shut down on exit."""
    resource = Resource.create({"service.name": service})
    spans, metrics, logs = _exporters(transport, endpoint, headers)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans, max_export_batch_size=512))
    reader = PeriodicExportingMetricReader(metrics, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
    logger = logging.getLogger(f"sdk.{service}.{transport}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    logger.addHandler(handler)
    client = SdkClient(tracer_provider, meter_provider, logger_provider, logger)
    try:
        yield client
        client.flush()
    finally:
        logger.removeHandler(handler)
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()


def emit(client: SdkClient, n_spans: int, n_logs: int, on_span: Callable[[Any], None] | None = None) -> None:
    """``n_spans`` spans over 5 names, a counter per route, ``n_logs`` INFO records."""
    tracer = client.tracer_provider.get_tracer("e2e")
    counter = client.meter_provider.get_meter("e2e").create_counter("orders_total")
    for i in range(n_spans):
        with tracer.start_as_current_span(f"GET /item/{i % 5}") as span:
            span.set_attribute("http.response.status_code", 200)
            if on_span:
                on_span(span)
        counter.add(1, {"route": f"/item/{i % 5}"})
    for i in range(n_logs):
        client.logger.info("order %d placed for user %d", i, i % 7)
