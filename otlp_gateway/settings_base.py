"""Shared pieces of the typed configuration: a strict base model and common field types."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

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


__all__ = ["HostPort", "SecretStr", "StrictModel", "TLSServerSettings"]
