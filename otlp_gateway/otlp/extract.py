"""Extraction: a parsed ``Export*ServiceRequest`` -> per-stream event batches, in arrival order.

Pure functions, no I/O. Items are visited resource -> scope -> item; an item's *position* is its index
in that order, which ``annotate`` uses to find it again. ``Extractor.extract_payload`` is the entry point:
trace and log requests go through the wire-format fast path (``wire_extract``: no parse, no per-item
field access) and everything it declines through ``extract`` on the parsed message (the reference path).
On the reference path, per-item Python work is kept to the fields the detectors and the evidence need
(every attribute read from Python costs about a microsecond).

Metric points become float values: gauge and sum points their value; histograms (explicit and
exponential) three sub-streams ``<name>:count``, ``<name>:sum`` and ``<name>:mean``; summaries
``<name>:count``, ``<name>:sum`` and one ``<name>:q<quantile>`` per quantile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_gateway.otlp.canonical_cache import CanonicalCache
from otlp_gateway.streams.routing import EMPTY_PART, StreamKey, StreamRouter, service_of

REQUEST_TYPES = {"traces": ExportTraceServiceRequest, "metrics": ExportMetricsServiceRequest,
                 "logs": ExportLogsServiceRequest}


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
    """The parsed request, or ``None`` when the fast path did not need it (parse the payload then)."""
    streams: dict[str, StreamBatch]
    event_count: int


def parse_request(signal: str, payload: bytes) -> Any:
    """Parse serialized request bytes; raises ``google.protobuf.message.DecodeError`` on bad input."""
    return REQUEST_TYPES[signal].FromString(payload)


def any_value(value: Any) -> Any:
    """An ``AnyValue`` as plain Python (str, bool, int, float, bytes, list, dict or None)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _scope_groups(resource_groups: Iterable[Any],
                  scopes_field: str) -> Iterator[tuple[dict[str, Any], str, Any]]:
    """(resource attributes, service, scope group) for every scope group of a request, in order.

    Runs once per scope group, not per item, so the per-item loops of the callers stay as they were."""
    for group in resource_groups:
        res_attrs = attributes(group.resource.attributes)
        service = service_of(res_attrs)
        for scope_group in getattr(group, scopes_field):
            yield res_attrs, service, scope_group


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"cannot render {type(obj).__name__}")


def render_body(body: Any) -> str:
    """A log body as a string: the string itself, or a stable JSON rendering of other AnyValue kinds
    (sorted keys, bytes as hex, non-finite floats as their names)."""
    kind = body.WhichOneof("value")
    if kind == "string_value":
        return body.string_value
    if kind is None:
        return ""
    value = any_value(body)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


class Extractor:
    def __init__(self, router: StreamRouter):
        self.router = router
        self.canonical = CanonicalCache()
        """Same bytes as ``detectors.canonical``; one per extractor (used from one thread)."""
        from otlp_gateway.otlp.wire import WireSpanExtractor  # it imports this module

        self.wire_spans = WireSpanExtractor(router, signal="traces")
        self.wire_logs = WireSpanExtractor(router, self.wire_spans.memo, signal="logs")
        """The fast paths for trace and log requests (from their bytes); they decline what they do not
        model. They share one fragment memo (head hashes are tagged per signal)."""

    def extract_payload(self, signal: str, payload: bytes, message: Any | None = None) -> Extraction:
        """Like ``extract`` from request bytes (``message``: the parsed request, when already parsed).

        Trace and log requests take the wire-format fast path and leave ``Extraction.message`` as given (maybe
        ``None``: parse ``payload`` when the message is needed); otherwise, or when the fast path
        declines, the request is parsed (``DecodeError`` on bad input) and extracted from the message.
        """
        if signal in ("traces", "logs"):
            found = (self.wire_spans if signal == "traces" else self.wire_logs).extract(payload)
            if found is not None:
                return Extraction(signal, message, found[0], found[1])
        if message is None:
            message = parse_request(signal, payload)
        return self.extract(signal, message)

    def extract(self, signal: str, message: Any) -> Extraction:
        if signal == "traces":
            streams, count = self._spans(message)
        elif signal == "logs":
            streams, count = self._logs(message)
        elif signal == "metrics":
            streams, count = self._metrics(message)
        else:
            raise ValueError(f"unknown signal {signal!r}")
        return Extraction(signal, message, streams, count)

    def _batch(self, streams: dict[str, StreamBatch], stream_id: str, signal: str, service: str,
               name: str) -> StreamBatch:
        batch = streams.get(stream_id)
        if batch is None:
            key = StreamKey(stream_id, signal, service, name or EMPTY_PART)
            batch = streams[stream_id] = StreamBatch(key)
        return batch

    def _spans(self, message: ExportTraceServiceRequest) -> tuple[dict[str, StreamBatch], int]:
        streams: dict[str, StreamBatch] = {}
        route = self.router.stream_id
        canonical_span = self.canonical.span
        position = 0
        for res_attrs, service, ss in _scope_groups(message.resource_spans, "scope_spans"):
            for span in ss.spans:
                attrs = attributes(span.attributes)
                name = span.name
                start = span.start_time_unix_nano
                stream_id = route("traces", service, name, attrs, res_attrs)
                batch = streams.get(stream_id) or self._batch(streams, stream_id, "traces", service, name)
                event = canonical_span(name, span.kind, span.status.code, span.end_time_unix_nano - start,
                                       attrs)
                batch.add(event, span.trace_id, span.span_id, start, position)
                position += 1
        return streams, position

    def _logs(self, message: ExportLogsServiceRequest) -> tuple[dict[str, StreamBatch], int]:
        streams: dict[str, StreamBatch] = {}
        route = self.router.stream_id
        canonical_log = self.canonical.log
        position = 0
        for res_attrs, service, sl in _scope_groups(message.resource_logs, "scope_logs"):
            scope = sl.scope.name
            for record in sl.log_records:
                attrs = attributes(record.attributes)
                stream_id = route("logs", service, scope, attrs, res_attrs)
                batch = streams.get(stream_id) or self._batch(streams, stream_id, "logs", service, scope)
                body = render_body(record.body)
                event = canonical_log(body, record.severity_number, attrs)
                when = record.time_unix_nano or record.observed_time_unix_nano
                batch.add(event, record.trace_id, record.span_id, when, position)
                position += 1
        return streams, position

    def _metrics(self, message: ExportMetricsServiceRequest) -> tuple[dict[str, StreamBatch], int]:
        streams: dict[str, StreamBatch] = {}
        route = self.router.stream_id
        count = 0
        for res_attrs, service, sm in _scope_groups(message.resource_metrics, "scope_metrics"):
            for metric in sm.metrics:
                for sub_name, value, attrs, ts in _metric_values(metric):
                    stream_id = route("metrics", service, sub_name, attrs, res_attrs)
                    if sub_name != metric.name and not stream_id.endswith(sub_name):
                        # an explicit stream id still keeps the sub-streams apart
                        stream_id = f"{stream_id}{sub_name[len(metric.name):]}"
                    batch = streams.get(stream_id) or self._batch(streams, stream_id, "metrics", service,
                                                                  sub_name)
                    batch.add(value, b"", b"", ts, -1)
                    count += 1
        return streams, count


def _number(point: Any) -> float:
    return point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)


def _metric_values(metric: Any) -> list[tuple[str, float, Mapping[str, Any], int]]:
    """(sub-stream name, value, point attributes, time) for every value a metric carries, in order."""
    name = metric.name
    kind = metric.WhichOneof("data")
    out: list[tuple[str, float, Mapping[str, Any], int]] = []
    if kind in ("gauge", "sum"):
        for p in getattr(metric, kind).data_points:
            out.append((name, _number(p), attributes(p.attributes), p.time_unix_nano))
    elif kind in ("histogram", "exponential_histogram"):
        for p in getattr(metric, kind).data_points:
            attrs, ts, n = attributes(p.attributes), p.time_unix_nano, p.count
            out.append((f"{name}:count", float(n), attrs, ts))
            if p.HasField("sum"):
                out.append((f"{name}:sum", p.sum, attrs, ts))
                if n:
                    out.append((f"{name}:mean", p.sum / n, attrs, ts))
    elif kind == "summary":
        for p in metric.summary.data_points:
            attrs, ts = attributes(p.attributes), p.time_unix_nano
            out.append((f"{name}:count", float(p.count), attrs, ts))
            out.append((f"{name}:sum", p.sum, attrs, ts))
            for q in p.quantile_values:
                out.append((f"{name}:q{q.quantile:g}", q.value, attrs, ts))
    return out
