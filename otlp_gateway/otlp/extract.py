"""Extraction results: a request's items as per-stream event batches, in arrival order.

``otlp_gateway.otlp.codec.RequestCodec`` produces them (spans and log records from the request bytes by
the wire walk, metric points from the parsed message); the detection stage consumes them. An item's
*position* is its index in resource -> scope -> item order, which ``annotate`` uses to find it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_gateway.streams.routing import StreamKey

REQUEST_TYPES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest, "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest}


@dataclass(frozen=True, slots=True)
class CumulativePoint:
    """The running totals behind one metric value of cumulative temporality, as the point carried them.

    The stream turns them into per-interval deltas (``otlp_gateway.streams.cumulative``); extraction only
    reads them off the point, since the previous point of the series may have come in an earlier request.
    """

    series: str
    """Identity of the series within its stream: resource, scope, metric, sub-stream and point attributes."""
    start_ns: int
    """``start_time_unix_nano`` (0 when not given): a new start time means the counter restarted."""
    monotonic: bool
    """A drop of a monotonic total is a reset too (histogram and summary counts and sums are monotonic)."""
    total: float
    """The running value: the sum's value, or the histogram's / summary's sum (0 when it has none)."""
    count: float | None = None
    """The histogram's / summary's running count; ``None`` for a sum."""
    part: str = "value"
    """Which number the stream takes: ``value`` (a sum), ``count``, ``sum`` or ``mean`` (sum / count)."""


@dataclass(slots=True)
class StreamBatch:
    """The events of one stream found in one request, in arrival order (lists stay aligned)."""

    key: StreamKey
    events: list[Any] = field(default_factory=list)
    """Canonical event bytes (spans, logs) or float values (metric points)."""
    trace_ids: list[bytes] = field(default_factory=list)
    span_ids: list[bytes] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    """Item timestamps in unix nanoseconds (span start, log time, point time)."""
    positions: list[int] = field(default_factory=list)
    """Position of each item in the request (-1 for metric points: never annotated)."""
    cumulative: list[CumulativePoint | None] | None = None
    """Metric streams: per point, the running totals when the point is cumulative (``None``: the value is
    used as it is: gauges, delta temporality, summary quantiles). ``None`` for spans and logs."""

    def add(self, event: Any, trace_id: bytes, span_id: bytes, time: int, position: int) -> None:
        """Append one item to every aligned list."""
        self.events.append(event)
        self.trace_ids.append(trace_id)
        self.span_ids.append(span_id)
        self.times.append(time)
        self.positions.append(position)


@dataclass(slots=True)
class Extraction:
    signal: str
    message: Any
    """The parsed request when decoding parsed it (metrics, OTLP/JSON, requests that lost items), else
    ``None`` (parse the payload when the message is needed, e.g. to annotate)."""
    streams: dict[str, StreamBatch]
    event_count: int
    capped: dict[str, int] = field(default_factory=dict)
    """Attributes left out of the events per reason (``codec.CAPPED_*``), when there were any: whoever
    extracts the request (a receiver while decoding, or the detection stage later) counts them."""


def parse_request(signal: str, payload: bytes) -> Any:
    """Parse serialized request bytes; raises ``google.protobuf.message.DecodeError`` on bad input."""
    return REQUEST_TYPES[signal].FromString(payload)
