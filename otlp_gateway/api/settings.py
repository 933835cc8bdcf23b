"""REST API, UI, health and metrics listener (:8080) settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from otlp_gateway.settings_base import HostPort, StrictModel, TLSServerSettings


class RateLimitSettings(StrictModel):
    rps: float = Field(1000.0, gt=0)
    """``GLOBAL_RATE_LIMIT_RPS``: token refill rate."""
    burst: int = Field(2000, gt=0)
    """``GLOBAL_RATE_LIMIT_BURST``: bucket size."""
    apply_to_ingest: bool = True
    """Also charge each OTLP request against the bucket (UNAVAILABLE/429 with a retry hint when empty)."""


class KeyHashSettings(StrictModel):
    """argon2id cost of new API key secrets (RFC 9106 low-memory profile by default). Existing hashes
    keep the parameters they were made with, so changing these never locks out a key."""

    time_cost: int = Field(3, ge=1)
    """argon2id iterations."""
    memory_kib: int = Field(65536, ge=8)
    """argon2id memory per hash, KiB."""
    parallelism: int = Field(4, ge=1)
    """argon2id lanes."""


class ApiSettings(StrictModel):
    listen: HostPort = "0.0.0.0:8080"
    """API, web UI, /metrics and health checks."""
    tls: TLSServerSettings = TLSServerSettings()
    jwt_secret: SecretStr | None = None
    """``JWT_SECRET``: HS256 bearer tokens are accepted when set; at least 32 characters."""
    jwt_issuer: str = "driftlock"
    """Expected iss claim of JWT bearer tokens."""
    auth_required: bool = True
    """``/v1`` refuses unauthenticated requests. Turn off only on a trusted loopback."""
    rate_limit: RateLimitSettings = RateLimitSettings()
    profiling_enabled: bool = True
    """Allow admin-only CPU and memory profiling under /v1/debug."""
    key_hash: KeyHashSettings = KeyHashSettings()
    """Cost of hashing new API key secrets; existing keys keep the cost they were made with."""

    @field_validator("jwt_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters")
        return value
