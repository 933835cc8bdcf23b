"""Per-signal facts of the receiving side: request type, validator, gRPC service, HTTP path.

The response type, paths and partial-success field come from ``otlp_gateway.otlp.signals`` so the
two edges of the gateway cannot disagree about them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_gateway.batch import SIGNALS, Signal
from otlp_gateway.otlp.signals import SIGNAL_SPECS
from otlp_gateway.otlp.validate import VALIDATORS, Validation


@dataclass(frozen=True, slots=True)
class ReceiverSignal:
    signal: Signal
    request_type: type[Message]
    response_type: type[Message]
    rejected_field: str
    grpc_service: str
    """Fully qualified service name, e.g. ``opentelemetry.proto.collector.trace.v1.TraceService``."""
    http_path: str
    validate: Callable[[Message], Validation]

    def response(self, verdict: Validation) -> Message:
        """The Export*ServiceResponse for ``verdict``: ``partial_success`` only when items were rejected."""
        response = self.response_type()
        if verdict.rejected:
            partial = response.partial_success  # type: ignore[attr-defined]
            setattr(partial, self.rejected_field, verdict.rejected)
            partial.error_message = verdict.message
        return response


_REQUEST_TYPES: dict[Signal, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def _build(signal: Signal) -> ReceiverSignal:
    spec = SIGNAL_SPECS[signal]
    service, _, _method = spec.grpc_method.lstrip("/").rpartition("/")
    return ReceiverSignal(signal, _REQUEST_TYPES[signal], spec.response_type, spec.rejected_field, service,
                          spec.http_path, VALIDATORS[signal])


RECEIVER_SIGNALS: dict[Signal, ReceiverSignal] = {signal: _build(signal) for signal in SIGNALS}
BY_HTTP_PATH: dict[str, ReceiverSignal] = {spec.http_path: spec for spec in RECEIVER_SIGNALS.values()}
