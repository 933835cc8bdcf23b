"""The :8080 server's application while the API application loads.

FastAPI, its routes and their pydantic models cost about half a second of CPU to import and build, a
quarter of a start with cached kernels. That work is not on the path to ready: the server listens at once
with this front, which answers the probes (``/healthz``, ``/readyz``) itself and holds every other request
until the API application is installed, then hands everything to it. Plain ASGI, so importing this module
pulls in neither FastAPI nor pydantic.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from otlp_gateway.health import HealthState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HOLD_SECONDS = 30.0
"""How long a request waits for the API application before a 503 with a retry hint (it loads in about a
second; far longer only on a starved machine)."""


class LoadingFront:
    """``install(app)`` once the API application is built; ``fail(reason)`` if it could not be."""

    def __init__(self, health: HealthState, hold_seconds: float = HOLD_SECONDS):
        self._probes: dict[str, Callable[[], tuple[Any, int]]] = {
            "/healthz": health.liveness_answer, "/readyz": health.readiness_answer}
        self._hold_seconds = hold_seconds
        self._app: AsgiApp | None = None
        self._failure: str | None = None
        self._settled = asyncio.Event()

    @property
    def failure(self) -> str | None:
        """Why the API application could not be built, or None."""
        return self._failure

    def install(self, app: AsgiApp) -> None:
        self._app = app
        self._settled.set()

    def fail(self, reason: str) -> None:
        self._failure = reason
        self._settled.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is not None:
            await self._app(scope, receive, send)
            return
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        probe = self._probes.get(scope["path"]) if scope["method"] == "GET" else None
        if probe is not None:
            body, status = probe()
            await _send_json(send, status, body)
            return
        try:
            await asyncio.wait_for(self._settled.wait(), self._hold_seconds)
        except TimeoutError:
            await _send_json(send, 503, {"error": "unavailable",
                                         "detail": "the API is still loading; retry shortly"},
                             retry_after=1)
            return
        if self._app is None:
            await _send_json(send, 503, {"error": "unavailable",
                                         "detail": f"the API could not be loaded: {self._failure}"})
            return
        await self._app(scope, receive, send)


async def _send_json(send: Send, status: int, body: object, retry_after: int | None = None) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
