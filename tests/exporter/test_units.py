"""Pure pieces: backoff schedule, endpoint parsing, settings validation."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from otlp_gateway.durable.backoff import Backoff
from otlp_gateway.exporter.endpoint import parse_endpoint
from otlp_gateway.exporter.settings import ExporterSettings, RetrySettings


def test_backoff_grows_by_multiplier_within_jitter_up_to_the_cap() -> None:
    backoff = Backoff(RetrySettings(), random.Random(1))  # collector defaults: 5 s, x1.5, 30 s, +-50 %
    intervals = [5.0, 7.5, 11.25, 16.875, 25.3125, 30.0, 30.0]
    elapsed = 0.0
    for interval in intervals:
        delay = backoff.next_delay(elapsed)
        assert delay is not None and 0.5 * interval <= delay <= 1.5 * interval
        elapsed += delay


def test_backoff_jitter_spreads_delays() -> None:
    delays = {Backoff(RetrySettings(), random.Random(seed)).next_delay(0) for seed in range(20)}
    assert len(delays) == 20


def test_backoff_hint_lengthens_never_shortens() -> None:
    settings = RetrySettings(initial_interval_seconds=1, randomization_factor=0)
    assert Backoff(settings).next_delay(0, hint=4.0) == 4.0
    assert Backoff(settings).next_delay(0, hint=0.1) == 1.0


def test_backoff_stops_at_max_elapsed_and_zero_means_forever() -> None:
    settings = RetrySettings(initial_interval_seconds=1, randomization_factor=0, max_elapsed_seconds=10)
    limited = Backoff(settings)
    assert limited.next_delay(8.5) == 1.0
    assert limited.next_delay(9.5) is None
    forever = Backoff(RetrySettings(max_elapsed_seconds=0))
    assert forever.next_delay(1e9) is not None


def test_backoff_disabled() -> None:
    assert Backoff(RetrySettings(enabled=False)).next_delay(0) is None


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
