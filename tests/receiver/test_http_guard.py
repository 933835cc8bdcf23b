"""The slow/hostile-client bounds of ``otlp_gateway.http_guard`` on a real uvicorn server (one port, an
echo app), with small limits so each case takes about a second."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from otlp_gateway.http_guard import guarded_config
from otlp_gateway.settings_base import HttpServerLimits
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.waiting import wait_until

LIMITS = HttpServerLimits(max_connections=4, max_header_bytes=2048, header_read_timeout_seconds=0.5,
                          body_read_timeout_seconds=2.0, body_idle_timeout_seconds=0.5,
                          keep_alive_timeout_seconds=5.0)


async def _echo(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _Server:
    def __init__(self, max_body_bytes: int | None = None):
        import uvicorn

        self.metrics = GatewayMetrics()
        config = guarded_config(_echo, LIMITS, self.metrics, "test", max_body_bytes=max_body_bytes,
                                log_config=None)
        self._server = uvicorn.Server(config)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> _Server:
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._server.serve(sockets=[self._sock]), self._loop)
        wait_until(lambda: self._server.started, 10, "the server")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._task.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def cut(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value("driftlock_http_connections_cut_total",
                                                       {"server": "test", "reason": reason})
        return value or 0.0

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(max_body_bytes=4096).start()
    yield srv
    srv.stop()


def _answer(sock: socket.socket) -> bytes:
    """Everything until the server closes (or 5 s)."""
    chunks = []
    try:
        while data := sock.recv(65536):
            chunks.append(data)
    except OSError:
        pass
    return b"".join(chunks)


def test_a_normal_request_and_keep_alive_work(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        for _ in range(3):
            assert client.post("/", content=b"hello").content == b"hello"


def test_partial_headers_get_408_after_the_header_timeout_and_silence_is_closed(server):
    with server.connect() as partial, server.connect() as silent:
        partial.sendall(b"POST / HTTP/1.1\r\nhost: x\r\n")
        started = time.monotonic()
        assert _answer(partial).startswith(b"HTTP/1.1 408 ")
        assert 0.4 < time.monotonic() - started < 3
        assert _answer(silent) == b""
    assert server.cut("header_timeout") == 2


def test_oversized_headers_get_431_before_the_end_of_the_headers(server):
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 10_000)  # headers never end
        assert _answer(sock).startswith(b"HTTP/1.1 431 ")
    with server.connect() as sock:  # complete but too large in one piece
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 3000 + b"\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 431 ")
    assert server.cut("header_too_large") == 2


def test_a_stalled_body_gets_408_and_a_slow_drip_is_cut_at_the_body_deadline(server):
    with server.connect() as stalled:
        stalled.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n" + b"a" * 10)
        assert _answer(stalled).startswith(b"HTTP/1.1 408 ")
    with server.connect() as drip:
        drip.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        started, answer = time.monotonic(), b""
        drip.settimeout(0.2)
        while time.monotonic() - started < 5 and not answer:
            try:
                drip.sendall(b"a")  # one byte every 0.2 s: never idle for 0.5 s
                answer = drip.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert 1.8 < time.monotonic() - started < 4
    assert server.cut("body_timeout") == 2


def test_bodies_past_max_body_bytes_get_413(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert client.post("/", content=b"a" * 5000).status_code == 413  # declared length
        chunked = client.post("/", content=iter([b"a" * 3000, b"b" * 3000]))  # no length given
        assert chunked.status_code == 413
        assert client.post("/", content=b"a" * 4000).status_code == 200


def test_beyond_max_connections_the_slowest_is_evicted_and_busy_ones_are_kept(server):
    slow = [server.connect() for _ in range(4)]
    for i, sock in enumerate(slow):
        sock.sendall(b"POST / HTTP/1.1\r\nhost: x\r\n" if i == 0 else b"P")
        time.sleep(0.02)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert client.post("/", content=b"let me in").status_code == 200
    assert _answer(slow[0]) == b""  # the longest waiting with partial headers went first
    assert server.cut("evicted") >= 1
    for sock in slow:
        sock.close()


def test_when_every_connection_is_busy_a_new_one_gets_503():
    srv = _Server().start()
    try:
        busy = [srv.connect() for _ in range(4)]
        for sock in busy:  # requests in progress: their bodies are still coming
            sock.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
        time.sleep(0.1)
        with srv.connect() as extra:
            assert _answer(extra).startswith(b"HTTP/1.1 503 ")
        assert srv.cut("over_limit") == 1
        for sock in busy:
            sock.close()
    finally:
        srv.stop()
