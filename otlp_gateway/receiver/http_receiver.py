"""OTLP/HTTP receiver (:4318): uvicorn serving ``OtlpHttpApp`` inside the current asyncio loop.

Slow and hostile clients are bounded by ``otlp_gateway.http_guard`` (``receiver.http_limits``). The socket
is bound in ``start`` (so a busy port fails the start and ``port`` is known at once), then
``uvicorn.Server.serve`` runs as a task of the same loop as grpc.aio. uvicorn's signal capture is turned
off: the gateway owns SIGTERM/SIGINT and drains every component itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from otlp_gateway.batch import BatchConsumer
from otlp_gateway.health import HealthState
from otlp_gateway.http_guard import guarded_config
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.receiver.address import split_listen
from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.http_app import OtlpHttpApp
from otlp_gateway.receiver.ingest import IngestCore
from otlp_gateway.receiver.memory_limiter import MemoryLimiter
from otlp_gateway.receiver.refusals import IngestRefusals
from otlp_gateway.receiver.settings import ReceiverSettings
from otlp_gateway.receiver.tls import uvicorn_tls_options
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

_STARTUP_TIMEOUT = 10.0


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the gateway handles signals, not uvicorn
        yield


def _bind(address: str) -> socket.socket:
    host, port = split_listen(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not SO_REUSEPORT: one owner per port
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"OTLP HTTP receiver cannot listen on {address}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class OtlpHttpReceiver:
    """``decoder``: the gateway's decode pool (shared with the gRPC receiver); without one, the receiver
    runs its own (``settings.decode_workers`` threads, no extraction)."""

    def __init__(self, settings: ReceiverSettings, consumer: BatchConsumer, metrics: GatewayMetrics,
                 health: HealthState, admission: AdmissionController,
                 rate_limiter: TokenBucket | None = None, refusals: IngestRefusals | None = None,
                 decoder: DecodePool | None = None, memory_limiter: MemoryLimiter | None = None):
        self._settings = settings
        self._own_decoder = decoder is None
        decoder = decoder if decoder is not None else DecodePool(settings.decode_workers)
        self._core = IngestCore("http", consumer, metrics, admission, rate_limiter, settings.bearer_token,
                                decoder, refusals, memory_limiter)
        self._admission = admission
        self._metrics = metrics
        del health  # same signature as the gRPC receiver; HTTP health lives on the API port (/healthz)
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task | None = None
        self._shut_down = False
        self.port: int | None = None

    async def start(self) -> None:
        self._core.watch_loop()
        sock = _bind(self._settings.http_listen)
        self.port = sock.getsockname()[1]
        config = guarded_config(
            OtlpHttpApp(self._core, self._settings.max_request_bytes, self._admission),
            self._settings.http_limits, self._metrics, "otlp_http", interface="asgi3", log_config=None,
            proxy_headers=False, **uvicorn_tls_options(self._settings.tls))
        self._server = server = _EmbeddedServer(config)
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]),
                                                            name="otlp-http-receiver")
        deadline = asyncio.get_running_loop().time() + _STARTUP_TIMEOUT
        while not server.started:
            if self._task.done():  # failed during start-up (bad TLS material, ...): surface the cause
                sock.close()
                self._task.result()
                raise RuntimeError("OTLP HTTP receiver stopped during start-up")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("OTLP HTTP receiver did not start in time")
            await asyncio.sleep(0.005)
        if self._own_decoder:
            self._core.decoder.warm_up()
        log.info("OTLP HTTP receiver listening on %s (port %d, tls=%s)", self._settings.http_listen,
                 self.port, self._settings.tls.enabled)

    async def stop_accepting(self) -> None:
        """Drain phase: new requests get 503 with Retry-After; in-flight requests finish."""
        self._core.draining = True

    async def shutdown(self, grace: float = 5.0) -> None:
        """Close the listener, let in-flight requests finish within ``grace``; idempotent."""
        try:
            await self._stop_server(grace)
        finally:
            self._core.stop_watching_loop()
            if self._own_decoder:
                self._core.decoder.close()

    async def _stop_server(self, grace: float) -> None:
        if self._server is None or self._task is None or self._shut_down:
            return
        self._shut_down = True
        self._core.draining = True
        self._server.config.timeout_graceful_shutdown = max(grace, 0.1)  # type: ignore[assignment]
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace + 2.0)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
