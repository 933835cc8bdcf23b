"""Downstream exporter settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from otlp_gateway.durable.backoff import RetrySettings
from otlp_gateway.settings_base import StrictModel

__all__ = ["ExporterSettings", "ExporterTLSSettings", "QueueSettings", "RetrySettings"]


class QueueSettings(StrictModel):
    capacity_requests: int = Field(10_000, gt=0)
    """Requests waiting for export; beyond it ingest answers UNAVAILABLE/503 with a retry hint."""
    capacity_bytes: int = Field(512 * 1024 * 1024, gt=0)
    """Payload bytes held in memory for export; with the spool on, more wait on disk."""
    consumers: int = Field(8, gt=0)
    """Concurrent export calls in flight downstream."""
    persistent: bool = True
    """Spool accepted requests to disk under ``data_dir`` so a restart or outage loses nothing."""
    spool_max_bytes: int = Field(2 * 1024 * 1024 * 1024, gt=0)
    """Disk budget of the persistent spool; beyond it ingest is refused with a retry hint."""


class ExporterTLSSettings(StrictModel):
    insecure: bool = True
    """Plaintext to the downstream (typical for a collector on localhost)."""
    ca_file: str | None = None
    """CA bundle to verify the downstream's certificate (default: system roots)."""
    cert_file: str | None = None
    """Client certificate for mutual TLS (with key_file)."""
    key_file: str | None = None
    """Private key of cert_file."""
    insecure_skip_verify: bool = False
    """Skip certificate verification (HTTP exporter only; grpcio cannot)."""


class ExporterSettings(StrictModel):
    endpoint: str | None = None
    """``grpc://host:port``, ``http://host:port`` or ``https://host:port``. Unset: detection only."""
    protocol: Literal["auto", "grpc", "http/protobuf"] = "auto"
    """auto: gRPC for grpc:// and grpcs:// endpoints, OTLP/HTTP protobuf for http:// and https://."""
    headers: dict[str, SecretStr] = {}
    """Extra request headers / gRPC metadata (for example an authorization token); never logged."""
    compression: Literal["none", "gzip"] = "gzip"
    """Wire compression toward the downstream (gzip costs ~3 ms CPU per 512-span request; none suits a
    local collector)."""
    timeout_seconds: float = Field(10.0, gt=0)
    """Deadline of one export attempt."""
    tls: ExporterTLSSettings = ExporterTLSSettings()
    retry: RetrySettings = RetrySettings()
    queue: QueueSettings = QueueSettings()

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("grpc://", "grpcs://", "http://", "https://")):
            raise ValueError("endpoint must start with grpc://, grpcs://, http:// or https://")
        return value

    @model_validator(mode="after")
    def _check_transport_options(self) -> ExporterSettings:
        if self.endpoint is None:
            return self
        grpc_scheme = self.endpoint.startswith(("grpc://", "grpcs://"))
        if self.protocol == "http/protobuf" and grpc_scheme:
            raise ValueError("protocol http/protobuf needs an http:// or https:// endpoint")
        uses_grpc = self.protocol == "grpc" or (self.protocol == "auto" and grpc_scheme)
        if uses_grpc and self.tls.insecure_skip_verify:
            raise ValueError("tls.insecure_skip_verify is not supported by the gRPC exporter "
                             "(grpcio cannot skip certificate checks); set tls.ca_file instead")
        if (self.tls.cert_file is None) != (self.tls.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be set together")
        return self
