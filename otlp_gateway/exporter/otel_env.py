"""The OpenTelemetry SDK's exporter variables (``OTEL_EXPORTER_OTLP_*``) as a configuration layer.

Precedence: flag > config file > runbook knobs > ``OTEL_*`` > default. Each setting below is taken whole
from the highest source that sets it, at the shared level or for any signal: a ``--forward-to`` or an
``exporter.endpoint`` in the file therefore silences every ``OTEL_EXPORTER_OTLP_*ENDPOINT`` (and
``*PROTOCOL``), so the gateway never splits signals between the file's downstream and the environment's.
Within the environment a per-signal variable (``OTEL_EXPORTER_OTLP_TRACES_*``) beats the shared one.

Values follow the specification: endpoints are ``http(s)://`` URLs (for gRPC a bare ``host:port`` is
accepted, TLS unless ``*_INSECURE=true``); the shared HTTP endpoint gets ``/v1/<signal>`` appended, a
per-signal one is used as-is; headers are ``k=v,k2=v2`` with percent-encoded values; the timeout is in
milliseconds; ``http/json`` is refused (the gateway forwards the protobuf bytes it received). Unlike an
SDK, the gateway has no default endpoint: ``localhost:4318`` would be itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

PREFIX = "OTEL_EXPORTER_OTLP_"
SIGNAL_INFIX = {"traces": "TRACES_", "metrics": "METRICS_", "logs": "LOGS_"}
_URL_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Setting:
    suffix: str
    """The variable's name after ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]``."""
    path: tuple[str, ...]
    """Where the value goes inside ``exporter`` (or ``exporter.signals.<signal>``)."""


# Settings taken together from one source (the client key and certificate only work as a pair).
_GROUPS: tuple[tuple[_Setting, ...], ...] = (
    (_Setting("ENDPOINT", ("endpoint",)), _Setting("PROTOCOL", ("protocol",))),
    (_Setting("HEADERS", ("headers",)),),
    (_Setting("COMPRESSION", ("compression",)),),
    (_Setting("TIMEOUT", ("timeout_seconds",)),),
    (_Setting("CERTIFICATE", ("tls", "ca_file")),),
    (_Setting("CLIENT_CERTIFICATE", ("tls", "cert_file")), _Setting("CLIENT_KEY", ("tls", "key_file"))),
)
ENV_VARIABLES: tuple[str, ...] = tuple(
    PREFIX + infix + setting.suffix
    for infix in ("", *SIGNAL_INFIX.values())
    for group in _GROUPS for setting in group) + tuple(
    PREFIX + infix + "INSECURE" for infix in ("", *SIGNAL_INFIX.values()))
"""Every variable read (for documentation and tests)."""
CONFIG_PATH_VARIABLES: dict[tuple[str, ...], str] = {
    ("exporter", *scope, *setting.path): PREFIX + infix + setting.suffix
    for scope, infix in (((), ""), *((("signals", s), i) for s, i in SIGNAL_INFIX.items()))
    for group in _GROUPS for setting in group}
"""Configuration path -> the OTEL variable that fills it when no file or flag sets it."""


def apply_otel_exporter_env(data: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """Fill ``data["exporter"]`` from ``OTEL_EXPORTER_OTLP_*`` where no higher source set the setting.

    ``data`` is the merged plain configuration of every higher source. Returns one error line per bad
    variable (``env NAME: why``)."""
    errors: list[str] = []
    exporter = data.get("exporter")
    exporter = exporter if isinstance(exporter, dict) else {}
    layer: dict[str, Any] = {}
    for group in _GROUPS:
        if any(_set_anywhere(exporter, setting.path) for setting in group):
            continue  # a higher source configures this setting; the environment's is not used
        for setting in group:
            for scope, infix in (("", ""), *SIGNAL_INFIX.items()):
                name = PREFIX + infix + setting.suffix
                raw = env.get(name, "").strip()
                if not raw:
                    continue
                try:
                    value = _convert(setting.suffix, raw, env, infix)
                except ValueError as exc:
                    errors.append(f"env {name}: {exc}")
                    continue
                target = layer if not scope else layer.setdefault("signals", {}).setdefault(scope, {})
                _put(target, setting.path, value)
    if layer:
        data["exporter"] = _merge(layer, exporter)
    return errors


def _set_anywhere(exporter: dict[str, Any], path: tuple[str, ...]) -> bool:
    signals = exporter.get("signals")
    scopes = [exporter, *(signals.values() if isinstance(signals, dict) else ())]
    return any(_get(scope, path) is not None for scope in scopes if isinstance(scope, dict))


def _get(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _put(node: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    """``high`` over ``low``, recursing into sections (``headers`` is one value, replaced whole)."""
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "headers":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _convert(suffix: str, raw: str, env: Mapping[str, str], infix: str) -> Any:
    if suffix == "ENDPOINT":
        return _endpoint(raw, _protocol_for(env, infix), _insecure_for(env, infix))
    if suffix == "PROTOCOL":
        return _protocol(raw)
    if suffix == "HEADERS":
        return parse_headers(raw)
    if suffix == "COMPRESSION":
        value = raw.lower()
        if value not in ("gzip", "none"):
            raise ValueError(f"unsupported compression {raw!r}; use gzip or none")
        return value
    if suffix == "TIMEOUT":
        try:
            millis = float(raw)
        except ValueError:
            raise ValueError(f"not a number of milliseconds: {raw!r}") from None
        if millis <= 0:
            raise ValueError(f"must be a positive number of milliseconds, got {raw!r}")
        return millis / 1000.0
    return raw  # certificate and key file paths


def _protocol(raw: str) -> str:
    value = raw.lower()
    if value == "http/json":
        raise ValueError("http/json is not supported: the gateway forwards the protobuf it received; "
                         "use http/protobuf or grpc")
    if value not in ("grpc", "http/protobuf"):
        raise ValueError(f"unknown protocol {raw!r}; use grpc or http/protobuf")
    return value


def _protocol_for(env: Mapping[str, str], infix: str) -> str | None:
    raw = (env.get(PREFIX + infix + "PROTOCOL") or env.get(PREFIX + "PROTOCOL") or "").strip()
    return raw.lower() or None


def _insecure_for(env: Mapping[str, str], infix: str) -> bool:
    raw = (env.get(PREFIX + infix + "INSECURE") or env.get(PREFIX + "INSECURE") or "").strip().lower()
    if raw and raw not in ("true", "false"):
        raise ValueError(f"{PREFIX}{infix}INSECURE must be true or false, got {raw!r}")
    return raw == "true"


def _endpoint(raw: str, protocol: str | None, insecure: bool) -> str:
    if "://" not in raw:
        if protocol != "grpc":
            raise ValueError(f"endpoint {raw!r} needs http:// or https:// (a bare host:port is only "
                             "accepted with protocol grpc)")
        # gRPC without a scheme: the specification's "insecure" option decides (default false: TLS)
        raw = ("http://" if insecure else "https://") + raw
    parts = urlsplit(raw)
    if parts.scheme.lower() not in _URL_PORT:
        raise ValueError(f"endpoint {raw!r} must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"endpoint {raw!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"endpoint {raw!r}: {exc}") from None
    if port is None:  # a URL without a port means the scheme's port (the gateway's default would be 4317/8)
        parts = parts._replace(netloc=f"{parts.netloc}:{_URL_PORT[parts.scheme.lower()]}")
    return urlunsplit(parts)


def parse_headers(raw: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` (W3C baggage-like; values percent-decoded, surrounding spaces dropped)."""
    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"header {item.strip()!r} is not key=value")
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers
