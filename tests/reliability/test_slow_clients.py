"""Slow and hostile HTTP clients on :4318 and :8080 must not starve anyone else (issue 11).

Before: 600 slowloris connections per port took health, OTLP/HTTP and OTLP/gRPC to 0 of 23 answered,
20 stalled 60 MB uploads held 1.2 GB for good, and a 50 MB header was accepted. Here the limits are
scaled down (2 s timeouts, 128 connections per port) so the cases run in seconds; the defaults are the
same mechanisms with larger numbers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.fixtures.downstream import ThreadedDownstream
from tests.fixtures.gateway import GatewayProcess
from tests.fixtures.waiting import wait_until
from tests.reliability.support import (
    MiB,
    Slowloris,
    raw_http,
    record,
    scrape,
    start_gateway,
    stop_gateway,
    watched,
)

MAX_CONNECTIONS = 128
LIMITS = {"max_connections": MAX_CONNECTIONS, "header_read_timeout_seconds": 2.0,
          "body_idle_timeout_seconds": 2.0, "body_read_timeout_seconds": 8.0}


@pytest.fixture(scope="module")
def downstream() -> Iterator[ThreadedDownstream]:
    with ThreadedDownstream() as ds:
        yield ds


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            downstream: ThreadedDownstream) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path_factory.mktemp("slow-clients"), downstream.endpoint,
                       receiver={"http_limits": LIMITS}, api={"http_limits": LIMITS})
    try:
        yield gw
    finally:
        stop_gateway(gw)


def _port(url_or_endpoint: str) -> int:
    return int(url_or_endpoint.rsplit(":", 1)[1])


class _ConnectionCount:
    """The most connections the gateway process held open on each port, sampled every 100 ms."""

    def __init__(self, pid: int, ports: list[int]):
        self._process = psutil.Process(pid)
        self._ports = ports
        self.peak: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _ConnectionCount:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = Counter(c.laddr.port for c in self._process.net_connections("tcp")
                          if c.status == psutil.CONN_ESTABLISHED and c.laddr.port in self._ports)
            for port in self._ports:
                self.peak[port] = max(self.peak[port], now[port])
            self._stop.wait(0.1)


def _assert_delivered(downstream: ThreadedDownstream, spans: int) -> None:
    wait_until(lambda: downstream.server.span_count() >= spans, 30, f"{spans} acknowledged spans downstream")


def test_slowloris_on_both_http_ports_leaves_health_grpc_and_otlp_http_served(gateway, downstream):
    http_port, api_port = _port(gateway.http_url), _port(gateway.api_url)
    before = downstream.server.span_count()
    assert gateway.proc is not None
    started = time.monotonic()
    with watched(gateway, http_export=True) as (bystander, rss), \
            _ConnectionCount(gateway.proc.pid, [http_port, api_port]) as count, \
            Slowloris(http_port, 300, interval=0.25) as on_otlp, \
            Slowloris(api_port, 300, interval=0.25) as on_api:
        time.sleep(6)  # three header timeouts long
    print(f"slowloris phase took {time.monotonic() - started:.1f} s")
    bystander.assert_served()
    for attack in (on_otlp, on_api):
        # more slow connections than slots: each new one closes the slowest (no answer) at once
        assert attack.max_open == 300 and attack.closed_by_server >= 300, (attack.opened, attack.answers)
    for port in (http_port, api_port):
        assert count.peak[port] <= MAX_CONNECTIONS + 8, count.peak  # + connections closing right now
    for server in ("otlp_http", "api"):
        cut = {"server": server, "reason": "evicted"}
        assert scrape(gateway, "driftlock_http_connections_cut_total", cut) > 0
    assert rss.growth < 100 * MiB
    _assert_delivered(downstream, before + bystander.acked_spans)
    record("slowloris: 300 connections per port on :4318 and :8080, headers one byte at a time",
           f"slowest closed to admit new ones; ≤ {MAX_CONNECTIONS} connections per port",
           bystander, rss, "0")


def _upload(port: int, declared: int, send: int) -> tuple[str, int]:
    head = (b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n"
            b"content-length: %d\r\n\r\n" % declared)
    piece = bytes(MiB)
    return raw_http(port, head, iter([piece] * (send // MiB)), timeout=60)


def test_stalled_uploads_hold_bounded_memory_and_give_it_back(gateway, downstream):
    http_port = _port(gateway.http_url)
    before = downstream.server.span_count()
    with watched(gateway) as (bystander, rss), ThreadPoolExecutor(20) as pool:
        # 20 uploads of 60 MB that stall at 59 MB (the report: 1.2 GB held, never given back)
        answers = list(pool.map(lambda _: _upload(http_port, 60 * MiB, 59 * MiB), range(20)))
        wait_until(lambda: scrape(gateway, "driftlock_ingest_transit_bytes") == 0, 30,
                   "transit bytes back to 0")
        time.sleep(0.5)
    statuses = Counter(status.split(" ")[1] for status, _ in answers)
    assert set(statuses) == {"408", "503"}, statuses
    bystander.assert_served()
    assert scrape(gateway, "driftlock_ingest_inflight_bytes") == 0
    assert rss.growth < 200 * MiB, rss.growth / MiB  # the 128 MiB transit share + buffers
    # freed at once (transit back to 0 above); glibc may keep part of its heap mapped after such a burst
    # (measured: +0 MiB in most runs, +81 MiB in one), never more than the transit share
    assert rss.last - rss.baseline < 128 * MiB, "the cut uploads' memory was not given back"
    _assert_delivered(downstream, before + bystander.acked_spans)
    record("20 uploads of 60 MB stalled at 59 MB on :4318",
           f"{statuses['503']} × 503 (in-transit budget full), {statuses['408']} × 408 (stalled: cut); "
           f"RSS +{(rss.last - rss.baseline) / MiB:.0f} MiB once they were cut", bystander, rss, "0")


@pytest.mark.parametrize("which", ["otlp_http", "api"])
def test_a_50MB_header_is_refused_early(gateway, downstream, which):
    port = _port(gateway.http_url if which == "otlp_http" else gateway.api_url)
    path = b"/v1/traces" if which == "otlp_http" else b"/healthz"
    head = b"GET " + path + b" HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (50 * MiB) + b"\r\n\r\n"
    before = downstream.server.span_count()
    with watched(gateway) as (bystander, rss):
        status, sent = raw_http(port, head)
    assert status.startswith("HTTP/1.1 431 "), status
    assert sent < 4 * MiB, f"the gateway read {sent} bytes of header before refusing"
    bystander.assert_served()
    assert rss.growth < 50 * MiB
    _assert_delivered(downstream, before + bystander.acked_spans)
    record(f"one 50 MB header on {':4318' if which == 'otlp_http' else ':8080'}",
           f"431 after {sent // 1024} KiB sent", bystander, rss, "0")


def test_well_behaved_clients_keep_working_after_the_attacks(gateway):
    response = httpx.get(gateway.api_url + "/readyz", timeout=5)
    assert response.status_code == 200, response.text
