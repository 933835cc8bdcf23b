"""Bounds on slow and hostile HTTP clients for both uvicorn servers (OTLP/HTTP :4318 and the API :8080).

uvicorn times out only idle keep-alive connections, and its ``limit_concurrency`` answers 503 only once a
request's headers are complete: a client that sends its headers or its body one byte at a time holds a
connection, a task and its buffers for as long as it likes, and the header bytes it sends are kept without
limit (``h11_max_incomplete_event_size`` exists for h11 only; uvicorn runs httptools here). This protocol
adds, per connection:

* a header read timeout: 408 and close when it passes with a partial request; an idle new connection is
  closed silently;
* a header size limit counted as bytes arrive (431 and close), before the parser has buffered much;
* a body read timeout (the whole body) and a body idle timeout (a stalled upload): 408 and close; the
  application then sees ``http.disconnect`` and drops what it buffered;
* a connection limit per listening port: a new connection beyond it closes the connection that has
  waited longest for its headers (partial headers first: the slowest client; then connections idle for a
  second or more), never one with a request in progress; when none qualifies, the new one gets 503 and
  is closed at once;
* optionally a body size limit (413) for applications that read whole bodies into memory (the API).
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from otlp_gateway.settings_base import HttpServerLimits
from otlp_gateway.telemetry.metrics import GatewayMetrics

IDLE_EVICTION_SECONDS = 1.0
"""A connection that has sent nothing of its next request is evicted only after idling this long: a client
reusing a keep-alive connection a moment ago would otherwise race the close and see a reset."""
LINGER_SECONDS = 1.0
"""After an error answer, input is read and dropped this long before closing: closing with unread input
would reset the connection, and the client could lose the answer it had not read yet."""


def _raw_response(status: int, message: str, retry_after: int | None = None) -> bytes:
    body = message.encode()
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", "content-type: text/plain; charset=utf-8",
             f"content-length: {len(body)}", "connection: close"]
    if retry_after is not None:
        lines.append(f"retry-after: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _status_app(status: int, message: str):
    """An ASGI app answering every request with ``status`` and closing the connection."""
    body = message.encode()

    async def app(scope: dict[str, Any], receive, send) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    return app


def _declared_body(headers: list[tuple[bytes, bytes]]) -> tuple[bool, int | None]:
    """(whether a body follows, its declared length when given)."""
    for name, value in headers:
        if name == b"transfer-encoding":
            return True, None
        if name == b"content-length":
            length = int(value) if value.strip().isdigit() else 0
            return length > 0, length
    return False, 0


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above; configured by ``guarded_protocol``."""

    limits: HttpServerLimits
    max_body_bytes: int | None
    metrics: GatewayMetrics
    server_name: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_since: float | None = None
        """When this connection started waiting for a request's headers (None: a request is being read)."""
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_started = 0.0
        self._last_body = 0.0
        self._body_bytes = 0
        self._lingering = False

    # ------------------------------------------------------------------------------------ connections
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers(arm_timer=True)
        live = [c for c in self.connections if isinstance(c, GuardedHttpProtocol) and not _gone(c)]
        if len(live) > self.limits.max_connections:
            now = self.loop.time()
            victim = min((c for c in live if c is not self and _evictable(c, now)), key=_eviction_order,
                         default=None)
            if victim is not None:
                victim._cut("evicted", None)
            else:
                self._cut("over_limit", 503, "too many connections; retry later", retry_after=1)
        self.metrics.http_connections.labels(self.server_name).set(len(self.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)
        self.metrics.http_connections.labels(self.server_name).set(len(self.connections))

    def _cut(self, reason: str, status: int | None, message: str = "",
             retry_after: int | None = None) -> None:
        """Answer ``status`` (when no response has started) and close; the app sees a disconnect."""
        if _gone(self):
            return
        self._cancel_timers()
        self.metrics.http_connections_cut.labels(self.server_name, reason).inc()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's later sends are dropped; its receive() returns disconnect
            cycle.message_event.set()
        if status is not None and (cycle is None or not cycle.response_started):
            self.transport.write(_raw_response(status, message, retry_after))
            if self.transport.can_write_eof():  # lingering close: the client gets to read the answer
                self.transport.write_eof()
                self._lingering = True
                self.flow.resume_reading()
                self.loop.call_later(LINGER_SECONDS, self.transport.close)
                return
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    # ------------------------------------------------------------------------------------ headers
    def _await_headers(self, arm_timer: bool) -> None:
        self._awaiting_since = self.loop.time()
        self._header_bytes = 0
        if arm_timer:
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.limits.header_read_timeout_seconds,
                                                      self._on_header_timeout)

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self._awaiting_since is None or _gone(self):
            return
        if not _evictable(self, None):  # a previous request is still being answered: look again later
            self._arm_header_timer()
            return
        if self._header_bytes:
            self._cut("header_timeout", 408, "request headers not received in time")
        else:
            self._cut("header_timeout", None)

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # answered and closing: what still arrives is dropped
            return
        if self._awaiting_since is not None:
            self._arm_header_timer()  # a keep-alive connection's next request starts its clock here
            self._header_bytes += len(data)
        super().data_received(data)
        if (self._awaiting_since is not None and self._header_bytes > self.limits.max_header_bytes
                and not _gone(self)):
            self._cut("header_too_large", 431,
                      f"request headers exceed the limit of {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._awaiting_since = None
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        has_body, declared = _declared_body(self.headers)
        if size > self.limits.max_header_bytes:
            self.app = _status_app(431, f"request headers exceed the limit of {self.limits.max_header_bytes} "
                                        "bytes")
            self.metrics.http_connections_cut.labels(self.server_name, "header_too_large").inc()
        elif self.max_body_bytes is not None and declared is not None and declared > self.max_body_bytes:
            self.app = _status_app(413, f"request body exceeds the limit of {self.max_body_bytes} bytes")
            self.metrics.http_connections_cut.labels(self.server_name, "body_too_large").inc()
        else:
            self.app = self.config.loaded_app
        super().on_headers_complete()
        if has_body:
            self._body_started = self._last_body = self.loop.time()
            self._body_bytes = 0
            self._schedule_body_check()

    # ------------------------------------------------------------------------------------ body
    def on_body(self, body: bytes) -> None:
        self._last_body = self.loop.time()
        self._body_bytes += len(body)
        if self.max_body_bytes is not None and self._body_bytes > self.max_body_bytes:
            self._cut("body_too_large", 413, f"request body exceeds the limit of {self.max_body_bytes} bytes")
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()
        self._await_headers(arm_timer=False)  # the keep-alive timer covers the wait for the next request

    def _schedule_body_check(self) -> None:
        deadline = min(self._body_started + self.limits.body_read_timeout_seconds,
                       self._last_body + self.limits.body_idle_timeout_seconds)
        self._body_timer = self.loop.call_at(deadline, self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        if _gone(self):
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the application is not reading yet: the client is not stalling
            self._last_body = now
        if now >= self._body_started + self.limits.body_read_timeout_seconds:
            self._cut("body_timeout", 408, "request body not received in time")
        elif now >= self._last_body + self.limits.body_idle_timeout_seconds:
            self._cut("body_timeout", 408, "request body upload stalled")
        else:
            self._schedule_body_check()


def _gone(connection: Any) -> bool:
    """Closing, or answered and lingering until it closes."""
    return connection.transport.is_closing() or getattr(connection, "_lingering", False)


def _evictable(connection: Any, now: float | None) -> bool:
    """Waiting for request headers, with no request of its own still being answered; with ``now``, one
    that has sent nothing yet only once it has idled ``IDLE_EVICTION_SECONDS``."""
    since = getattr(connection, "_awaiting_since", None)
    if since is None or _gone(connection):
        return False
    if now is not None and connection._header_bytes == 0 and now - since < IDLE_EVICTION_SECONDS:
        return False
    cycle = connection.cycle
    return (cycle is None or cycle.response_complete) and not connection.pipeline


def _eviction_order(connection: GuardedHttpProtocol) -> tuple[bool, float]:
    # partial headers before idle keep-alive connections; the longest waiting first
    return connection._header_bytes == 0, connection._awaiting_since or 0.0


def guarded_protocol(limits: HttpServerLimits, metrics: GatewayMetrics, server_name: str,
                     max_body_bytes: int | None = None) -> type[GuardedHttpProtocol]:
    """A protocol class bound to one server's limits (uvicorn instantiates it per connection)."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,),
                {"limits": limits, "metrics": metrics, "server_name": server_name,
                 "max_body_bytes": max_body_bytes})


def guarded_config(app: Any, limits: HttpServerLimits, metrics: GatewayMetrics, server_name: str, *,
                   max_body_bytes: int | None = None, **options: Any) -> uvicorn.Config:
    """``uvicorn.Config`` for an embedded server with these bounds (uvicorn's own keep-alive timeout)."""
    protocol = guarded_protocol(limits, metrics, server_name, max_body_bytes)
    return uvicorn.Config(app, http=protocol, ws="none", lifespan="off", access_log=False,
                          server_header=False, timeout_keep_alive=limits.keep_alive_timeout_seconds,  # type: ignore[arg-type]
                          backlog=max(128, limits.max_connections), **options)
