"""The gateway's one typed configuration object and how it is loaded.

Loading order (later wins): built-in defaults < the OpenTelemetry SDK variables
``OTEL_EXPORTER_OTLP_*`` (downstream exporter only; see ``exporter/otel_env.py``) < YAML file (``${VAR}`` /
``${VAR:-default}`` expanded before parsing, ``$$`` escapes a dollar) < the runbook's environment knobs
(``DATABASE_URL``, ``JWT_SECRET``, ``DB_MAX_OPEN_CONNS``, ``DB_MAX_IDLE_CONNS``, ``DB_CONN_MAX_LIFETIME``,
``GLOBAL_RATE_LIMIT_RPS``, ``GLOBAL_RATE_LIMIT_BURST``; and ``DRIFTLOCK_WEBHOOK_SECRET``, the incident
webhook's signing key) < command-line flags.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError

from otlp_gateway.api.settings import ApiSettings
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.exporter.otel_env import apply_otel_exporter_env
from otlp_gateway.exporter.settings import ExporterSettings
from otlp_gateway.incidents.settings import IncidentSettings, NotifySettings
from otlp_gateway.log_setup import LogFormat
from otlp_gateway.receiver.settings import ReceiverSettings
from otlp_gateway.settings_base import Duration, StrictModel, parse_duration_seconds
from otlp_gateway.store.settings import StoreSettings


class GatewayConfig(StrictModel):
    data_dir: str = Field(default_factory=lambda: platformdirs.user_data_dir("driftlock-otlp-gateway"))
    """Embedded SQLite store, export spool and anomaly spool live here."""
    data_dir_budget_bytes: int = Field(3_758_096_384, ge=0)
    """Size budget of everything under data_dir; at it, new ingest is refused with UNAVAILABLE / 503 and a
    retry hint until space is freed (see driftlock_data_dir_bytes). The default, 3.5 GiB, fits the
    manifests' 4 GiB data volume with headroom for data already accepted. 0: unlimited."""
    shutdown_grace_seconds: Duration = Field(30.0, ge=0)
    """On SIGTERM/SIGINT: stop accepting, then drain queues for at most this long."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log verbosity (logs go to stderr). Per-request lines (each forwarded HTTP batch) only at debug."""
    log_format: LogFormat = "text"
    """text: ``time level logger: message`` lines; json: one object per line with ts, level, logger, msg
    and the record's fields."""
    receiver: ReceiverSettings = ReceiverSettings()
    exporter: ExporterSettings = ExporterSettings()
    store: StoreSettings = StoreSettings()
    detection: DetectionSettings = DetectionSettings()
    incidents: IncidentSettings = IncidentSettings()
    notify: NotifySettings = NotifySettings()
    api: ApiSettings = ApiSettings()

    def masked(self) -> dict[str, Any]:
        """The resolved configuration as plain data with every secret replaced by ``***``."""
        return _mask(self.model_dump(mode="python"))

    def config_hash(self) -> str:
        """Stable hash of the resolved configuration without its secrets (a secret only counts as set or
        not): safe to publish, since no secret can be guessed offline against it."""
        plain = self.masked()
        return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def secrets_set(self) -> dict[str, bool]:
        """``{"api.jwt_secret": True, ...}``: which secret settings have a value."""
        return _secrets_set(self, "")


class ConfigError(Exception):
    """Invalid configuration; ``errors`` holds one ``path: message`` line per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("invalid configuration:\n" + "\n".join(f"  {e}" for e in errors))
        self.errors = errors


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, env: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; ``$$`` is a literal ``$``. Unset without default: ''."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        value = env.get(m.group(1))
        if value is None or (value == "" and m.group(2) is not None):
            return m.group(2) or ""
        return value

    return _VAR.sub(repl, text)


# Environment knob -> (path in the config, converter). The runbook's names, kept as is, and the webhook's
# signing key (a secret, better not written in the file).
ENV_KNOBS: dict[str, tuple[tuple[str, ...], Any]] = {
    "DATABASE_URL": (("store", "database_url"), str),
    "JWT_SECRET": (("api", "jwt_secret"), str),
    "DB_MAX_OPEN_CONNS": (("store", "max_open_conns"), int),
    "DB_MAX_IDLE_CONNS": (("store", "max_idle_conns"), int),
    "DB_CONN_MAX_LIFETIME": (("store", "conn_max_lifetime_seconds"), parse_duration_seconds),
    "GLOBAL_RATE_LIMIT_RPS": (("api", "rate_limit", "rps"), float),
    "GLOBAL_RATE_LIMIT_BURST": (("api", "rate_limit", "burst"), int),
    "DRIFTLOCK_WEBHOOK_SECRET": (("notify", "webhook", "secret"), str),
}


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, ...], Any] | None = None,
) -> GatewayConfig:
    """Build the configuration; raise ``ConfigError`` listing every problem with its path."""
    env = os.environ if env is None else env
    errors: list[str] = []
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
        try:
            loaded = yaml.safe_load(expand_env(text, env))
        except yaml.YAMLError as exc:
            raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{path}: the top level must be a mapping, got {type(loaded).__name__}"])
        data = loaded
    for name, (target, convert) in ENV_KNOBS.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            _set_path(data, target, convert(raw))
        except ValueError as exc:
            errors.append(f"env {name}: {exc}")
    for target, value in (overrides or {}).items():
        if value is not None:
            _set_path(data, target, value)
    # lowest of the sources: fills only exporter settings that nothing above set
    errors.extend(apply_otel_exporter_env(data, env))
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        errors.extend(_format_validation(exc))
        raise ConfigError(errors) from None
    if errors:
        raise ConfigError(errors)
    return config


def _format_validation(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{where}: {msg}")
    return lines


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def _secrets_set(model: BaseModel, prefix: str) -> dict[str, bool]:
    found: dict[str, bool] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found.update(_secrets_set(value, f"{prefix}{name}."))
        elif isinstance(value, SecretStr) or "SecretStr" in str(field.annotation):
            found[f"{prefix}{name}"] = bool(value) if isinstance(value, dict) else value is not None
    return found
