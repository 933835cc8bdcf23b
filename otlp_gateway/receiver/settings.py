"""Receiver settings (OTLP gRPC :4317 and HTTP :4318)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from otlp_gateway.settings_base import HostPort, StrictModel, TLSServerSettings


class AdmissionSettings(StrictModel):
    max_inflight_items: int = Field(200_000, gt=0)
    """Spans + metric points + log records admitted but not yet handed to the export queue."""
    max_inflight_bytes: int = Field(256 * 1024 * 1024, gt=0)
    """Decompressed request bytes admitted but not yet handed to the export queue."""
    retry_after_seconds: float = Field(1.0, gt=0)
    """The retry hint sent with UNAVAILABLE / 503 / 429."""


class ReceiverSettings(StrictModel):
    grpc_listen: HostPort = "0.0.0.0:4317"
    """OTLP/gRPC listen address (0.0.0.0 inside a pod; 127.0.0.1 for a loopback-only sidecar)."""
    http_listen: HostPort = "0.0.0.0:4318"
    """OTLP/HTTP listen address (/v1/traces, /v1/metrics, /v1/logs)."""
    grpc_enabled: bool = True
    """Serve OTLP/gRPC."""
    http_enabled: bool = True
    """Serve OTLP/HTTP."""
    decode_workers: int = Field(2, gt=0, le=64)
    """Threads decoding requests (validation, OTLP/JSON, extraction for detection) off the event loop,
    shared by both receivers; the wire walk releases the GIL."""
    max_request_bytes: int = Field(64 * 1024 * 1024, gt=0)
    """Limit on a request body after decompression (gRPC RESOURCE_EXHAUSTED, HTTP 413 beyond it)."""
    tls: TLSServerSettings = TLSServerSettings()
    bearer_token: SecretStr | None = None
    """When set, ingest requires ``Authorization: Bearer <token>`` (UNAUTHENTICATED / 401 otherwise)."""
    admission: AdmissionSettings = AdmissionSettings()
