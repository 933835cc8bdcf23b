"""The OpenTelemetry exporter variables (OTEL_EXPORTER_OTLP_*): spec rules and precedence
flag > config file > OTEL_* > default, general and per signal."""

from __future__ import annotations

from pathlib import Path

import pytest

from otlp_gateway.config import ConfigError, load_config
from otlp_gateway.exporter.endpoint import resolve_routes
from otlp_gateway.exporter.otel_env import ENV_VARIABLES, parse_headers


def urls(env: dict[str, str], path: Path | None = None, **flags: str) -> dict[str, str]:
    overrides = {("exporter", "endpoint"): flags.get("forward_to")}
    config = load_config(path, env=env, overrides=overrides)
    routes = resolve_routes(config.exporter)
    return {signal: route.endpoint.http_url(f"/v1/{signal}") if route.endpoint.protocol != "grpc"
            else f"grpc {route.endpoint.grpc_target} tls={route.endpoint.tls}"
            for signal, route in routes.items()}


def test_general_http_endpoint_gets_the_signal_path_appended_per_signal_is_used_as_is() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/otlp/",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example.com/api/v2/spans"}
    assert urls(env) == {"traces": "https://traces.example.com:443/api/v2/spans",
                         "metrics": "http://collector:4318/otlp/v1/metrics",
                         "logs": "http://collector:4318/otlp/v1/logs"}


def test_per_signal_endpoint_without_path_is_not_given_one() -> None:
    assert urls({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs.example:9000"}) == {
        "logs": "http://logs.example:9000/"}  # metrics and traces: no endpoint, detection only


def test_general_endpoint_without_port_means_the_url_port() -> None:
    assert urls({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com"})["traces"] == \
        "https://otlp.example.com:443/v1/traces"


def test_grpc_protocol_and_bare_host_port_follow_insecure() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}
    assert urls(env)["traces"] == "grpc collector:4317 tls=True"
    assert urls({**env, "OTEL_EXPORTER_OTLP_INSECURE": "true"})["traces"] == "grpc collector:4317 tls=False"
    plain = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert set(urls(plain).values()) == {"grpc collector:4317 tls=False"}


def test_per_signal_protocol_headers_compression_timeout_and_tls(tmp_path: Path) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
           "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-tenant = shop ",
           "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-tenant=logs-team",
           "OTEL_EXPORTER_OTLP_COMPRESSION": "none", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "gzip",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "500",
           "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem",
           "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE": "/etc/m.crt",
           "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY": "/etc/m.key",
           "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://metrics.example:4317"}
    exporter = load_config(None, env=env).exporter
    traces, metrics, logs = (exporter.for_signal(s) for s in ("traces", "metrics", "logs"))
    assert {k: v.get_secret_value() for k, v in traces.headers.items()} == {
        "authorization": "Bearer abc", "x-tenant": "shop"}
    assert {k: v.get_secret_value() for k, v in logs.headers.items()} == {"x-tenant": "logs-team"}
    assert (traces.compression, metrics.compression, logs.compression) == ("none", "gzip", "none")
    assert (traces.timeout_seconds, metrics.timeout_seconds) == (0.5, 2.5)
    assert traces.tls.ca_file == metrics.tls.ca_file == "/etc/ca.pem"
    assert (metrics.tls.cert_file, metrics.tls.key_file) == ("/etc/m.crt", "/etc/m.key")
    assert traces.tls.cert_file is None
    routes = resolve_routes(exporter)
    assert routes["metrics"].endpoint.protocol == "grpc" and routes["metrics"].endpoint.tls
    assert routes["traces"].endpoint.protocol == "http/protobuf"


def test_config_file_beats_otel_variables_for_the_settings_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("exporter:\n  endpoint: grpc://from-file:4317\n  timeout_seconds: 3s\n")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://from-env:4318",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces-env:4318/v1/traces",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "20000", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "1000",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-from=env"}
    # the file sets the endpoint: no OTEL endpoint or protocol is used, for any signal
    assert set(urls(env, path).values()) == {"grpc from-file:4317 tls=False"}
    exporter = load_config(path, env=env).exporter
    assert {exporter.for_signal(s).timeout_seconds for s in ("traces", "metrics", "logs")} == {3.0}
    # what the file leaves unset still comes from the environment
    assert exporter.headers["x-from"].get_secret_value() == "env"


def test_file_per_signal_setting_silences_the_environment_for_that_setting(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("exporter:\n  signals:\n    logs:\n      endpoint: http://file-logs:4318/logs\n")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}
    assert urls(env, path) == {"logs": "http://file-logs:4318/logs"}


def test_flag_beats_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("exporter:\n  endpoint: http://from-file:4318\n")
    env = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://env:4318/m"}
    assert set(urls(env, path, forward_to="grpc://flag:4317").values()) == {"grpc flag:4317 tls=False"}
    assert set(urls(env, forward_to="grpc://flag:4317")) == {"traces", "metrics", "logs"}


def test_environment_beats_the_default() -> None:
    assert load_config(None, env={}).exporter.endpoint is None
    assert load_config(None, env={}).exporter.compression == "gzip"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_COMPRESSION": "none"}
    exporter = load_config(None, env=env).exporter
    assert (exporter.endpoint, exporter.compression) == ("http://c:4318", "none")


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/json is not supported"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift", "unknown protocol"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "not a number of milliseconds"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "br", "unsupported compression"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "needs http:// or https://"),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "ftp://collector", "http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "is not key=value"),
])
def test_bad_variables_are_named_in_the_error(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", variable: value})
    assert any(line.startswith(f"env {variable}: ") and message in line for line in info.value.errors), \
        info.value.errors


def test_headers_format() -> None:
    assert parse_headers("a=1, b = two%2Cthree ,,c=") == {"a": "1", "b": "two,three", "c": ""}


def test_every_specified_variable_is_read() -> None:
    names = ("ENDPOINT", "PROTOCOL", "HEADERS", "COMPRESSION", "TIMEOUT", "CERTIFICATE", "CLIENT_KEY",
             "CLIENT_CERTIFICATE", "INSECURE")
    expected = {f"OTEL_EXPORTER_OTLP_{scope}{name}" for scope in ("", "TRACES_", "METRICS_", "LOGS_")
                for name in names}
    assert set(ENV_VARIABLES) == expected
