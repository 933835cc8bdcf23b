"""Downstream exporter settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from otlp_gateway.durable.backoff import RetrySettings
from otlp_gateway.settings_base import Duration, StrictModel

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


ExportProtocol = Literal["auto", "grpc", "http/protobuf"]
Compression = Literal["none", "gzip"]
ENDPOINT_SCHEMES = ("grpc://", "grpcs://", "http://", "https://")


def _check_endpoint(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(ENDPOINT_SCHEMES):
        raise ValueError("endpoint must start with grpc://, grpcs://, http:// or https://")
    return value


class SignalTLSSettings(StrictModel):
    """Per-signal TLS overrides; unset fields inherit ``exporter.tls``."""

    insecure: bool | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class SignalExporterSettings(StrictModel):
    """Overrides for one signal; every unset field inherits the exporter's own."""

    endpoint: str | None = None
    """This signal's endpoint, used as-is: for OTLP/HTTP the full URL with its path (for example
    ``https://otlp.example.com/v1/traces``); nothing is appended (the OpenTelemetry per-signal rule)."""
    protocol: ExportProtocol | None = None
    headers: dict[str, SecretStr] | None = None
    """Replaces (does not extend) the exporter's headers for this signal."""
    compression: Compression | None = None
    timeout_seconds: Duration | None = Field(None, gt=0)
    tls: SignalTLSSettings = SignalTLSSettings()

    @field_validator("endpoint")
    @classmethod
    def _endpoint_scheme(cls, value: str | None) -> str | None:
        return _check_endpoint(value)


_INHERITED = ("endpoint", "protocol", "headers", "compression", "timeout_seconds")


class ExporterSignals(StrictModel):
    """Per-signal overrides (``OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_*`` land here)."""

    traces: SignalExporterSettings = SignalExporterSettings()
    metrics: SignalExporterSettings = SignalExporterSettings()
    logs: SignalExporterSettings = SignalExporterSettings()


class ExporterSettings(StrictModel):
    endpoint: str | None = None
    """``grpc://host:port``, ``http://host:port`` or ``https://host:port``; for OTLP/HTTP ``/v1/<signal>``
    is appended to its path. Unset (and no per-signal endpoint): detection only."""
    protocol: ExportProtocol = "auto"
    """auto: gRPC for grpc:// and grpcs:// endpoints, OTLP/HTTP protobuf for http:// and https://."""
    headers: dict[str, SecretStr] = {}
    """Extra request headers / gRPC metadata (for example an authorization token); never logged."""
    compression: Compression = "gzip"
    """Wire compression toward the downstream (gzip costs ~3 ms CPU per 512-span request; none suits a
    local collector)."""
    timeout_seconds: Duration = Field(10.0, gt=0)
    """Deadline of one export attempt."""
    tls: ExporterTLSSettings = ExporterTLSSettings()
    signals: ExporterSignals = ExporterSignals()
    """Per-signal endpoint, protocol, headers, compression, timeout and TLS; unset fields inherit the
    values above. A signal with no endpoint at either level is consumed for detection only."""
    retry: RetrySettings = RetrySettings()
    queue: QueueSettings = QueueSettings()

    @field_validator("endpoint")
    @classmethod
    def _endpoint_scheme(cls, value: str | None) -> str | None:
        return _check_endpoint(value)

    def for_signal(self, signal: str) -> ExporterSettings:
        """The effective settings of one signal (its overrides applied; ``signals`` emptied)."""
        override: SignalExporterSettings = getattr(self.signals, signal)
        update = {name: value for name in _INHERITED if (value := getattr(override, name)) is not None}
        tls_update = override.tls.model_dump(exclude_none=True)
        if tls_update:
            update["tls"] = self.tls.model_copy(update=tls_update)
        update["signals"] = ExporterSignals()
        return self.model_copy(update=update)

    def signal_endpoint_is_exact(self, signal: str) -> bool:
        """Whether the signal's endpoint is its own (used as-is) rather than the shared base URL."""
        return getattr(self.signals, signal).endpoint is not None

    @model_validator(mode="after")
    def _check_transport_options(self) -> ExporterSettings:
        for signal in ExporterSignals.model_fields:
            effective = self.for_signal(signal)
            if effective.endpoint is None:
                continue
            problem = _transport_problem(effective)
            if problem:
                where = f"signals.{signal}: " if self._differs_for(signal) else ""
                raise ValueError(where + problem)
        return self

    def _differs_for(self, signal: str) -> bool:
        override: SignalExporterSettings = getattr(self.signals, signal)
        return override != SignalExporterSettings()


def _transport_problem(settings: ExporterSettings) -> str | None:
    assert settings.endpoint is not None
    grpc_scheme = settings.endpoint.startswith(("grpc://", "grpcs://"))
    if settings.protocol == "http/protobuf" and grpc_scheme:
        return "protocol http/protobuf needs an http:// or https:// endpoint"
    uses_grpc = settings.protocol == "grpc" or (settings.protocol == "auto" and grpc_scheme)
    if uses_grpc and settings.tls.insecure_skip_verify:
        return ("tls.insecure_skip_verify is not supported by the gRPC exporter "
                "(grpcio cannot skip certificate checks); set tls.ca_file instead")
    if (settings.tls.cert_file is None) != (settings.tls.key_file is None):
        return "tls.cert_file and tls.key_file must be set together"
    return None
