"""Pure ASGI middleware (no response buffering): request metrics for every request on :8080, and the
per-client-address rate limit in front of ``/v1``, before authentication (health checks and ``/metrics``
are never throttled; the limits after authentication are a dependency, see ``limits``)."""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otlp_gateway.telemetry.metrics import GatewayMetrics

from .limits import ApiRateLimits


class RequestMetricsMiddleware:
    """``driftlock_http_requests_total{status}`` and ``driftlock_http_request_duration_seconds``.

    The only label is the status code (a small fixed set), never a path or a client.
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before starting a response
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self.metrics.http_requests.labels(str(status)).inc()
                self.metrics.http_request_duration.observe(time.perf_counter() - started)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()  # before the last byte leaves: a client that saw the response sees it counted
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            record()


class RateLimitMiddleware:
    """429 + ``Retry-After`` (whole seconds, at least 1) when the client address is over its rate."""

    def __init__(self, app: ASGIApp, limits: ApiRateLimits, prefix: str = "/v1"):
        self.app = app
        self.limits = limits
        self.prefix = prefix

    def _applies(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        retry_after = self.limits.before_auth(client[0] if client else "unknown")
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        detail = f"too many requests from this address; retry after {retry_after} s"
        body = json.dumps({"error": "rate_limited", "detail": detail}).encode()
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"retry-after", str(retry_after).encode())]})
        await send({"type": "http.response.body", "body": body})
