"""Turn the configured endpoints into what a transport needs: protocol, TLS on/off, target, URL path.

One ``Route`` per forwarded signal. The OpenTelemetry path rule for OTLP/HTTP: the shared ``endpoint``
is a base URL to which ``/v1/<signal>`` is appended; a per-signal endpoint is used as-is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from otlp_gateway.batch import SIGNALS, Signal
from otlp_gateway.exporter.settings import ExporterSettings

Protocol = Literal["grpc", "http/protobuf"]
_DEFAULT_PORT: dict[Protocol, int] = {"grpc": 4317, "http/protobuf": 4318}
_URL_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    protocol: Protocol
    tls: bool
    host: str
    port: int
    base_path: str
    """HTTP only: a path prefix before ``/v1/<signal>`` (empty for most collectors)."""
    exact_path: str | None = None
    """HTTP only: the whole path of a per-signal endpoint, used instead of ``base_path + /v1/<signal>``."""

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.port}"

    def http_url(self, path: str) -> str:
        scheme = "https" if self.tls else "http"
        full = self.exact_path if self.exact_path is not None else self.base_path + path
        return f"{scheme}://{self.host}:{self.port}{full}"

    def describe(self) -> str:
        """For logs: never includes credentials (userinfo is not kept at all)."""
        scheme = ("grpc" if self.protocol == "grpc" else "http") + ("s" if self.tls else "")
        path = self.exact_path if self.exact_path is not None else self.base_path
        return f"{scheme}://{self.host}:{self.port}{path} ({self.protocol})"


@dataclass(frozen=True, slots=True)
class Route:
    """Where one signal goes and with which (effective) settings."""

    endpoint: Endpoint
    settings: ExporterSettings


def parse_endpoint(settings: ExporterSettings, *, exact: bool = False) -> Endpoint:
    """Scheme picks TLS (grpcs/https) and, with ``protocol: auto``, the transport (grpc* vs http*).

    ``grpc://`` uses TLS only when ``tls.insecure`` is false, as the collector's ``insecure`` flag does.
    ``exact``: a per-signal endpoint, whose HTTP path is used as-is.
    """
    if settings.endpoint is None:
        raise ValueError("no exporter endpoint configured")
    parts = urlsplit(settings.endpoint)
    scheme = parts.scheme.lower()
    if settings.protocol == "auto":
        protocol: Protocol = "grpc" if scheme in ("grpc", "grpcs") else "http/protobuf"
    else:
        protocol = settings.protocol
    if protocol == "http/protobuf" and scheme in ("grpc", "grpcs"):
        raise ValueError(f"endpoint scheme {scheme}:// cannot be used with protocol http/protobuf")
    tls = scheme in ("grpcs", "https") or (scheme == "grpc" and not settings.tls.insecure)
    if not parts.hostname:
        raise ValueError("exporter endpoint has no host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    http = protocol == "http/protobuf"
    # The shared endpoint defaults to the OTLP port of its protocol; a per-signal URL is read like any URL.
    default_port = _URL_PORT[scheme] if exact and scheme in _URL_PORT else _DEFAULT_PORT[protocol]
    return Endpoint(protocol=protocol, tls=tls, host=host, port=parts.port or default_port,
                    base_path=parts.path.rstrip("/") if http and not exact else "",
                    exact_path=(parts.path or "/") if http and exact else None)


def resolve_routes(settings: ExporterSettings) -> dict[Signal, Route]:
    """The route of every signal that has an endpoint (shared or its own); the others are not forwarded."""
    routes: dict[Signal, Route] = {}
    for signal in SIGNALS:
        effective = settings.for_signal(signal)
        if effective.endpoint is None:
            continue
        endpoint = parse_endpoint(effective, exact=settings.signal_endpoint_is_exact(signal))
        routes[signal] = Route(endpoint, effective)
    return routes
