"""The soak's traffic: never-repeated valid requests, and hostile classes each with the answer it must get.

Every valid item carries an identity the recording downstream can read back without guessing: a span's
``span_id``, a log record's ``span_id``, a metric point's ``time_unix_nano`` (unique per point). Names,
services and routes keep a realistic cardinality (a stream per service x name); ids, user ids, paths, bodies
and values never repeat.
"""

from __future__ import annotations

import gzip
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otlp_gateway.batch import Signal

SERVICES = ["checkout", "frontend", "cart", "payment", "search", "auth"]
ROUTES = ["/cart", "/checkout", "/item/{id}", "/search", "/login", "/recommendations"]
OK_CODES = frozenset({"OK", "200"})
# refusals that are the intended overload/outage answers (the gateway restarting included), never a fault
TRANSIENT = frozenset({"UNAVAILABLE", "503", "429", "connect-error", "DEADLINE_EXCEEDED", "timeout"})
MiB = 1024 * 1024

Ids = dict[Signal, list[int]]


@dataclass
class Request:
    """One request to send: ``ids`` are the items the gateway must accept (forward) when it answers OK."""

    kind: str
    signal: Signal
    body: bytes
    transport: str  # grpc | http
    expected: frozenset[str] = OK_CODES
    ids: list[int] = field(default_factory=list)
    expect_rejected: int = 0
    content_encoding: str | None = None


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


class Traffic:
    """Builds requests; ``seq`` makes every user id, path, body and point time unique in the run."""

    def __init__(self, seed: int = 7, spans: int = 50, records: int = 20, points: int = 20):
        self.rng = random.Random(seed)
        self.seq = 0
        self.spans, self.records, self.points = spans, records, points
        # one id range per seed: metric point identities (base + seq) of two generators never meet
        self.base_ns = time.time_ns() - (seed % 1000) * 10**12
        self._bomb: bytes | None = None

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _span_id(self) -> bytes:
        return self.rng.randrange(1, 2**64).to_bytes(8, "big")

    # ---------------------------------------------------------------------------------- valid requests
    def traces(self, n: int | None = None, service: str | None = None,
               long_token: int = 0) -> tuple[ExportTraceServiceRequest, list[int]]:
        rng, req, ids = self.rng, ExportTraceServiceRequest(), []
        rs = req.resource_spans.add()
        rs.resource.attributes.extend([_kv("service.name", service or rng.choice(SERVICES)),
                                       _kv("host.name", f"node-{rng.randrange(8)}")])
        ss = rs.scope_spans.add()
        ss.scope.name = "soak"
        for _ in range(self.spans if n is None else n):
            seq, route = self._next(), rng.choice(ROUTES)
            start = self.base_ns + seq * 1000
            span = ss.spans.add(trace_id=rng.randbytes(16), span_id=self._span_id(), name=f"GET {route}",
                                kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start,
                                end_time_unix_nano=start + int(rng.lognormvariate(15.5, 0.5)))
            span.attributes.extend([
                _kv("http.request.method", "GET"), _kv("http.route", route),
                _kv("url.path", route.replace("{id}", str(seq)) + f"?q={rng.getrandbits(40):x}"),
                _kv("enduser.id", f"user-{seq}-{rng.getrandbits(32):08x}"),
                _kv("http.response.status_code", rng.choice([200] * 30 + [404, 500])),
                _kv("client.address", f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}")])
            if long_token:
                span.attributes.append(_kv("payload", "".join(rng.choices("ABCDEFGH", k=long_token))))
            span.status.code = Status.STATUS_CODE_OK
            ids.append(int.from_bytes(span.span_id, "big"))
        return req, ids

    def logs(self, body_token: int = 0) -> tuple[ExportLogsServiceRequest, list[int]]:
        rng, req, ids = self.rng, ExportLogsServiceRequest(), []
        rl = req.resource_logs.add()
        rl.resource.attributes.append(_kv("service.name", rng.choice(SERVICES)))
        sl = rl.scope_logs.add()
        sl.scope.name = "soak.http"
        for _ in range(self.records if not body_token else 1):
            seq = self._next()
            record = sl.log_records.add(time_unix_nano=self.base_ns + seq, severity_number=9,
                                        severity_text="INFO", trace_id=rng.randbytes(16),
                                        span_id=self._span_id())
            record.body.string_value = (
                "".join(rng.choices("ABCDEFGH", k=body_token)) if body_token else
                f"user user-{seq} fetched /item/{seq} in {rng.randrange(1, 900)} ms "
                f"(request {rng.getrandbits(48):012x})")
            record.attributes.append(_kv("code.lineno", rng.randrange(1, 400)))
            ids.append(int.from_bytes(record.span_id, "big"))
        return req, ids

    def metrics(self, non_finite: bool = False) -> tuple[ExportMetricsServiceRequest, list[int]]:
        rng, req, ids = self.rng, ExportMetricsServiceRequest(), []
        rm = req.resource_metrics.add()
        rm.resource.attributes.append(_kv("service.name", rng.choice(SERVICES)))
        sm = rm.scope_metrics.add()
        latency = sm.metrics.add(name="http.server.request.duration.avg", unit="s")
        count = sm.metrics.add(name="http.server.requests", unit="1")
        count.sum.is_monotonic = True
        count.sum.aggregation_temporality = 2
        for i in range(self.points):
            when = self.base_ns + self._next()  # the point's identity
            if i % 2:
                point = count.sum.data_points.add(time_unix_nano=when, as_int=when % 100_000)
            else:
                value = rng.lognormvariate(-3, 0.4)
                if non_finite:
                    value = rng.choice([float("nan"), float("inf"), float("-inf")])
                point = latency.gauge.data_points.add(time_unix_nano=when, as_double=value)
            point.attributes.append(_kv("http.route", rng.choice(ROUTES)))
            ids.append(when)
        return req, ids

    def valid(self, signal: Signal, transport: str) -> Request:
        message, ids = {"traces": self.traces, "logs": self.logs, "metrics": self.metrics}[signal]()
        return Request(f"valid {signal}", signal, message.SerializeToString(), transport, ids=ids)

    # ---------------------------------------------------------------------------------- hostile requests
    def hostile(self) -> list[Callable[[str], Request]]:
        """The cheap hostile classes, each a factory taking the transport."""
        return [self.random_bytes, self.truncated, self.invalid_utf8, self.wrong_id_lengths,
                self.non_finite_points, self.long_token, self.many_services, self.empty]

    def heavy(self) -> list[Callable[[], Request]]:
        """The classes that cost the client megabytes: sent less often."""
        return [self.gzip_bomb, self.oversize_http, self.oversize_grpc]

    def random_bytes(self, transport: str) -> Request:
        # 0x0f is field 1 with wire type 7, which does not exist: never a valid message by chance
        body = b"\x0f" + self.rng.randbytes(self.rng.randrange(1, 4096))
        return Request("random bytes", "traces", body, transport, _invalid(transport))

    def truncated(self, transport: str) -> Request:
        body = self.traces(n=5)[0].SerializeToString()  # one top-level field: any cut inside it is invalid
        return Request("truncated protobuf", "traces", body[:self.rng.randrange(1, len(body) - 1)],
                       transport, _invalid(transport))

    def invalid_utf8(self, transport: str) -> Request:
        message, _ = self.logs()
        marker = "MARK" + "x" * 12
        message.resource_logs[0].scope_logs[0].log_records[0].body.string_value = marker
        body = message.SerializeToString().replace(marker.encode(), b"\xff\xfe\xc3\x28" * 4)
        return Request("invalid UTF-8 string", "logs", body, transport, _invalid(transport))

    def wrong_id_lengths(self, transport: str) -> Request:
        message, ids = self.traces(n=10)
        spans = message.resource_spans[0].scope_spans[0].spans
        for span in spans[:3]:
            span.trace_id = span.trace_id[:15]
        spans[3].span_id = spans[3].span_id + b"\x01"
        return Request("wrong id lengths (4 of 10 spans)", "traces", message.SerializeToString(), transport,
                       ids=ids[4:], expect_rejected=4)

    def non_finite_points(self, transport: str) -> Request:
        message, ids = self.metrics(non_finite=True)
        return Request("NaN/Inf points", "metrics", message.SerializeToString(), transport, ids=ids)

    def long_token(self, transport: str) -> Request:
        if self.rng.random() < 0.5:
            message, ids = self.traces(n=1, long_token=MiB)
            return Request("1 MB single-token attribute", "traces", message.SerializeToString(), transport,
                           ids=ids)
        logs, ids = self.logs(body_token=MiB)
        return Request("1 MB single-token log body", "logs", logs.SerializeToString(), transport, ids=ids)

    def many_services(self, transport: str) -> Request:
        """100 services never seen before, one span each (new streams, new stream records)."""
        message, all_ids = ExportTraceServiceRequest(), []
        for _ in range(100):
            part, ids = self.traces(n=1, service=f"svc-{self._next()}-{self.rng.getrandbits(24):06x}")
            message.resource_spans.extend(part.resource_spans)
            all_ids += ids
        return Request("100 new service names", "traces", message.SerializeToString(), transport, ids=all_ids)

    def empty(self, transport: str) -> Request:
        return Request("empty request", self.rng.choice(["traces", "logs", "metrics"]), b"", transport)

    def gzip_bomb(self) -> Request:
        if self._bomb is None:  # 256 MiB of zeros in ~250 KiB; the gateway's limit is 64 MiB
            self._bomb = gzip.compress(bytes(16 * MiB), compresslevel=9) * 16
        return Request("gzip bomb (256 MiB inflated)", "traces", self._bomb, "http", frozenset({"413"}),
                       content_encoding="gzip")

    def oversize_http(self) -> Request:
        return Request("oversize body (65 MiB)", "traces", bytes(65 * MiB), "http", frozenset({"413"}))

    def oversize_grpc(self) -> Request:
        return Request("oversize message (65 MiB)", "traces", bytes(65 * MiB), "grpc",
                       frozenset({"RESOURCE_EXHAUSTED"}))


def _invalid(transport: str) -> frozenset[str]:
    return frozenset({"INVALID_ARGUMENT"} if transport == "grpc" else {"400"})
