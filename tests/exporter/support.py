"""Small builders shared by the exporter tests: OTLP requests with recognisable ids, settings, runners."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_gateway.batch import Signal, TelemetryBatch
from otlp_gateway.exporter import Exporter
from otlp_gateway.exporter.settings import ExporterSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.waiting import eventually  # noqa: F401  (re-exported)

SPANS_PER_CRASH_BATCH = 50
"""Batch size the crash-test child uses (the parent rebuilds the same payloads to compare)."""

FAST_RETRY = {"initial_interval_seconds": 0.01, "max_interval_seconds": 0.05, "max_elapsed_seconds": 0}


def traces_payload(tag: str, spans: int = 4) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(spans):
        span = scope.spans.add(name=f"{tag}/{i}", trace_id=bytes(range(16)), span_id=i.to_bytes(8, "big"))
        span.attributes.add(key="batch", value={"string_value": tag})
    return request.SerializeToString()


def metrics_payload(tag: str, points: int = 4) -> bytes:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name=f"m.{tag}")
    for i in range(points):
        metric.gauge.data_points.add(as_double=float(i), time_unix_nano=i + 1)
    return request.SerializeToString()


def logs_payload(tag: str, records: int = 4) -> bytes:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for i in range(records):
        scope.log_records.add(body={"string_value": f"{tag} line {i}"}, severity_number=9)
    return request.SerializeToString()


PAYLOADS = {"traces": traces_payload, "metrics": metrics_payload, "logs": logs_payload}


def batch(signal: Signal, tag: str, items: int = 4) -> TelemetryBatch:
    return TelemetryBatch(signal=signal, payload=PAYLOADS[signal](tag, items), item_count=items)


def settings(endpoint: str | None, **overrides: Any) -> ExporterSettings:
    data: dict[str, Any] = {"endpoint": endpoint, "retry": dict(FAST_RETRY)}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return ExporterSettings.model_validate(data)


def new_exporter(endpoint: str | None, data_dir: Path, **overrides: Any) -> tuple[Exporter, GatewayMetrics]:
    metrics = GatewayMetrics()
    return Exporter(settings(endpoint, **overrides), data_dir, metrics), metrics


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    """Run one async scenario on a fresh loop, with a hard deadline so a hang fails instead of stalling."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
