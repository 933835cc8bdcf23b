"""TLS material for the receivers, read once at start (a bad path fails the start, naming the file)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import grpc

from otlp_gateway.settings_base import TLSServerSettings


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise RuntimeError(f"receiver TLS: cannot read the {what} {path!r}: {exc.strerror}") from None


def grpc_server_credentials(tls: TLSServerSettings) -> grpc.ServerCredentials:
    """Server certificate and key; with ``client_ca_file``, client certificates are required (mTLS)."""
    assert tls.cert_file and tls.key_file
    key, cert = _read(tls.key_file, "private key"), _read(tls.cert_file, "certificate")
    client_ca = _read(tls.client_ca_file, "client CA") if tls.client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def uvicorn_tls_options(tls: TLSServerSettings) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.Config`` for the same settings."""
    if not tls.enabled:
        return {}
    for path, what in ((tls.cert_file, "certificate"), (tls.key_file, "private key"),
                       (tls.client_ca_file, "client CA")):
        if path:
            _read(path, what)  # fail early with a clear message rather than inside uvicorn
    options: dict[str, Any] = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
    if tls.client_ca_file:
        options.update(ssl_ca_certs=tls.client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options
