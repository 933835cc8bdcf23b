"""Receiver settings (OTLP gRPC :4317 and HTTP :4318)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from otlp_gateway.settings_base import Duration, HostPort, HttpServerLimits, StrictModel, TLSServerSettings


class AdmissionSettings(StrictModel):
    max_inflight_items: int = Field(200_000, gt=0)
    """Spans + metric points + log records admitted but not yet handed to the export queue."""
    max_inflight_bytes: int = Field(256 * 1024 * 1024, gt=0)
    """Request bytes held by the receivers: admitted requests not yet handed to the export queue, plus
    OTLP/HTTP bodies still being read (decompressed)."""
    max_transit_bytes: int = Field(128 * 1024 * 1024, gt=0)
    """Of max_inflight_bytes, what OTLP/HTTP bodies still being read may hold together: stalled uploads
    are refused (503) beyond it instead of starving requests that already arrived."""
    retry_after_seconds: Duration = Field(1.0, gt=0)
    """The retry hint sent with UNAVAILABLE / 503 / 429."""
    max_queue_delay_seconds: Duration = Field(1.0, gt=0)
    """New requests are refused (UNAVAILABLE / 503 with the retry hint) while the receivers' event loop
    runs late, or the oldest request waiting for a decode thread has waited, by more than this: beyond it
    every client waits in a queue, and clients' deadlines (5-10 s in the collector's and SDKs' exporters)
    pass before even a refusal reaches them."""


class IngestRateLimitSettings(StrictModel):
    """Ingest's own token bucket (OTLP requests over gRPC and HTTP together); API traffic never draws
    on it."""

    enabled: bool = True
    """Refuse requests beyond the rate (UNAVAILABLE / 429 with a retry hint)."""
    rps: float = Field(1000.0, gt=0)
    """Requests per second, refilled continuously."""
    burst: int = Field(2000, gt=0)
    """Bucket size: requests allowed at once after an idle period."""


class ReadinessSettings(StrictModel):
    """``/readyz`` turns false while ingest is being refused, so a load balancer sends clients elsewhere."""

    refusing_after_seconds: Duration = Field(5.0, gt=0)
    """Not ready once every ingest request has been refused (in-flight limit, export queue or spool full,
    disk full) for this long without one accepted in between."""
    recheck_after_seconds: Duration = Field(30.0, gt=0)
    """Ready again after one request is accepted, or after this long without a refusal (a pod taken
    out of rotation gets no traffic that could prove it recovered)."""


class MemoryLimiterSettings(StrictModel):
    """Refuse new ingest while the process's resident memory is high, like the OpenTelemetry Collector's
    ``memory_limiter``: above the soft limit (limit minus spike) requests are refused before they are
    decoded (gRPC RESOURCE_EXHAUSTED + RetryInfo, HTTP 503 + Retry-After) and ``/readyz`` reports not
    ready; above the limit the gateway also collects garbage and returns freed heap to the system."""

    enabled: bool = True
    """Watch the resident memory and refuse ingest above the soft limit."""
    check_interval_seconds: Duration = Field(1.0, gt=0)
    """How often the resident memory is read."""
    limit_mib: int | None = Field(None, gt=0)
    """The hard limit in MiB; when set, limit_percentage is ignored."""
    limit_percentage: int = Field(80, gt=0, le=100)
    """The hard limit as a percentage of the memory the process may use: the cgroup (container) memory
    limit when there is one, else the machine's RAM. 80 % of the standalone pod's 1 GiB is 819 MiB."""
    spike_limit_mib: int | None = Field(None, ge=0)
    """Headroom below the hard limit for growth between two checks: the soft limit is limit - spike.
    Default: 20 % of the hard limit (164 MiB of 819 MiB: refusing starts at 655 MiB)."""
    retry_after_seconds: Duration = Field(1.0, gt=0)
    """The retry hint sent with the refusals (RetryInfo, Retry-After)."""

    @model_validator(mode="after")
    def _spike_below_limit(self) -> MemoryLimiterSettings:
        if self.limit_mib is not None and self.spike_limit_mib is not None \
                and self.spike_limit_mib >= self.limit_mib:
            raise ValueError(f"spike_limit_mib ({self.spike_limit_mib}) must be below limit_mib "
                             f"({self.limit_mib})")
        return self


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
    rate_limit: IngestRateLimitSettings = IngestRateLimitSettings()
    readiness: ReadinessSettings = ReadinessSettings()
    memory_limiter: MemoryLimiterSettings = MemoryLimiterSettings()
    http_limits: HttpServerLimits = HttpServerLimits()
    """Slow and hostile clients on the OTLP/HTTP port."""
