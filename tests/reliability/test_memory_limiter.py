"""The memory limiter end to end (issue 14, item 4): a real gateway in a child process with a low memory
limit, the downstream refusing so accepted data piles up in the in-memory export queue, clients pushing
large requests. Above the soft limit the gateway refuses with the retryable answers (gRPC
RESOURCE_EXHAUSTED + RetryInfo in both trailers, HTTP 503 + Retry-After), counts the refusals, and
``/readyz`` says why it is not ready; once the downstream takes the queue the memory is freed, the gateway
accepts again (the SDK exporter's retried export goes through) and every accepted item reaches the
downstream.

The limits are set relative to the resident memory of the same gateway measured idle first, so the test
does not depend on how large the interpreter and its libraries are on this machine.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from pathlib import Path

import grpc
import httpx
import psutil
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.fixtures.downstream import ThreadedDownstream
from tests.fixtures.otlp_payloads import trace_request
from tests.fixtures.waiting import wait_until
from tests.receiver.sdk_clients import exporters, make_spans
from tests.reliability.support import TRACE_EXPORT, MiB, record, scrape, start_gateway, stop_gateway, watched

BULK_SPANS = 3000
"""Spans of the shared part of each request (~0.9 MiB): a few hundred of them fill the memory budget."""
SOFT_ABOVE_IDLE_MIB = 64
HARD_ABOVE_IDLE_MIB = 160
RETRY_AFTER = 3.0
"""The hint: the SDK exporter makes 6 attempts, each after the hinted delay (15 s to recover in)."""


def _config(downstream: ThreadedDownstream) -> dict:
    return {
        "detection": {"enabled": False},
        "exporter": {"endpoint": downstream.endpoint,
                     "retry": {"initial_interval_seconds": 0.05, "max_interval_seconds": 0.2,
                               "max_elapsed_seconds": 0},
                     "queue": {"persistent": False, "capacity_bytes": 1024 * MiB}},
    }


def _idle_rss(tmp_path: Path, downstream: ThreadedDownstream) -> int:
    """The resident memory of this configuration once ready and idle (limiter on, far from its limit)."""
    gw = start_gateway(tmp_path / "idle", downstream.endpoint, **_config(downstream))
    try:
        assert gw.proc is not None
        process = psutil.Process(gw.proc.pid)
        samples = [process.memory_info().rss]
        wait_until(lambda: samples.append(process.memory_info().rss) or len(samples) > 10, 10, "RSS samples")
        return max(samples)
    finally:
        stop_gateway(gw)


class _Pusher:
    """``threads`` raw gRPC clients sending large trace requests without retrying; each request carries
    one marker span whose trace id names it, so the test can find every accepted request downstream."""

    def __init__(self, target: str, bulk: bytes, threads: int = 4):
        self._target = target
        self._bulk = bulk
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self.codes: Counter[str] = Counter()
        self.accepted_markers: set[bytes] = set()
        self.refusals: list[grpc.RpcError] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> _Pusher:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _body(self) -> tuple[bytes, bytes]:
        with self._lock:
            self._next += 1
            seed = 10_000 + self._next
        marker = trace_request(1, service="marker", seed=seed)
        trace_id = marker.resource_spans[0].scope_spans[0].spans[0].trace_id
        # serialized messages concatenate as a merge: the bulk's resource spans plus the marker's
        return self._bulk + marker.SerializeToString(), trace_id

    def _run(self) -> None:
        with grpc.insecure_channel(self._target, options=[("grpc.max_send_message_length", 64 * MiB)]) \
                as channel:
            export = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
            while not self._stop.is_set():
                body, trace_id = self._body()
                try:
                    export(body, timeout=30)
                except grpc.RpcError as exc:
                    with self._lock:
                        self.codes[exc.code().name] += 1
                        if len(self.refusals) < 50:
                            self.refusals.append(exc)
                    self._stop.wait(0.05)
                    continue
                with self._lock:
                    self.codes["OK"] += 1
                    self.accepted_markers.add(trace_id)


def _retry_info(error: grpc.RpcError) -> tuple[float, float]:
    """The retry delay in the Python trailer and in the Go one (``grpc-status-details-bin``)."""
    trailers = dict(error.trailing_metadata() or ())
    bare = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], status
    (detail,) = status.details
    packed = error_details_pb2.RetryInfo()
    assert detail.Unpack(packed)
    return bare.retry_delay.ToNanoseconds() / 1e9, packed.retry_delay.ToNanoseconds() / 1e9


def _markers_downstream(downstream: ThreadedDownstream) -> set[bytes]:
    found = set()
    for message in downstream.server.messages("traces"):
        for resource_spans in message.resource_spans:
            if any(kv.value.string_value == "marker" for kv in resource_spans.resource.attributes
                   if kv.key == "service.name"):
                found.update(s.trace_id for ss in resource_spans.scope_spans for s in ss.spans)
    return found


def _sdk_retries(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("opentelemetry.exporter") and "Transient error StatusCode.RESOURCE_EXHAUSTED"
            in r.getMessage()]


def test_memory_limiter_refuses_with_retry_hints_then_recovers_without_losing_accepted_data(tmp_path, caplog):
    downstream = ThreadedDownstream().start()
    gw = None
    try:
        idle = _idle_rss(tmp_path, downstream)
        limit_mib = idle // MiB + HARD_ABOVE_IDLE_MIB
        spike_mib = HARD_ABOVE_IDLE_MIB - SOFT_ABOVE_IDLE_MIB
        downstream.fail_with(grpc.StatusCode.UNAVAILABLE)  # the queue holds everything accepted
        gw = start_gateway(tmp_path / "limited", downstream.endpoint, **_config(downstream), receiver={
            "memory_limiter": {"check_interval_seconds": 0.1, "limit_mib": limit_mib,
                               "spike_limit_mib": spike_mib, "retry_after_seconds": RETRY_AFTER}})
        soft = scrape(gw, "driftlock_memory_limiter_limit_bytes", {"limit": "soft"})
        assert soft == (limit_mib - spike_mib) * MiB
        bulk = trace_request(BULK_SPANS, service="bulk", seed=7).SerializeToString()
        span_exporter = exporters("grpc", gw.grpc_endpoint, timeout=60)[0]
        sdk_spans = make_spans(3)
        with watched(gw, health_only=True) as (bystander, rss), \
                caplog.at_level(logging.WARNING, "opentelemetry.exporter.otlp.proto.grpc.exporter"):
            with _Pusher(gw.grpc_endpoint, bulk) as pusher:
                wait_until(lambda: pusher.codes["RESOURCE_EXHAUSTED"] >= 20, 120,
                           "the memory limiter to refuse the pushers")
                assert scrape(gw, "driftlock_memory_limiter_state") >= 1
                # what a refused client sees, on both transports
                over_http = httpx.post(gw.http_url + "/v1/traces", content=bulk, timeout=30,
                                       headers={"content-type": "application/x-protobuf"})
                not_ready = httpx.get(gw.api_url + "/readyz", timeout=5)
                # the SDK exporter is refused too and retries after the hinted delay
                with_sdk: dict[str, SpanExportResult] = {}
                sdk = threading.Thread(target=lambda: with_sdk.update(result=span_exporter.export(sdk_spans)))
                sdk.start()
                wait_until(lambda: _sdk_retries(caplog), 30, "the SDK exporter to be refused and retry")
            assert over_http.status_code == 503, over_http
            assert over_http.headers["retry-after"] == str(math.ceil(RETRY_AFTER))
            assert not_ready.status_code == 503
            assert "memory limiter refusing ingest" in not_ready.json()["reasons"]["memory"]
            assert not_ready.json()["components"]["memory"] is False
            refused = [e for e in pusher.refusals if e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED]
            assert refused and all(_retry_info(e) == (RETRY_AFTER, RETRY_AFTER) for e in refused)
            assert "low on memory" in refused[0].details()
            assert set(pusher.codes) <= {"OK", "RESOURCE_EXHAUSTED"}, pusher.codes
            assert pusher.codes["OK"] > 0
            assert f"retrying in {RETRY_AFTER:.2f}s" in _sdk_retries(caplog)[0]
            counter = "driftlock_memory_limiter_refused_requests_total"
            grpc_refused = scrape(gw, counter, {"transport": "grpc"})
            http_refused = scrape(gw, counter, {"transport": "http"})
            assert grpc_refused >= pusher.codes["RESOURCE_EXHAUSTED"] + 1 and http_refused >= 1
            peak_while_refusing = rss.peak

            downstream.clear_failures()  # the queue drains: the memory is freed
            sdk.join(timeout=90)
            assert with_sdk.get("result") is SpanExportResult.SUCCESS, with_sdk
            wait_until(lambda: scrape(gw, "driftlock_memory_limiter_state") == 0, 60, "accepting again")
            wait_until(lambda: httpx.get(gw.api_url + "/readyz", timeout=5).status_code == 200, 30,
                       "/readyz 200 again")
        span_exporter.shutdown()
        assert peak_while_refusing < limit_mib * MiB, (peak_while_refusing / MiB, limit_mib)
        accepted_spans = pusher.codes["OK"] * (BULK_SPANS + 1) + len(sdk_spans) + bystander.acked_spans
        wait_until(lambda: downstream.server.span_count() >= accepted_spans, 120,
                   "every accepted span downstream")
        assert pusher.accepted_markers <= _markers_downstream(downstream)
        log = gw.log()
        assert "refusing new ingest with a retry hint" in log and "accepting again after" in log
        record(f"memory limiter: 4 gRPC clients push 0.9 MiB requests while the downstream refuses "
               f"(soft limit idle + {SOFT_ABOVE_IDLE_MIB} MiB, hard + {HARD_ABOVE_IDLE_MIB} MiB)",
               f"{pusher.codes['RESOURCE_EXHAUSTED']} × RESOURCE_EXHAUSTED + RetryInfo, HTTP 503 + "
               f"Retry-After, /readyz 503 'memory'; accepting again once the queue drained",
               bystander, rss, "0")
    finally:
        if gw is not None:
            stop_gateway(gw)
        downstream.stop()
