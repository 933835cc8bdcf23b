"""TLS (server verification and client certificates) over both transports, reconnection after the
downstream disappears, and the spool's single-owner lock."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from otlp_gateway.durable import FifoError
from tests.exporter.support import batch, eventually, new_exporter, run, sample
from tests.fixtures.downstream import RecordingDownstream
from tests.fixtures.tls import TlsFiles


def _mtls_server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(tls.server_key.read_bytes(), tls.server_cert.read_bytes())],
                                       root_certificates=tls.ca.read_bytes(), require_client_auth=True)


def test_grpcs_with_ca_file_and_client_certificate(tmp_path: Path, tls_files: TlsFiles) -> None:
    async def scenario() -> None:
        async with RecordingDownstream(credentials=_mtls_server_credentials(tls_files)) as ds:
            assert ds.endpoint.startswith("grpcs://")
            exporter, _ = new_exporter(ds.endpoint, tmp_path, tls={
                "ca_file": str(tls_files.ca), "cert_file": str(tls_files.client_cert),
                "key_file": str(tls_files.client_key)})
            await exporter.start()
            b = batch("traces", "over-tls")
            await exporter.consume(b)
            await ds.wait_for(lambda: len(ds.requests["traces"]) == 1)
            assert ds.requests["traces"] == [b.payload]
            await exporter.shutdown(grace=1)

    run(scenario())


def test_grpcs_without_trusted_ca_never_delivers(tmp_path: Path, tls_files: TlsFiles) -> None:
    async def scenario() -> None:
        async with RecordingDownstream(credentials=_mtls_server_credentials(tls_files)) as ds:
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, tls={
                "cert_file": str(tls_files.client_cert), "key_file": str(tls_files.client_key)})
            await exporter.start()
            await exporter.consume(batch("traces", "untrusted"))
            await eventually(
                lambda: sample(metrics, "driftlock_exporter_retries_total", signal="traces") >= 2,
                what="handshake failures retried")
            assert ds.requests["traces"] == []
            await exporter.shutdown(grace=0)

    run(scenario())


@pytest.fixture
def https_downstream(tls_files: TlsFiles) -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls_files.ca))
    context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()


def test_https_with_ca_file_and_client_certificate(tmp_path: Path, tls_files: TlsFiles,
                                                   https_downstream: tuple[str, list[bytes]]) -> None:
    endpoint, bodies = https_downstream

    async def scenario() -> None:
        exporter, _ = new_exporter(endpoint, tmp_path, compression="none", tls={
            "ca_file": str(tls_files.ca), "cert_file": str(tls_files.client_cert),
            "key_file": str(tls_files.client_key)})
        await exporter.start()
        b = batch("logs", "https")
        await exporter.consume(b)
        await eventually(lambda: bodies == [b.payload], what="the body over https")
        await exporter.shutdown(grace=1)

    run(scenario())


def test_downstream_gone_then_back_on_the_same_port(tmp_path: Path) -> None:
    """Connection refused (not a status answer) is retried, and the channel reconnects."""

    async def scenario() -> None:
        first = RecordingDownstream()
        await first.start()
        port, endpoint = first.port, first.endpoint
        await first.stop()
        exporter, metrics = new_exporter(endpoint, tmp_path)
        await exporter.start()
        batches = [batch("metrics", f"while-down-{i}") for i in range(3)]
        for b in batches:
            await exporter.consume(b)
        await eventually(lambda: sample(metrics, "driftlock_exporter_retries_total", signal="metrics") >= 6,
                         what="retries while nobody listens")
        async with RecordingDownstream(port=port) as back:
            await back.wait_for(lambda: len(back.requests["metrics"]) == 3, timeout=15, what="delivery")
            assert sorted(back.requests["metrics"]) == sorted(b.payload for b in batches)
        await exporter.shutdown(grace=0)

    run(scenario())


def test_two_exporters_cannot_share_a_spool(tmp_path: Path) -> None:
    async def scenario() -> None:
        owner, _ = new_exporter("grpc://127.0.0.1:9", tmp_path)
        await owner.start()
        intruder, _ = new_exporter("grpc://127.0.0.1:9", tmp_path)
        with pytest.raises(FifoError, match="another process"):
            await intruder.start()
        await intruder.shutdown(grace=0)
        await owner.shutdown(grace=0)

    run(scenario())
