"""How one export request reaches the downstream: the transport protocol and its factory.

A transport sends a serialized ``Export*ServiceRequest`` untouched and either returns the downstream's
``partial_success`` or raises ``PermanentError`` / ``RetryableError`` (classified here, once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from otlp_gateway.batch import Signal
from otlp_gateway.exporter.endpoint import Endpoint, Route
from otlp_gateway.exporter.settings import ExporterSettings
from otlp_gateway.otlp.signals import ExportOutcome


class Transport(Protocol):
    async def send(self, signal: Signal, payload: bytes) -> ExportOutcome: ...

    async def close(self) -> None: ...


def build_transport(endpoint: Endpoint, settings: ExporterSettings) -> Transport:
    """Must be called inside the running event loop (grpc.aio channels bind to it)."""
    if endpoint.protocol == "grpc":
        from otlp_gateway.exporter.grpc_transport import GrpcTransport

        return GrpcTransport(endpoint, settings)
    from otlp_gateway.exporter.http_transport import HttpTransport

    return HttpTransport(endpoint, settings)


class SignalRouter:
    """Sends each signal over its route's transport; routes with equal settings share one transport
    (one gRPC channel or HTTP connection pool for the usual single endpoint)."""

    def __init__(self, routes: dict[Signal, Route]):
        """Must be called inside the running event loop (see ``build_transport``)."""
        shared: list[tuple[Route, Transport]] = []
        self._by_signal: dict[Signal, Transport] = {}
        for signal, route in routes.items():
            transport = next((t for other, t in shared if _same_transport(route, other)), None)
            if transport is None:
                transport = build_transport(route.endpoint, route.settings)
                shared.append((route, transport))
            self._by_signal[signal] = transport
        self._transports = [transport for _, transport in shared]

    async def send(self, signal: Signal, payload: bytes) -> ExportOutcome:
        return await self._by_signal[signal].send(signal, payload)

    async def close(self) -> None:
        for transport in self._transports:
            await transport.close()


def _same_transport(a: Route, b: Route) -> bool:
    # A per-signal HTTP URL is used as-is, so two signals never share an exact-path transport.
    return a.endpoint == b.endpoint and a.endpoint.exact_path is None and a.settings == b.settings


def read_optional(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None
