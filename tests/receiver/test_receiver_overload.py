"""Overload: admission control and the ingest rate limit make real clients back off, retry and deliver,
and memory (in-flight items and bytes) stays within the configured bounds under a flood."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
from opentelemetry.sdk.trace.export import SpanExportResult

from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.receiver.decoding import DecodePool
from tests.fixtures.otlp_payloads import trace_request
from tests.receiver.conftest import wait_until
from tests.receiver.grpc_client import TRACE_EXPORT, assert_retry_info, call, expect_refusal
from tests.receiver.sdk_clients import encoded_spans, exporters, make_spans

FAST_RETRY = {"retry_after_seconds": 0.05}


def test_admission_full_makes_the_sdk_grpc_exporter_retry_and_deliver(start_receivers):
    rx = start_receivers(admission={"max_inflight_items": 10, **FAST_RETRY})
    rx.consumer.hold()
    span_exporter, _, _ = exporters("grpc", rx.grpc_target, timeout=20)
    spans = make_spans(4)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(call, rx.grpc_target, trace_request(8).SerializeToString())
        wait_until(lambda: rx.consumer.waiting == 1, what="first request held")
        assert rx.admission.inflight_items == 8
        sdk = pool.submit(span_exporter.export, spans)  # 8 + 4 > 10: refused, retried every 0.05 s
        wait_until(lambda: rx.sample("driftlock_ingest_throttled_requests_total",
                                     {"transport": "grpc", "reason": "admission"}) >= 3,
                   what="the SDK exporter to be refused and retry")
        assert not sdk.done()
        rx.release()
        assert first.result(10) == b""
        assert sdk.result(20) is SpanExportResult.SUCCESS
    span_exporter.shutdown()
    assert rx.consumer.snapshot()[-1].payload == encoded_spans(spans)
    assert rx.admission.inflight_items == 0 and rx.admission.inflight_bytes == 0


def test_admission_full_refusal_carries_retry_info_on_grpc_and_retry_after_on_http(start_receivers):
    rx = start_receivers(admission={"max_inflight_bytes": 1000, **FAST_RETRY})
    rx.consumer.hold()
    body = trace_request(5).SerializeToString()
    assert len(body) > 1000  # admitted alone (nothing else in flight), then the budget is full
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(call, rx.grpc_target, body)
        wait_until(lambda: rx.consumer.waiting == 1, what="request held")
        refused = expect_refusal(rx.grpc_target, body)
        assert refused.code() is grpc.StatusCode.UNAVAILABLE and "in-flight limit" in refused.details()
        assert_retry_info(refused, 0.05)
        response = httpx.post(rx.http_url + "/v1/traces", content=body, timeout=10,
                              headers={"content-type": "application/x-protobuf"})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        rx.release()
        held.result(10)


def test_rate_limit_makes_the_sdk_grpc_exporter_retry_and_deliver(start_receivers):
    bucket = TokenBucket(rate_per_second=2, burst=1)  # back-to-back exports wait ~0.5 s even when slow
    rx = start_receivers(rate_limiter=bucket)
    span_exporter, _, _ = exporters("grpc", rx.grpc_target, timeout=20)
    batches = [make_spans(2) for _ in range(4)]
    assert all(span_exporter.export(spans) is SpanExportResult.SUCCESS for spans in batches)
    span_exporter.shutdown()
    assert [b.payload for b in rx.consumer.snapshot()] == [encoded_spans(s) for s in batches]
    assert rx.sample("driftlock_rate_limited_requests_total", {"surface": "ingest"}) >= 1
    assert rx.sample("driftlock_ingest_throttled_requests_total",
                     {"transport": "grpc", "reason": "rate_limited"}) >= 1


def test_rate_limit_on_http_is_429_with_retry_after(start_receivers):
    rx = start_receivers(rate_limiter=TokenBucket(rate_per_second=0.5, burst=1))
    body = trace_request(1).SerializeToString()
    headers = {"content-type": "application/x-protobuf"}
    assert httpx.post(rx.http_url + "/v1/traces", content=body, headers=headers).status_code == 200
    limited = httpx.post(rx.http_url + "/v1/traces", content=body, headers=headers)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) in (1, 2)
    error = expect_refusal(rx.grpc_target, body)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "google.rpc.retryinfo-bin" in dict(error.trailing_metadata())


def test_a_flood_stays_within_the_in_flight_bounds(start_receivers):
    body = trace_request(50).SerializeToString()
    rx = start_receivers(admission={"max_inflight_items": 200, "max_inflight_bytes": 4 * len(body),
                                    **FAST_RETRY})
    rx.consumer.hold()
    codes: list[grpc.StatusCode] = []
    peak = {"items": 0, "bytes": 0}

    def one() -> None:
        try:
            call(rx.grpc_target, body)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())

    with grpc.insecure_channel(rx.grpc_target) as channel:
        channel.unary_unary(TRACE_EXPORT)(b"", timeout=5)  # warm up the server
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(one) for _ in range(64)]
        wait_until(lambda: rx.consumer.waiting == 4, what="the budget to fill")

        def refusals_done() -> bool:
            peak["items"] = max(peak["items"], rx.admission.inflight_items)
            peak["bytes"] = max(peak["bytes"], rx.admission.inflight_bytes)
            return len(codes) >= 60

        wait_until(refusals_done, what="the requests over the budget to be refused")
        rx.release()
        for future in futures:
            future.result(10)
    assert codes.count(grpc.StatusCode.OK) == 4
    assert codes.count(grpc.StatusCode.UNAVAILABLE) == 60  # never RESOURCE_EXHAUSTED without RetryInfo
    assert peak["items"] <= 200 and peak["bytes"] <= 4 * len(body)
    assert rx.consumer.items() == 200


class _OneSlowDecode(DecodePool):
    """The real decode pool with one thread, whose first request keeps that thread until ``finish`` is
    set: a decode thread busy with a slow request, so that the next requests queue behind it."""

    def __init__(self) -> None:
        super().__init__(1)
        self.finish = threading.Event()
        self._first = True

    def _decode(self, *args):  # type: ignore[no-untyped-def]
        if self._first:
            self._first = False
            self.finish.wait(30)
        return super()._decode(*args)


def test_requests_queued_for_decoding_hold_their_bytes_and_a_late_queue_sheds_new_ones(start_receivers):
    pool = _OneSlowDecode()
    rx = start_receivers(decoder=pool, admission={"max_queue_delay_seconds": 0.3, **FAST_RETRY})
    body = trace_request(5).SerializeToString()
    with ThreadPoolExecutor(2) as clients:
        first = clients.submit(call, rx.grpc_target, body)  # holds the only decode thread
        wait_until(lambda: rx.admission.inflight_bytes == len(body) and pool.queued == 0,
                   what="the first request on the decode thread")
        second = clients.submit(call, rx.grpc_target, body)
        wait_until(lambda: pool.queued == 1, what="the second request queued for decoding")
        assert rx.admission.inflight_bytes == 2 * len(body)  # its bytes count while it waits
        wait_until(lambda: pool.queue_wait() > 0.3, what="the queue to fall behind")
        assert rx.sample("driftlock_ingest_queue_delay_seconds", {"queue": "decode"}) > 0.3
        assert rx.sample("driftlock_ingest_queue_delay_seconds", {"queue": "event_loop"}) < 0.3
        refused = expect_refusal(rx.grpc_target, body)
        assert refused.code() is grpc.StatusCode.UNAVAILABLE and "decode queue is" in refused.details()
        assert_retry_info(refused, 0.05)
        response = httpx.post(rx.http_url + "/v1/traces", content=body, timeout=10,
                              headers={"content-type": "application/x-protobuf"})
        assert response.status_code == 503 and "decode queue is" in response.text
        assert rx.sample("driftlock_ingest_throttled_requests_total",
                         {"transport": "grpc", "reason": "queue_delay"}) == 1
        assert rx.sample("driftlock_ingest_throttled_requests_total",
                         {"transport": "http", "reason": "queue_delay"}) == 1
        pool.finish.set()
        assert first.result(10) == b"" and second.result(10) == b""
    assert rx.consumer.items() == 10  # both queued requests delivered; the refused ones were not taken
    assert pool.queued == 0 and pool.queue_wait() == 0.0
    assert rx.admission.inflight_bytes == 0
    assert call(rx.grpc_target, body) == b""  # the queue caught up: accepted again


def test_a_late_event_loop_sheds_new_requests_with_a_retry_hint(start_receivers):
    rx = start_receivers(admission={"max_queue_delay_seconds": 0.3, **FAST_RETRY})
    body = trace_request(3).SerializeToString()
    assert call(rx.grpc_target, body) == b""
    blocked = threading.Event()

    def block_the_loop() -> None:  # what a starved loop looks like to a request arriving meanwhile
        blocked.set()
        time.sleep(0.8)

    rx.loop.call_soon_threadsafe(block_the_loop)
    assert blocked.wait(5)
    refused = expect_refusal(rx.grpc_target, body)  # its handler runs once the loop is free, 0.8 s late
    assert refused.code() is grpc.StatusCode.UNAVAILABLE and "event loop is" in refused.details()
    assert_retry_info(refused, 0.05)
    assert rx.sample("driftlock_ingest_throttled_requests_total",
                     {"transport": "grpc", "reason": "queue_delay"}) == 1
    wait_until(lambda: rx.sample("driftlock_ingest_queue_delay_seconds", {"queue": "event_loop"}) < 0.3,
               what="the loop to catch up")
    assert call(rx.grpc_target, body) == b""
    assert rx.consumer.items() == 6
