"""Shared pieces of the typed configuration: a strict base model and common field types."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]*):(\d{1,5})$")


def _check_hostport(value: str) -> str:
    match = _HOSTPORT.match(value)
    if not match or not 0 <= int(match.group(2)) <= 65535:
        raise ValueError(f"expected HOST:PORT (for example 0.0.0.0:4317), got {value!r}")
    return value


HostPort = Annotated[str, AfterValidator(_check_hostport)]
"""``host:port``; an empty host means all interfaces; port 0 asks the OS for a free port."""


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo must fail at start naming its path)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)


class TLSServerSettings(StrictModel):
    cert_file: str | None = None
    """PEM certificate chain; TLS is on when this and key_file are set."""
    key_file: str | None = None
    """PEM private key of cert_file."""
    client_ca_file: str | None = None
    """When set, clients must present a certificate signed by this CA (mutual TLS)."""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file and self.key_file)


class HttpServerLimits(StrictModel):
    """Bounds on slow and hostile HTTP clients, per listening port (see otlp_gateway/http_guard.py)."""

    max_connections: int = Field(512, ge=1)
    """Open connections on this port. A new connection beyond it closes the connection that has waited
    longest for complete request headers; when every connection has a request in progress, the new one
    gets 503 and is closed."""
    max_header_bytes: int = Field(65_536, ge=1024)
    """Request line plus headers; larger gets 431 and the connection is closed, checked as bytes arrive."""
    header_read_timeout_seconds: float = Field(10.0, gt=0)
    """A request's headers must arrive within this (408 and close; an idle new connection is closed)."""
    body_read_timeout_seconds: float = Field(60.0, gt=0)
    """A request's whole body must arrive within this after its headers (408 and close)."""
    body_idle_timeout_seconds: float = Field(10.0, gt=0)
    """A body upload that stalls for this long is cut (408 and close; its buffered bytes are freed)."""
    keep_alive_timeout_seconds: float = Field(5.0, gt=0)
    """An idle keep-alive connection is closed after this."""


__all__ = ["HostPort", "HttpServerLimits", "SecretStr", "StrictModel", "TLSServerSettings"]
