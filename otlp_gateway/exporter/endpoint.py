"""Turn the configured endpoint into what a transport needs: protocol, TLS on/off, target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from otlp_gateway.exporter.settings import ExporterSettings

Protocol = Literal["grpc", "http/protobuf"]
_DEFAULT_PORT: dict[Protocol, int] = {"grpc": 4317, "http/protobuf": 4318}


@dataclass(frozen=True, slots=True)
class Endpoint:
    protocol: Protocol
    tls: bool
    host: str
    port: int
    base_path: str
    """HTTP only: a path prefix before ``/v1/<signal>`` (empty for most collectors)."""

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.port}"

    def http_url(self, path: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}{self.base_path}{path}"

    def describe(self) -> str:
        """For logs: never includes credentials (userinfo is not kept at all)."""
        scheme = ("grpc" if self.protocol == "grpc" else "http") + ("s" if self.tls else "")
        return f"{scheme}://{self.host}:{self.port}{self.base_path} ({self.protocol})"


def parse_endpoint(settings: ExporterSettings) -> Endpoint:
    """Scheme picks TLS (grpcs/https) and, with ``protocol: auto``, the transport (grpc* vs http*).

    ``grpc://`` uses TLS only when ``tls.insecure`` is false, as the collector's ``insecure`` flag does.
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
    return Endpoint(protocol=protocol, tls=tls, host=host, port=parts.port or _DEFAULT_PORT[protocol],
                    base_path=parts.path.rstrip("/") if protocol == "http/protobuf" else "")
