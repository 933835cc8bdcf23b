"""Builders of OTLP export requests for the pipeline tests and the benchmark (deterministic)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    else:
        v = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=v)


@dataclass
class SpanSpec:
    service: str
    name: str
    duration_ns: int
    status: int = 0
    kind: int = 2
    attrs: dict[str, object] = field(default_factory=dict)
    trace_id: bytes = b""
    span_id: bytes = b""
    start_ns: int = 0


@dataclass
class LogSpec:
    service: str
    scope: str
    body: str
    severity: int = 9
    attrs: dict[str, object] = field(default_factory=dict)
    trace_id: bytes = b""
    span_id: bytes = b""
    time_ns: int = 0


def traces_request(spans: Sequence[SpanSpec], resource_attrs: dict[str, object] | None = None
                   ) -> ExportTraceServiceRequest:
    """One ResourceSpans per run of consecutive spans of the same service (order preserved)."""
    req = ExportTraceServiceRequest()
    current = None
    for s in spans:
        if current is None or current[0] != s.service:
            rs = req.resource_spans.add()
            rs.resource.attributes.append(kv("service.name", s.service))
            for k, v in (resource_attrs or {}).items():
                rs.resource.attributes.append(kv(k, v))
            ss = rs.scope_spans.add()
            ss.scope.name = "test-scope"
            current = (s.service, ss)
        span = current[1].spans.add(name=s.name, kind=s.kind, start_time_unix_nano=s.start_ns,
                                    end_time_unix_nano=s.start_ns + s.duration_ns,
                                    trace_id=s.trace_id, span_id=s.span_id)
        span.status.code = s.status
        for k, v in s.attrs.items():
            span.attributes.append(kv(k, v))
    return req


def logs_request(records: Sequence[LogSpec]) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    current = None
    for r in records:
        if current is None or current[0] != (r.service, r.scope):
            rl = req.resource_logs.add()
            rl.resource.attributes.append(kv("service.name", r.service))
            sl = rl.scope_logs.add()
            sl.scope.name = r.scope
            current = ((r.service, r.scope), sl)
        rec = current[1].log_records.add(time_unix_nano=r.time_ns, severity_number=r.severity,
                                         trace_id=r.trace_id, span_id=r.span_id)
        rec.body.string_value = r.body
        for k, v in r.attrs.items():
            rec.attributes.append(kv(k, v))
    return req


def gauge_request(service: str, name: str, values: Sequence[float], start_ns: int = 10**18,
                  step_ns: int = 10**9) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", service))
    metric = rm.scope_metrics.add().metrics.add(name=name)
    for i, v in enumerate(values):
        metric.gauge.data_points.add(as_double=float(v), time_unix_nano=start_ns + i * step_ns)
    return req


ROUTES = ("/api/cart", "/api/items", "/api/users", "/api/checkout")


def ids(rng: random.Random) -> tuple[bytes, bytes]:
    return rng.randbytes(16), rng.randbytes(8)


def normal_spans(n: int, seed: int, services: Sequence[str] = ("checkout",),
                 names: Sequence[str] = ("GET /api",),
                 t0: int = 1_700_000_000 * 10**9) -> list[SpanSpec]:
    """Stationary traffic: a few routes, OK statuses, durations around 2-8 ms, random ids."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        trace_id, span_id = ids(rng)
        out.append(SpanSpec(
            service=services[i % len(services)], name=names[(i // len(services)) % len(names)],
            duration_ns=rng.randint(2_000_000, 8_000_000), status=rng.choice((0, 0, 1)),
            attrs={"http.method": "GET", "http.route": rng.choice(ROUTES), "http.status_code": 200,
                   "net.peer.port": rng.randint(30000, 60000), "request_id": rng.randbytes(6).hex()},
            trace_id=trace_id, span_id=span_id, start_ns=t0 + i * 1_000_000))
    return out


LOG_TEMPLATES = (
    "user {u} logged in from {ip}",
    "fetched {n} items from cache in {ms} ms",
    "order {o} created with {n} lines",
    "payment authorized for order {o}",
    "session {u} refreshed",
)


def normal_logs(n: int, seed: int, service: str = "checkout", scope: str = "app.orders",
                t0: int = 1_700_000_000 * 10**9) -> list[LogSpec]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        body = rng.choice(LOG_TEMPLATES).format(u=rng.randint(1, 10**6), ip=f"10.0.{rng.randint(0, 255)}.7",
                                                n=rng.randint(1, 50), ms=rng.randint(1, 30),
                                                o=rng.randint(10**5, 10**6))
        trace_id, span_id = ids(rng)
        out.append(LogSpec(service=service, scope=scope, body=body, severity=9,
                           attrs={"thread": f"worker-{rng.randint(1, 4)}"}, trace_id=trace_id,
                           span_id=span_id, time_ns=t0 + i * 1_000_000))
    return out
