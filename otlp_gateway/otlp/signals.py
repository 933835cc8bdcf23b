"""Per-signal OTLP facts, for both edges of the gateway: request and response types, the gRPC service and
method, the HTTP path, the partial-success counter; and what a response's ``partial_success`` says.

One table, so the receivers and the exporter cannot disagree about any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otlp_gateway.batch import Signal


@dataclass(frozen=True, slots=True)
class SignalSpec:
    signal: Signal
    request_type: type[Message]
    response_type: type[Message]
    grpc_service: str
    """Fully qualified service name, e.g. ``opentelemetry.proto.collector.trace.v1.TraceService``."""
    http_path: str
    rejected_field: str
    """Name of the partial_success counter of rejected items."""

    @property
    def grpc_method(self) -> str:
        return f"/{self.grpc_service}/Export"

    def response(self, rejected: int = 0, message: str = "") -> Message:
        """The Export*ServiceResponse: ``partial_success`` only when items were rejected."""
        response: Any = self.response_type()
        if rejected:
            partial = response.partial_success
            setattr(partial, self.rejected_field, rejected)
            partial.error_message = message
        return response


SIGNAL_SPECS: dict[Signal, SignalSpec] = {
    "traces": SignalSpec("traces", ExportTraceServiceRequest, ExportTraceServiceResponse,
                         "opentelemetry.proto.collector.trace.v1.TraceService", "/v1/traces",
                         "rejected_spans"),
    "metrics": SignalSpec("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse,
                          "opentelemetry.proto.collector.metrics.v1.MetricsService", "/v1/metrics",
                          "rejected_data_points"),
    "logs": SignalSpec("logs", ExportLogsServiceRequest, ExportLogsServiceResponse,
                       "opentelemetry.proto.collector.logs.v1.LogsService", "/v1/logs",
                       "rejected_log_records"),
}
BY_HTTP_PATH: dict[str, SignalSpec] = {spec.http_path: spec for spec in SIGNAL_SPECS.values()}


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    """What the downstream said about an accepted request (``partial_success``)."""

    rejected: int = 0
    message: str = ""


def outcome_from_response(signal: Signal, response: Message) -> ExportOutcome:
    spec = SIGNAL_SPECS[signal]
    if not response.HasField("partial_success"):
        return ExportOutcome()
    partial: Any = response.partial_success  # type: ignore[attr-defined]  # every Export*Response has it
    return ExportOutcome(int(getattr(partial, spec.rejected_field)), partial.error_message)
