"""An anonymous flood on :8080 throttles only itself; ingest has its own budget (issue 11).

Before: ``GET /v1/nothing`` on :8080 drained the one global token bucket before authentication, and ingest
drew on the same bucket: 59 of 63 gRPC exports were refused during the flood. The gateway runs with its
default configuration here.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.fixtures.gateway import GatewayProcess
from tests.fixtures.otlp_payloads import trace_request
from tests.fixtures.waiting import wait_until
from tests.receiver.sdk_clients import exporters, make_spans
from tests.reliability.support import TRACE_EXPORT, record, scrape, start_gateway, stop_gateway, watched

FLOOD_SECONDS = 5.0
EXPORTS = 60
"""Exports during the flood: at least this many, over at least FLOOD_SECONDS (longer on a loaded machine)."""


@pytest.fixture
def gateway(tmp_path: Path, downstream) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path, downstream.endpoint)
    try:
        yield gw
    finally:
        stop_gateway(gw)


class _Flood:
    """``threads`` keep-alive clients asking ``url`` as fast as they can; answers counted by status."""

    def __init__(self, url: str, threads: int = 4):
        self._url = url
        self._stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> _Flood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    status = client.get(self._url).status_code
                except httpx.HTTPError:
                    status = 0
                with self._lock:
                    self.statuses[status] += 1


def test_get_flood_on_the_api_refuses_no_export(gateway, downstream):
    sdk_exporter = exporters("grpc", gateway.grpc_endpoint)[0]
    spans = make_spans(3)
    raw_payload = trace_request(2, service="raw-client").SerializeToString()
    raw_results: Counter[str] = Counter()
    sdk_results: Counter[str] = Counter()
    before = downstream.server.span_count()
    with watched(gateway) as (bystander, rss), _Flood(gateway.api_url + "/v1/nothing") as flood, \
            grpc.insecure_channel(gateway.grpc_endpoint) as channel:
        export = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        started = time.monotonic()
        while (time.monotonic() - started < FLOOD_SECONDS or sum(raw_results.values()) < EXPORTS) \
                and time.monotonic() - started < 60:
            try:
                export(raw_payload, timeout=10)  # no retries: a refusal would show here
                raw_results["OK"] += 1
            except grpc.RpcError as exc:
                raw_results[exc.code().name] += 1
            sdk_results[sdk_exporter.export(spans).name] += 1
            time.sleep(0.02)
        flood_seconds = time.monotonic() - started
    sdk_exporter.shutdown()
    assert set(raw_results) == {"OK"} and raw_results["OK"] >= EXPORTS, raw_results
    assert set(sdk_results) == {SpanExportResult.SUCCESS.name}, sdk_results
    assert scrape(gateway, "driftlock_rate_limited_requests_total", {"surface": "ingest"}) == 0
    assert scrape(gateway, "driftlock_ingest_throttled_requests_total", {"transport": "grpc",
                                                                         "reason": "rate_limited"}) == 0
    # the flood throttled itself: past its address's burst it gets 429 (404 while within it)
    assert flood.statuses[429] > flood.statuses[404] > 0, flood.statuses
    assert set(flood.statuses) <= {404, 429}, flood.statuses
    bystander.assert_served()
    acked = 2 * raw_results["OK"] + len(spans) * sdk_results[SpanExportResult.SUCCESS.name]
    wait_until(lambda: downstream.server.span_count() >= before + acked + bystander.acked_spans, 30,
               "every acknowledged span downstream")
    total = sum(flood.statuses.values())
    record(f"`GET /v1/nothing` flood on :8080 ({total / flood_seconds:.0f} requests/s, 4 clients) while the "
           f"SDK and a raw gRPC client export",
           f"flood: {flood.statuses[429]} × 429, {flood.statuses[404]} × 404; exports: "
           f"{raw_results['OK'] + sdk_results[SpanExportResult.SUCCESS.name]} OK, 0 refused",
           bystander, rss, "0")
