"""Shared pieces of the typed configuration: a strict base model and common field types."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]*):(\d{1,5})$")


def _check_hostport(value: str) -> str:
    match = _HOSTPORT.match(value)
    if not match or not 0 <= int(match.group(2)) <= 65535:
        raise ValueError(f"expected HOST:PORT (for example 0.0.0.0:4317), got {value!r}")
    return value


HostPort = Annotated[str, AfterValidator(_check_hostport)]
"""``host:port``; an empty host means all interfaces; port 0 asks the OS for a free port."""


# Go's time.ParseDuration units (what the collector's YAML and the runbook's knobs are written in).
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(?:\.\d*)?|\.\d+)$")


def parse_duration_seconds(text: str) -> float:
    """``90`` (seconds), ``90s``, ``15m``, ``1h30m``, ``1.5h``, ``250ms`` -> seconds.

    A Go duration string as the collector writes them, or a plain number of seconds."""
    value = text.strip()
    if _PLAIN_NUMBER.match(value):
        return float(value)
    sign = -1.0 if value.startswith("-") else 1.0
    body = value.lstrip("+-")
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ValueError(f"not a duration: {text!r} (use a number of seconds or e.g. 500ms, 30s, 5m, 1h)")
    return sign * total


def _duration(value: Any) -> Any:
    return parse_duration_seconds(value) if isinstance(value, str) else value


Duration = Annotated[float, BeforeValidator(_duration)]
"""Seconds: a number, or a duration string as the collector writes them (``500ms``, ``30s``, ``5m``,
``1h``, ``1h30m``). Every duration field of the configuration uses this type."""


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
    header_read_timeout_seconds: Duration = Field(10.0, gt=0)
    """A request's headers must arrive within this (408 and close; an idle new connection is closed)."""
    body_read_timeout_seconds: Duration = Field(60.0, gt=0)
    """A request's whole body must arrive within this after its headers (408 and close)."""
    body_idle_timeout_seconds: Duration = Field(10.0, gt=0)
    """A body upload that stalls for this long is cut (408 and close; its buffered bytes are freed)."""
    keep_alive_timeout_seconds: Duration = Field(5.0, gt=0)
    """An idle keep-alive connection is closed after this."""


__all__ = ["Duration", "HostPort", "HttpServerLimits", "SecretStr", "StrictModel", "TLSServerSettings",
           "parse_duration_seconds"]
