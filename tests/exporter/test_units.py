"""Pure pieces: endpoint parsing, settings validation (backoff: tests/durable/test_backoff.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from otlp_gateway.exporter.endpoint import parse_endpoint
from otlp_gateway.exporter.settings import ExporterSettings


@pytest.mark.parametrize(("endpoint", "protocol", "tls", "target"), [
    ("grpc://collector:4317", "grpc", False, "collector:4317"),
    ("grpcs://collector", "grpc", True, "collector:4317"),
    ("http://collector:4318", "http/protobuf", False, "collector:4318"),
    ("https://collector", "http/protobuf", True, "collector:4318"),
    ("grpc://[::1]:5000", "grpc", False, "[::1]:5000"),
])
def test_endpoint_parsing(endpoint: str, protocol: str, tls: bool, target: str) -> None:
    parsed = parse_endpoint(ExporterSettings(endpoint=endpoint))
    assert (parsed.protocol, parsed.tls, parsed.grpc_target) == (protocol, tls, target)


def test_endpoint_forced_grpc_over_http_scheme_and_http_base_path() -> None:
    forced = parse_endpoint(ExporterSettings(endpoint="https://collector:443", protocol="grpc"))
    assert (forced.protocol, forced.tls) == ("grpc", True)
    prefixed = parse_endpoint(ExporterSettings(endpoint="https://example.test/otlp/"))
    assert prefixed.http_url("/v1/logs") == "https://example.test:4318/otlp/v1/logs"


def test_grpc_plain_scheme_uses_tls_when_insecure_is_off() -> None:
    settings = ExporterSettings(endpoint="grpc://collector:4317", tls={"insecure": False})
    assert parse_endpoint(settings).tls


def test_describe_never_shows_credentials() -> None:
    parsed = parse_endpoint(ExporterSettings(endpoint="https://user:hunter2@collector:4318"))
    assert "hunter2" not in parsed.describe() and "user" not in parsed.describe()


@pytest.mark.parametrize(("data", "message"), [
    ({"endpoint": "grpc://c:4317", "protocol": "http/protobuf"}, "http:// or https://"),
    ({"endpoint": "grpcs://c:4317", "tls": {"insecure_skip_verify": True}}, "insecure_skip_verify"),
    ({"endpoint": "https://c", "tls": {"cert_file": "/x.pem"}}, "set together"),
    ({"endpoint": "ftp://c"}, "must start with"),
])
def test_settings_reject_inconsistent_transport_options(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExporterSettings.model_validate(data)
