"""What the first log lines tell a new operator: where the data lives, where the UI is, how to get in.

Why a command line rather than a bootstrap key printed in the log: logs are not a secret channel. They
are shipped to aggregators, kept for weeks and readable by everyone with ``kubectl logs``, so an admin
secret written there is a credential leak waiting for an audit; several replicas starting at once would
each mint one. Creating the first admin key stays an explicit act of someone with shell access to the
store (``api-keys create`` prints the secret once, on that person's terminal); the log says exactly
which command, pointed at this gateway's store.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from otlp_gateway.config import GatewayConfig
from otlp_gateway.store.base import ApiKey

_ANY_HOST = ("", "0.0.0.0", "::", "[::]")


def describe_store(config: GatewayConfig, data_dir: Path) -> str:
    """``SQLite database FILE`` or ``PostgreSQL at host:port/db as user U`` (never the password)."""
    from otlp_gateway.store import sqlite_path

    url = config.store.database_url
    if url is None:
        return f"SQLite database {sqlite_path(config.store, data_dir)}"
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url.get_secret_value())
    except Exception:  # an unparsable DSN fails at connect with psycopg's own message; say nothing more
        return "PostgreSQL (DSN not shown)"
    where = f"{parts.get('host') or 'local socket'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"
    user = f" as user {parts['user']}" if parts.get("user") else ""
    return f"PostgreSQL at {where}{user}"


def ui_url(config: GatewayConfig, port: int | None) -> str:
    """The URL to open on this machine: a wildcard listen address becomes ``localhost``."""
    host = config.api.listen.rpartition(":")[0]
    host = "localhost" if host in _ANY_HOST else host
    scheme = "https" if config.api.tls.enabled else "http"
    return f"{scheme}://{host}:{port}/"


def create_admin_key_command(config: GatewayConfig, data_dir: Path, config_path: str | None) -> str:
    """The ``otlp-gateway api-keys create`` line that reaches this gateway's store."""
    args = ["otlp-gateway", "api-keys"]  # the store options belong to api-keys, before its sub-command
    if config_path:
        args += ["--config", config_path]
    if config.store.database_url is None:
        args += ["--data-dir", str(data_dir)]  # explicit: the default data directory is per user
    return shlex.join([*args, "create", "--role", "admin"])


def admin_key_advice(config: GatewayConfig, data_dir: Path, config_path: str | None,
                     keys: list[ApiKey]) -> str | None:
    """The warning to log when ``/v1`` needs credentials nobody can present yet; None when all is well."""
    if not config.api.auth_required:
        return f"api.auth_required is off: /v1 answers anyone who can reach {config.api.listen}"
    if any(key.role == "admin" and key.revoked_at is None for key in keys):
        return None
    command = create_admin_key_command(config, data_dir, config_path)
    where = " with DATABASE_URL (or --database-url) set to this gateway's database" \
        if config.store.database_url is not None else ""
    jwt = " (or present an HS256 JWT with role admin signed with JWT_SECRET)" if config.api.jwt_secret else ""
    return (f"no admin API key exists yet: every /v1 call answers 401 until one is created{jwt}. "
            f"Create it with: {command}{where} (its secret is printed once, on your terminal)")
