"""Synthetic OTLP trace requests shared by the benchmarks (realistic 512-span batches)."""

from __future__ import annotations

import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

ROUTES = ["/cart", "/checkout", "/item/{id}", "/search", "/login", "/recommendations"]
SERVICES = ["checkout", "frontend", "cart", "payment"]


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_request(n_spans: int = 512, seed: int = 0, service: str | None = None) -> bytes:
    """One serialized ExportTraceServiceRequest of ``n_spans`` HTTP server spans."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", service or rng.choice(SERVICES)),
                                   _kv("host.name", f"node-{rng.randrange(8)}")])
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    start = 1_700_000_000_000_000_000 + seed * 1_000_000_000
    for i in range(n_spans):
        route = rng.choice(ROUTES)
        duration = int(rng.lognormvariate(15.5, 0.5))
        span = ss.spans.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8), name=f"GET {route}",
                            kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start + i * 1000,
                            end_time_unix_nano=start + i * 1000 + duration)
        span.attributes.extend([_kv("http.request.method", "GET"), _kv("http.route", route),
                                _kv("http.response.status_code", 200),
                                _kv("user_agent.original", "Mozilla/5.0"),
                                _kv("client.address", f"10.0.{rng.randrange(256)}.{rng.randrange(256)}")])
        span.status.code = Status.STATUS_CODE_OK
    return req.SerializeToString()
