"""Per-signal OTLP facts the transports need: the gRPC method, the HTTP path and the response type."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otlp_gateway.batch import Signal


@dataclass(frozen=True, slots=True)
class SignalSpec:
    grpc_method: str
    http_path: str
    response_type: type[Message]
    rejected_field: str
    """Name of the partial_success counter of rejected items."""


SIGNAL_SPECS: dict[Signal, SignalSpec] = {
    "traces": SignalSpec("/opentelemetry.proto.collector.trace.v1.TraceService/Export", "/v1/traces",
                         ExportTraceServiceResponse, "rejected_spans"),
    "metrics": SignalSpec("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", "/v1/metrics",
                          ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": SignalSpec("/opentelemetry.proto.collector.logs.v1.LogsService/Export", "/v1/logs",
                       ExportLogsServiceResponse, "rejected_log_records"),
}


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    """What the downstream said about an accepted request (``partial_success``)."""

    rejected: int = 0
    message: str = ""


def outcome_from_response(signal: Signal, response: Message) -> ExportOutcome:
    spec = SIGNAL_SPECS[signal]
    if not response.HasField("partial_success"):  # type: ignore[attr-defined]
        return ExportOutcome()
    partial = response.partial_success  # type: ignore[attr-defined]
    return ExportOutcome(int(getattr(partial, spec.rejected_field)), partial.error_message)
