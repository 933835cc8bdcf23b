"""log_format (text | JSON lines), library per-request lines at DEBUG, and collector-style durations."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from otlp_gateway.config import ConfigError, load_config
from otlp_gateway.log_setup import setup_logging
from otlp_gateway.settings_base import parse_duration_seconds


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


def test_json_lines_carry_ts_level_logger_msg_and_fields(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging("info", "json", stream=out)
    log = logging.getLogger("otlp_gateway.test")
    log.info("listening on %s", "0.0.0.0:4317", extra={"port": 4317, "tls": False})
    try:
        raise ValueError("bad \"quote\"\nand newline")
    except ValueError:
        log.exception("export failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the traceback stays inside its line
    first, second = (json.loads(line) for line in lines)
    assert {"ts", "level", "logger", "msg"} <= set(first)
    assert (first["level"], first["logger"], first["msg"]) == ("INFO", "otlp_gateway.test",
                                                               "listening on 0.0.0.0:4317")
    assert (first["port"], first["tls"]) == (4317, False)
    assert first["ts"].endswith("+00:00") and "T" in first["ts"]
    assert second["level"] == "ERROR" and 'ValueError: bad "quote"' in second["exc_info"]


def test_text_format_is_the_default(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging("info", stream=out)
    logging.getLogger("otlp_gateway.test").warning("plain")
    line = out.getvalue().strip()
    assert line.endswith("WARNING otlp_gateway.test: plain")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_httpx_per_request_lines_only_at_debug(restore_logging: None, level: str, shown: bool) -> None:
    import httpx

    out = io.StringIO()
    setup_logging(level, "json", stream=out)

    def ok(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(ok)) as client:
        client.post("http://downstream.test/v1/traces", content=b"x")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    requests = [r for r in records if r["logger"] == "httpx" and "HTTP Request" in r["msg"]]
    assert len(requests) == (1 if shown else 0)
    assert all(r["level"] == "DEBUG" for r in requests)


def test_log_format_in_config_and_flag() -> None:
    assert load_config(None, env={}).log_format == "text"
    assert load_config(None, env={}, overrides={("log_format",): "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="log_format"):
        load_config(None, env={}, overrides={("log_format",): "xml"})


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("250ms", 0.25), ("500ms", 0.5),
    ("1h30m", 5400), ("1.5h", 5400), ("2m0.5s", 120.5), ("100us", 1e-4), (" 30s ", 30)])
def test_collector_duration_strings(text: str, seconds: float) -> None:
    assert parse_duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "1h 30m", "5 m", "soon", "1d"])
def test_bad_duration_strings(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_seconds(text)


def test_every_duration_field_takes_strings_and_numbers(tmp_path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("shutdown_grace_seconds: 45s\n"
                    "receiver: {admission: {retry_after_seconds: 500ms}}\n"
                    "exporter: {timeout_seconds: 5s, retry: {initial_interval_seconds: 100ms,\n"
                    "  max_interval_seconds: 1m, max_elapsed_seconds: 1h},\n"
                    "  signals: {traces: {timeout_seconds: 2s}}}\n"
                    "store: {conn_max_lifetime_seconds: 30m, flush_interval_seconds: 2}\n"
                    "detection: {snapshot_interval_seconds: 5m}\n")
    c = load_config(path, env={})
    assert c.shutdown_grace_seconds == 45 and c.receiver.admission.retry_after_seconds == 0.5
    assert (c.exporter.timeout_seconds, c.exporter.retry.initial_interval_seconds,
            c.exporter.retry.max_interval_seconds, c.exporter.retry.max_elapsed_seconds) == (5, 0.1, 60, 3600)
    assert c.exporter.for_signal("traces").timeout_seconds == 2
    assert (c.store.conn_max_lifetime_seconds, c.store.flush_interval_seconds) == (1800, 2)
    assert c.detection.snapshot_interval_seconds == 300
    path.write_text("exporter: {timeout_seconds: ten}\nstore: {flush_interval_seconds: -1s}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    errors = info.value.errors
    assert any(e.startswith("exporter.timeout_seconds: ") and "not a duration" in e for e in errors)
    assert any(e.startswith("store.flush_interval_seconds: ") for e in errors)


def test_every_seconds_field_takes_a_duration_string() -> None:
    from functools import reduce

    from pydantic import BaseModel

    from otlp_gateway.config import GatewayConfig

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from walk(annotation, (*path, name))
            elif name.endswith("_seconds"):
                yield (*path, name)

    paths = list(walk(GatewayConfig, ()))
    assert len(paths) >= 10
    for path in paths:
        config = load_config(None, env={}, overrides={path: "1m30s"})
        assert reduce(getattr, path, config) == 90, ".".join(path)
