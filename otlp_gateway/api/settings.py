"""REST API, UI, health and metrics listener (:8080) settings."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from otlp_gateway.settings_base import Duration, HostPort, HttpServerLimits, StrictModel, TLSServerSettings


class RateLimitSettings(StrictModel):
    """Token buckets of the :8080 ``/v1`` API (429 + Retry-After). Health checks and ``/metrics`` are never
    throttled, and ingest has its own budget (``receiver.rate_limit``)."""

    rps: float = Field(1000.0, gt=0)
    """``GLOBAL_RATE_LIMIT_RPS``: refill rate of the bucket shared by every authenticated ``/v1`` request."""
    burst: int = Field(2000, gt=0)
    """``GLOBAL_RATE_LIMIT_BURST``: size of that shared bucket."""
    per_client_rps: float = Field(20.0, gt=0)
    """Before authentication: ``/v1`` requests per second from one client address."""
    per_client_burst: int = Field(100, gt=0)
    """Before authentication: bucket size per client address."""
    per_key_rps: float = Field(100.0, gt=0)
    """After authentication: requests per second per API key / JWT subject."""
    per_key_burst: int = Field(200, gt=0)
    """After authentication: bucket size per API key / JWT subject."""
    tracked_clients: int = Field(10_000, ge=1)
    """Buckets kept per kind (addresses, keys); the least recently seen is forgotten beyond it."""


class KeyVerificationSettings(StrictModel):
    """Checking presented API keys. Malformed keys and unknown key ids never reach argon2."""

    max_parallel: int = Field(2, ge=1)
    """argon2 verifications running at once (each takes the hash's memory cost, 64 MiB by default)."""
    max_waiting: int = Field(32, ge=0)
    """Verifications waiting for a slot; beyond it 429 with Retry-After."""
    cache_seconds: Duration = Field(300.0, ge=0)
    """A successful verification is remembered this long (0: never); rotating or revoking the key ends it
    at once."""


class KeyHashSettings(StrictModel):
    """argon2id cost of new API key secrets (RFC 9106 low-memory profile by default). Existing hashes
    keep the parameters they were made with, so changing these never locks out a key."""

    time_cost: int = Field(3, ge=1)
    """argon2id iterations."""
    memory_kib: int = Field(65536, ge=8)
    """argon2id memory per hash, KiB."""
    parallelism: int = Field(4, ge=1)
    """argon2id lanes."""


_TEMPLATE_FIELDS = re.compile(r"{([^{}]*)}")
TRACE_URL_FIELDS = ("trace_id", "span_id")


class UiSettings(StrictModel):
    """The web UI served on the API port."""

    trace_url_template: str | None = None
    """Link from an incident's example spans to your trace viewer, e.g.
    ``http://jaeger:16686/trace/{trace_id}`` (Jaeger) or
    ``http://grafana:3000/explore?left=...{trace_id}...`` (Tempo); ``{trace_id}`` (32 hex) and
    ``{span_id}`` (16 hex) are replaced. Null: trace ids are shown without a link."""
    poll_seconds: Duration = Field(5.0, ge=1, le=300)
    """How often open pages refresh their data (the incidents list, an incident, a stream)."""

    @field_validator("trace_url_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("trace_url_template must be an http:// or https:// URL")
        names = _TEMPLATE_FIELDS.findall(value)
        unknown = sorted({n for n in names if n not in TRACE_URL_FIELDS})
        if unknown:
            raise ValueError(f"trace_url_template: unknown placeholder(s) {', '.join(unknown)}; "
                             f"use {{trace_id}} and {{span_id}}")
        if "trace_id" not in names:
            raise ValueError("trace_url_template must contain {trace_id}")
        return value


class ApiSettings(StrictModel):
    listen: HostPort = "0.0.0.0:8080"
    """API, web UI, /metrics and health checks."""
    public_url: str | None = None
    """The URL people reach the web UI at (e.g. ``https://driftlock.example.com``): incident links in
    notifications and in the API's ``url`` fields start with it. Unset: the API answers with the URL the
    client used, notifications with this gateway's own address (``listen``, localhost for a wildcard)."""
    tls: TLSServerSettings = TLSServerSettings()
    jwt_secret: SecretStr | None = None
    """``JWT_SECRET``: HS256 bearer tokens are accepted when set; at least 32 characters."""
    jwt_issuer: str | None = "driftlock"
    """Required ``iss`` claim of JWT bearer tokens (null: not checked)."""
    jwt_audience: str | None = "driftlock-api"
    """Required ``aud`` claim of JWT bearer tokens (null: not checked)."""
    jwt_max_lifetime_seconds: Duration = Field(86_400.0, gt=0)
    """Longest JWT lifetime accepted: ``exp`` minus ``iat`` (or minus now without ``iat``)."""
    auth_required: bool = True
    """``/v1`` refuses unauthenticated requests. Turn off only on a trusted loopback."""
    rate_limit: RateLimitSettings = RateLimitSettings()
    profiling_enabled: bool = True
    """Allow admin-only CPU and memory profiling under /v1/debug."""
    key_hash: KeyHashSettings = KeyHashSettings()
    """Cost of hashing new API key secrets; existing keys keep the cost they were made with."""
    key_verification: KeyVerificationSettings = KeyVerificationSettings()
    http_limits: HttpServerLimits = HttpServerLimits()
    """Slow and hostile clients on the API port."""
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    """Largest request body the API reads (413 beyond it)."""
    ui: UiSettings = UiSettings()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or value == "":  # ``${VAR:-}`` left unset
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"expected an http:// or https:// URL without query, got {value!r}")
        return value.rstrip("/")

    @field_validator("jwt_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters")
        return value
