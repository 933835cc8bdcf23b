"""How one export request reaches the downstream: the transport protocol and its factory.

A transport sends a serialized ``Export*ServiceRequest`` untouched and either returns the downstream's
``partial_success`` or raises ``PermanentError`` / ``RetryableError`` (classified here, once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from otlp_gateway.batch import Signal
from otlp_gateway.exporter.endpoint import Endpoint
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


def read_optional(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None
