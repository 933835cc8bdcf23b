"""A deterministic service for the detection end-to-end tests: normal traffic and injected incidents sent
through the OpenTelemetry SDK's own OTLP gRPC exporters, plus helpers to read what the gateway made of it.

Everything a detector sees is a function of the seed: span ids come from a seeded id generator, span
start/end times are set explicitly (the canonical span keeps a log2 duration bucket), log bodies and
gauge values are drawn from a seeded ``random.Random``. Only wall-clock timestamps differ between runs,
and the detectors never score those (metric timestamps only teach the numeric detector its sampling
period, whose daily/weekly lags are far beyond its history at millisecond spacing).

Streams (service ``shop``, default stream key ``signal/service/name``):

* ``traces/shop/GET /checkout``: incident (b) -- a latency regression with status ERROR;
* ``traces/shop/GET /cart``: a control stream that never changes;
* ``logs/shop/shop.orders``: incident (a) -- a new error template;
* ``metrics/shop/queue_depth``: incident (c) -- a level shift of an observable gauge.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

SERVICE = "shop"
INCIDENT_SPAN = "GET /checkout"
CONTROL_SPAN = "GET /cart"
LOG_SCOPE = "shop.orders"
GAUGE = "queue_depth"

SPAN_STREAM = f"traces/{SERVICE}/{INCIDENT_SPAN}"
CONTROL_STREAM = f"traces/{SERVICE}/{CONTROL_SPAN}"
LOG_STREAM = f"logs/{SERVICE}/{LOG_SCOPE}"
METRIC_STREAM = f"metrics/{SERVICE}/{GAUGE}"
ALL_STREAMS = (SPAN_STREAM, CONTROL_STREAM, LOG_STREAM, METRIC_STREAM)

WARM_EVENTS = 1000
"""Normal events per stream before any incident: the balanced profile warms up after B + 40 hops
(400 + 40 * 10 = 800 events); the rest are scored windows of normal data, which must stay quiet."""
TAIL_EVENTS = 100
"""Normal events after an incident, so every window holding an injected event completes (W = 50)."""
SPAN_INCIDENT = 12
LOG_INCIDENT = 12
METRIC_SHIFT = 60
ERROR_TEMPLATE = "payment provider rejected card: gateway timeout after {n} retries (upstream={host})"
ERROR_TOKENS = ("payment", "provider", "rejected", "card", "gateway", "timeout", "retries", "upstream")
_MS = 1_000_000
QUEUE = 100_000
"""SDK batch queue bound: far above what a test emits between flushes, so the SDK never drops."""


class SeededIds(IdGenerator):
    """Span and trace ids from a seeded generator: the same seed gives the same ids (evidence compares)."""

    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


@dataclass
class Injected:
    """What one run injected, for the assertions."""

    span_ids: set[str] = field(default_factory=set)
    """Hex span ids of the ERROR spans (incident b)."""
    log_offsets: range = range(0)
    """Stream offsets of the new-template log records (incident a)."""
    metric_offsets: range = range(0)
    """Stream offsets of the shifted gauge values (incident c)."""


@dataclass
class Sent:
    spans: int = 0
    logs: int = 0
    points: int = 0
    span_ids: list[str] = field(default_factory=list)


class ShopService:
    """The SDK providers of service ``shop`` wired to a gateway's OTLP gRPC endpoint (``host:port``)."""

    def __init__(self, endpoint: str, seed: int = 7, headers: dict[str, str] | None = None):
        self.rng = random.Random(seed)
        resource = Resource.create({"service.name": SERVICE})
        kw: dict[str, Any] = {"endpoint": endpoint, "insecure": True, "headers": headers, "timeout": 30}
        self.tracer_provider = TracerProvider(resource=resource, id_generator=SeededIds(seed))
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(**kw), max_queue_size=QUEUE, max_export_batch_size=256))
        self.tracer = self.tracer_provider.get_tracer("shop")
        # the reader exports only when told to (one gauge point per flush)
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(**kw), export_interval_millis=3_600_000)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self._gauge_value: float | None = None
        """Observed on the next collection only (then reset): a flush or shutdown adds no point."""
        self.meter_provider.get_meter("shop").create_observable_gauge(GAUGE, callbacks=[self._observe])
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(**kw), max_queue_size=QUEUE, max_export_batch_size=256))
        self.logger = logging.getLogger(LOG_SCOPE)
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self._handler = LoggingHandler(level=logging.INFO, logger_provider=self.logger_provider)
        self.logger.addHandler(self._handler)
        self.clock = 1_700_000_000 * 1_000_000_000  # fixed span clock (ns), advanced per span
        self.sent = Sent()
        self.offsets = {stream: 0 for stream in ALL_STREAMS}

    def _observe(self, options: CallbackOptions) -> Iterator[Observation]:
        value, self._gauge_value = self._gauge_value, None
        if value is not None:
            yield Observation(value)

    # --- normal traffic -------------------------------------------------------------------------
    def _span(self, name: str, duration_ms: float, error: bool = False) -> str:
        start = self.clock
        self.clock += 2 * _MS
        span = self.tracer.start_span(name, kind=SpanKind.SERVER, start_time=start)
        span.set_attribute("http.request.method", "GET")
        span.set_attribute("http.route", name.split(" ", 1)[1])
        span.set_attribute("http.response.status_code", 500 if error else 200)
        if error:
            span.set_status(Status(StatusCode.ERROR, "upstream timeout"))
        span.end(end_time=start + int(duration_ms * _MS))
        span_id = format(span.get_span_context().span_id, "016x")
        self.sent.spans += 1
        self.sent.span_ids.append(span_id)
        self.offsets[f"traces/{SERVICE}/{name}"] += 1
        return span_id

    def normal_spans(self, n: int) -> None:
        """``n`` spans on each of the two span streams: 3-7 ms, status unset."""
        for _ in range(n):
            for name in (INCIDENT_SPAN, CONTROL_SPAN):
                self._span(name, self.rng.uniform(3.0, 7.0))

    def normal_logs(self, n: int) -> None:
        rng = self.rng
        for _ in range(n):
            kind = rng.randrange(3)
            if kind == 0:
                self.logger.info("order %d placed for user %d", rng.randrange(10_000), rng.randrange(50))
            elif kind == 1:
                self.logger.info("cache hit for item %d in region %s", rng.randrange(500),
                                 rng.choice(["eu", "us", "ap"]))
            else:
                self.logger.info("payment authorized in %d ms", rng.randrange(20, 80))
            self.sent.logs += 1
            self.offsets[LOG_STREAM] += 1

    def gauge_points(self, n: int, level: float) -> None:
        """``n`` gauge points around ``level``: one collection and export each."""
        for _ in range(n):
            self._gauge_value = round(level + self.rng.gauss(0.0, 1.0), 1)
            assert self.meter_provider.force_flush(30_000)
            self.sent.points += 1
            self.offsets[METRIC_STREAM] += 1

    def normal_phase(self, n: int = WARM_EVENTS) -> None:
        self.normal_spans(n)
        self.normal_logs(n)
        self.gauge_points(n, 100.0)

    # --- incidents ------------------------------------------------------------------------------
    def incident_spans(self, injected: Injected, n: int = SPAN_INCIDENT) -> None:
        """(b) ``GET /checkout`` turns slow (0.8-1.6 s) and fails with status ERROR; /cart is unaffected."""
        for _ in range(n):
            injected.span_ids.add(self._span(INCIDENT_SPAN, self.rng.uniform(800.0, 1600.0), error=True))
            self._span(CONTROL_SPAN, self.rng.uniform(3.0, 7.0))

    def incident_logs(self, injected: Injected, n: int = LOG_INCIDENT) -> None:
        """(a) a log template never seen before, at ERROR."""
        start = self.offsets[LOG_STREAM]
        for _ in range(n):
            self.logger.error(ERROR_TEMPLATE.format(n=self.rng.randrange(3, 6),
                                                    host=self.rng.choice(["psp-a", "psp-b"])))
            self.sent.logs += 1
            self.offsets[LOG_STREAM] += 1
        injected.log_offsets = range(start, self.offsets[LOG_STREAM])

    def incident_metric(self, injected: Injected, n: int = METRIC_SHIFT) -> None:
        """(c) the gauge's level moves from 100 to 140 (40 standard deviations)."""
        start = self.offsets[METRIC_STREAM]
        self.gauge_points(n, 140.0)
        injected.metric_offsets = range(start, self.offsets[METRIC_STREAM])

    def flush(self) -> None:
        assert self.tracer_provider.force_flush(60_000)
        assert self.logger_provider.force_flush(60_000)

    def close(self) -> None:
        self.logger.removeHandler(self._handler)
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()


@contextmanager
def shop_service(endpoint: str, seed: int = 7, headers: dict[str, str] | None = None
                 ) -> Iterator[ShopService]:
    service = ShopService(endpoint, seed, headers)
    try:
        yield service
        service.flush()
    finally:
        service.close()


# --- reading results back -----------------------------------------------------------------------
def all_anomalies(api_url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every anomaly through ``GET /v1/anomalies`` (following cursors), then each one's detail."""
    items: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=api_url, headers=headers, timeout=10) as client:
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            response = client.get("/v1/anomalies", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        details = []
        for item in items:
            response = client.get(f"/v1/anomalies/{item['id']}")
            assert response.status_code == 200, response.text
            details.append(response.json())
    return details


def by_stream(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["stream_id"], []).append(row)
    for group in grouped.values():
        group.sort(key=lambda r: r["window_start_offset"])
    return grouped


def comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must be identical between two runs of the same seed: ids, windows, verdicts, figures and
    evidence (wall-clock fields -- detection time, window times, item timestamps -- excluded)."""
    out = []
    for row in sorted(rows, key=lambda r: r["id"]):
        evidence = tuple(sorted((e.get("offset"), e.get("span_id"), e.get("trace_id"))
                                for e in row.get("evidence", [])))
        out.append((row["id"], row["stream_id"], row["window_start_offset"], row["window_end_offset"],
                    row["score"], row["p_value"], row["severity"], row["is_drift"],
                    tuple(sorted((row.get("figures") or {}).items())), evidence))
    return out


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` in a Prometheus text exposition whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def wait_detected(metrics_text, expected: dict[str, int], timeout: float = 30.0) -> None:
    """Wait until the detectors have scored ``expected`` events per signal and every anomaly row
    reported was written (``metrics_text``: a callable returning the live exposition)."""
    deadline = time.monotonic() + timeout
    text = ""
    scored: dict[str, float] = {}
    detected = written = 0.0
    while time.monotonic() < deadline:
        text = metrics_text()
        scored = {s: metric_value(text, "driftlock_detector_events_total", stream_type=s) for s in expected}
        detected = metric_value(text, "driftlock_anomalies_detected_total")
        written = metric_value(text, "driftlock_store_anomalies_written_total")
        if all(scored[s] >= n for s, n in expected.items()) and written >= detected:
            return
        time.sleep(0.1)
    raise AssertionError(f"within {timeout}s: events scored {scored} (expected {expected}); anomaly rows "
                         f"detected {detected:g}, written to the store {written:g}\n"
                         + "\n".join(line for line in text.splitlines()
                                     if line.startswith(("driftlock_detector_events", "driftlock_anomalies",
                                                         "driftlock_store"))))
