"""Serve the API app with uvicorn inside the gateway's own event loop, with the slow/hostile-client bounds
of ``otlp_gateway.http_guard`` (``api.http_limits``, ``api.max_body_bytes``).

The server listens as soon as it starts, in front of the application (``front.LoadingFront``); the
application itself is built on a worker thread once the receivers listen and the kernels are loaded
(``ApiApplicationLoader``, the gateway's last component), so loading FastAPI is not on the path to ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn

from otlp_gateway.http_guard import guarded_config
from otlp_gateway.settings_base import TLSServerSettings

from .context import ApiContext
from .front import LoadingFront

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_SECONDS = 10.0


def split_host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def bind_socket(listen: str) -> socket.socket:
    """Bind here rather than in uvicorn: a taken port raises OSError instead of uvicorn's sys.exit."""
    host, port = split_host_port(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it (Linux): a response written as headers then body must not wait for
        # the client's delayed ACK (Nagle), ~40 ms on every small API answer and every file of the web UI.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"API cannot listen on {listen}: {exc.strerror}") from exc
    return sock


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the gateway owns SIGTERM/SIGINT and calls shutdown()."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _tls_kwargs(tls: TLSServerSettings) -> dict[str, object]:
    if not tls.enabled:
        return {}
    kwargs: dict[str, object] = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
    if tls.client_ca_file:
        kwargs.update(ssl_ca_certs=tls.client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return kwargs


class ApiServer:
    """``await start()`` returns once listening; ``await shutdown(grace)`` is idempotent, safe unstarted."""

    def __init__(self, ctx: ApiContext):
        self._ctx = ctx
        self._front = LoadingFront(ctx.health)
        self._app: FastAPI | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port: int = 0
        ctx.health.add_condition("api", self._load_failure)

    @property
    def app(self) -> FastAPI | None:
        """The API application, None until ``load_app`` has built it."""
        return self._app

    async def load_app(self) -> None:
        """Build the API application on a worker thread and put it behind the front; a failure is logged
        and kept (the gateway goes unready with the reason, API requests get a 503 that says it)."""
        if self._app is not None:
            return
        started = time.perf_counter()
        try:
            self._app = await asyncio.to_thread(_build_app, self._ctx)
        except Exception as exc:  # the receivers keep forwarding: only the :8080 surface is lost
            log.exception("the API application could not be built")
            self._front.fail(f"{type(exc).__name__}: {exc}")
            return
        self._front.install(self._app)
        log.info("API and web UI loaded in %.2f s", time.perf_counter() - started)

    def _load_failure(self) -> str | None:
        failure = self._front.failure
        return None if failure is None else f"the API application could not be built: {failure}"

    async def start(self) -> None:
        if self._task is not None:
            return
        settings = self._ctx.config.api
        self._socket = bind_socket(settings.listen)
        self.port = self._socket.getsockname()[1]
        # log_config=None: uvicorn's records go through the process's handlers (text or JSON lines)
        config = guarded_config(self._front, settings.http_limits, self._ctx.metrics, "api",
                                max_body_bytes=settings.max_body_bytes, log_level="warning", log_config=None,
                                timeout_graceful_shutdown=None, **_tls_kwargs(settings.tls))
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]), name="api-server")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise why it stopped
                raise RuntimeError("the API server stopped during startup")
            if loop.time() > deadline:
                raise TimeoutError(f"the API server did not start within {STARTUP_TIMEOUT_SECONDS} s")
            await asyncio.sleep(0.01)
        log.info("API listening on %s (port %d)", settings.listen, self.port)

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish for up to ``grace`` seconds, then cancel them."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = None
        server.config.timeout_graceful_shutdown = max(1, math.ceil(grace))
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), grace + 2.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            if self._socket is not None:
                self._socket.close()


def _build_app(ctx: ApiContext) -> FastAPI:
    from .app import create_api_app  # FastAPI, its routes and models: the slow part of the import

    return create_api_app(ctx)


class ApiApplicationLoader:
    """A component: builds the API application in the background, so the start does not wait for it.

    ``after(seconds)`` (the kernel warm-up) is awaited first for up to ``after_seconds``: with cached kernels
    the gateway becomes ready before the build competes with it for the interpreter; a cold cache (minutes of
    compiling) does not keep the API and ``/metrics`` away that long."""

    def __init__(self, server: ApiServer, after: Callable[[float], Awaitable[object]] | None = None,
                 after_seconds: float = 2.0):
        self._server = server
        self._after = after
        self._after_seconds = after_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._load(), name="api-application-loader")

    async def _load(self) -> None:
        if self._after is not None:
            await self._after(self._after_seconds)
        await self._server.load_app()

    async def shutdown(self, grace: float = 0.0) -> None:
        """Waits for a build still running (a worker thread cannot be interrupted) up to ``grace``."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
