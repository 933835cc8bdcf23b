"""The http/protobuf exporter against a small real HTTP server (stdlib, on 127.0.0.1:0)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from otlp_gateway.batch import SIGNALS
from otlp_gateway.exporter.http_transport import parse_retry_after
from tests.exporter.support import batch, eventually, new_exporter, run, sample


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class RecordingHttpDownstream:
    """Accepts OTLP/HTTP posts; answers from a script of replies, then 200 with an empty response."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.script: list[Reply] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                with recorder.lock:
                    reply = recorder.script.pop(0) if recorder.script else Reply()
                    if reply.status == 200:
                        recorder.received.append((self.path, headers, body))
                self.send_response(reply.status)
                self.send_header("content-type", "application/x-protobuf")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def bodies(self, path: str) -> list[bytes]:
        with self.lock:
            return [body for p, _, body in self.received if p == path]


@pytest.fixture
def http_downstream() -> Iterator[RecordingHttpDownstream]:
    ds = RecordingHttpDownstream()
    ds.thread.start()
    yield ds
    ds.server.shutdown()
    ds.server.server_close()


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_http_delivers_all_signals_unchanged(tmp_path: Path, http_downstream: RecordingHttpDownstream,
                                             compression: str) -> None:
    async def scenario() -> None:
        exporter, metrics = new_exporter(http_downstream.endpoint, tmp_path, compression=compression,
                                         headers={"X-Api-Key": "k"})
        await exporter.start()
        sent = {signal: batch(signal, f"http-{signal}") for signal in SIGNALS}
        for b in sent.values():
            await exporter.consume(b)
        await eventually(lambda: len(http_downstream.received) == 3, what="three posts")
        for signal, b in sent.items():
            assert http_downstream.bodies(f"/v1/{signal}") == [b.payload]
        _, headers, _ = http_downstream.received[0]
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["x-api-key"] == "k"
        assert (headers.get("content-encoding") == "gzip") == (compression == "gzip")
        await eventually(lambda: sample(metrics, "otelcol_exporter_sent_spans_total") == 4)
        await exporter.shutdown(grace=1)

    run(scenario())


def test_http_retryable_status_honours_retry_after_then_delivers(
        tmp_path: Path, http_downstream: RecordingHttpDownstream) -> None:
    http_downstream.script = [Reply(503), Reply(429, headers={"Retry-After": "1"})]

    async def scenario() -> float:
        import time

        exporter, metrics = new_exporter(http_downstream.endpoint, tmp_path)
        await exporter.start()
        started = time.monotonic()
        await exporter.consume(batch("logs", "retry-after"))
        await eventually(lambda: len(http_downstream.received) == 1, what="delivery after two refusals")
        elapsed = time.monotonic() - started
        assert sample(metrics, "driftlock_exporter_retries_total", signal="logs") == 2
        await exporter.shutdown(grace=1)
        return elapsed

    assert run(scenario()) >= 1.0


def test_http_permanent_status_is_dropped_once(tmp_path: Path, http_downstream: RecordingHttpDownstream,
                                               caplog: pytest.LogCaptureFixture) -> None:
    status = status_pb2.Status(code=3, message="field resource_spans is malformed")
    http_downstream.script = [Reply(400, body=status.SerializeToString())]

    async def scenario() -> None:
        exporter, metrics = new_exporter(http_downstream.endpoint, tmp_path, queue={"consumers": 1})
        await exporter.start()
        await exporter.consume(batch("traces", "bad", items=5))
        await exporter.consume(batch("traces", "good", items=2))
        await eventually(lambda: len(http_downstream.received) == 1)
        await eventually(lambda: sample(metrics, "otelcol_exporter_send_failed_spans_total",
                                        reason="permanent") == 5)
        assert http_downstream.script == []
        assert sample(metrics, "driftlock_exporter_retries_total", signal="traces") == 0
        await exporter.shutdown(grace=1)

    run(scenario())
    assert any("malformed" in r.getMessage() for r in caplog.records)


def test_http_partial_success_is_counted(tmp_path: Path, http_downstream: RecordingHttpDownstream) -> None:
    response = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=2, error_message="2 spans too old"))
    http_downstream.script = [Reply(200, body=response.SerializeToString())]

    async def scenario() -> None:
        exporter, metrics = new_exporter(http_downstream.endpoint, tmp_path)
        await exporter.start()
        await exporter.consume(batch("traces", "partly", items=6))
        await eventually(lambda: sample(metrics, "otelcol_exporter_sent_spans_total") == 4)
        assert sample(metrics, "driftlock_exporter_partial_rejected_items_total", signal="traces") == 2
        await exporter.shutdown(grace=1)

    run(scenario())


def test_http_unreachable_endpoint_is_retried(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"

    async def scenario() -> None:
        exporter, metrics = new_exporter(endpoint, tmp_path)
        await exporter.start()
        await exporter.consume(batch("logs", "nobody-home"))
        await eventually(lambda: sample(metrics, "driftlock_exporter_retries_total", signal="logs") >= 3)
        assert not sample(metrics, "otelcol_exporter_send_failed_log_records_total", reason="permanent")
        await exporter.shutdown(grace=0)

    run(scenario())


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: retry now
