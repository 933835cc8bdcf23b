"""OTLP/HTTP bodies in every encoding the collector sends, their bombs, and readiness while ingest is
refused (issue 11).

Before: a collector configured with ``compression: zstd`` got 415 and dropped its data; ``/readyz`` said
ready while every ingest request was refused.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cramjam
import grpc
import httpx
import lz4.frame
import pytest

from otlp_gateway.receiver.http_body import zstd
from tests.fixtures.downstream import RecordingDownstream, ThreadedDownstream
from tests.fixtures.gateway import GatewayProcess
from tests.fixtures.otlp_payloads import trace_request
from tests.fixtures.waiting import free_port, wait_until
from tests.reliability.support import (
    TRACE_EXPORT,
    MiB,
    record,
    scrape,
    start_gateway,
    stop_gateway,
    watched,
)

ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "zstd": lambda data: zstd.compress(data),
    "lz4": lambda data: lz4.frame.compress(data),
    "snappy": lambda data: bytes(cramjam.snappy.compress_raw(data)),
    "x-snappy-framed": lambda data: bytes(cramjam.snappy.compress(data)),
}
LIMIT = 4 * MiB


@pytest.fixture
def gateway(tmp_path: Path, downstream) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path, downstream.endpoint, receiver={"max_request_bytes": LIMIT})
    try:
        yield gw
    finally:
        stop_gateway(gw)


def _post(gw: GatewayProcess, body: bytes, encoding: str) -> httpx.Response:
    return httpx.post(gw.http_url + "/v1/traces", content=body, timeout=60,
                      headers={"content-type": "application/x-protobuf", "content-encoding": encoding})


def test_every_collector_encoding_is_accepted_and_every_bomb_stopped(gateway, downstream):
    payload = trace_request(200, service="encoded", seed=3).SerializeToString()
    zeros = bytes(256 * MiB)  # 64 x the limit
    bombs = {name: encode(zeros) for name, encode in ENCODERS.items()}
    before = downstream.server.span_count()
    answers: Counter[str] = Counter()
    with watched(gateway) as (bystander, rss):
        for name, encode in ENCODERS.items():
            accepted = _post(gateway, encode(payload), name)
            assert accepted.status_code == 200, (name, accepted.text)
            started = time.monotonic()
            bomb = _post(gateway, bombs[name], name)
            assert bomb.status_code == 413, (name, bomb.status_code, bomb.text)
            assert time.monotonic() - started < 5
            answers["413"] += 1
        unknown = _post(gateway, payload, "br")
    assert unknown.status_code == 415
    assert "accepted: gzip, x-gzip, deflate, zlib, zstd, lz4, snappy, x-snappy-framed" in unknown.text
    bystander.assert_served()
    assert rss.growth < 100 * MiB, rss.growth / MiB
    expected = before + 200 * len(ENCODERS) + bystander.acked_spans
    wait_until(lambda: downstream.server.span_count() >= expected, 30, "every accepted span downstream")
    record("OTLP/HTTP in gzip, deflate, zstd, lz4, snappy (block), x-snappy-framed; a 256 MiB-of-zeros bomb "
           "in each (limit 4 MiB); `Content-Encoding: br`",
           "200 for each; 413 for each bomb, stopped while decoding; 415 naming the accepted encodings",
           bystander, rss, "0")


def test_readyz_is_false_while_ingest_is_refused_and_true_once_it_is_accepted_again(tmp_path):
    port = free_port()  # the downstream comes up here later: until then the export queue fills
    gw = start_gateway(tmp_path, f"grpc://127.0.0.1:{port}",
                       exporter={"endpoint": f"grpc://127.0.0.1:{port}",
                                 "retry": {"initial_interval_seconds": 0.05, "max_interval_seconds": 0.2,
                                           "max_elapsed_seconds": 0},
                                 "queue": {"persistent": False, "capacity_requests": 4, "consumers": 1}},
                       receiver={"readiness": {"refusing_after_seconds": 1.0}})
    downstream = ThreadedDownstream()
    downstream.server = RecordingDownstream(port=port)
    payload = trace_request(5, service="refused").SerializeToString()
    acked, codes = 0, Counter()
    try:
        with watched(gw, health_only=True) as (bystander, rss), \
                grpc.insecure_channel(gw.grpc_endpoint) as channel:
            export = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)

            def send() -> None:
                nonlocal acked
                try:
                    export(payload, timeout=10)
                    acked += 5
                    codes["OK"] += 1
                except grpc.RpcError as exc:
                    codes[exc.code().name] += 1

            def not_ready() -> httpx.Response | None:
                send()
                response = httpx.get(gw.api_url + "/readyz", timeout=5)
                return response if response.status_code == 503 else None

            refused = wait_until(not_ready, 30, "/readyz to turn false while exports are refused")
            assert "export queue full" in refused.json()["reasons"]["ingest"], refused.json()
            assert refused.json()["components"]["ingest"] is False
            downstream.start()  # the queue drains; the next export is accepted
            def ready_again() -> bool:
                send()
                return codes["OK"] > 4 and httpx.get(gw.api_url + "/readyz").status_code == 200

            wait_until(ready_again, 30, "/readyz to turn true once ingest is accepted again")
        assert codes["UNAVAILABLE"] > 0, codes
        bystander.assert_served()
        wait_until(lambda: downstream.server.span_count() >= acked, 30, "every acknowledged span downstream")
        assert scrape(gw, "driftlock_rate_limited_requests_total", {"surface": "ingest"}) == 0
        record("export queue full (downstream down, memory queue of 4 requests); then the downstream returns",
               f"{codes['UNAVAILABLE']} × UNAVAILABLE + RetryInfo; /readyz 503 with reason 'ingest: every "
               "ingest request refused ...: export queue full' after 1 s, 200 again once one is accepted",
               bystander, rss, "0")
    finally:
        stop_gateway(gw)
        downstream.stop()
