"""The :8080 operations surface: health checks, ``/metrics``, the REST API with API keys / JWT,
the audit log, rate limits, profiling and the small web UI.

Exports resolve lazily: ``otlp_gateway.config`` imports ``otlp_gateway.api.settings``, and that must
not pull in FastAPI, uvicorn and pyinstrument (nor loop back into the half-imported config).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ApiContext": ".context",
    "ApiServer": ".server",
    "ApiApplicationLoader": ".server",
    "create_api_app": ".app",
    "Principal": ".auth",
    "make_jwt": ".auth",
    "KeyNotFoundError": ".keys",
    "KeyRevokedError": ".keys",
    "cli_create_key": ".keys",
    "cli_list_keys": ".keys",
    "cli_revoke_key": ".keys",
    "cli_rotate_key": ".keys",
    "password_hasher": ".keys",
    "StreamControl": "otlp_gateway.streams.control",
}

__all__ = [
    "ApiApplicationLoader",
    "ApiContext",
    "ApiServer",
    "KeyNotFoundError",
    "KeyRevokedError",
    "Principal",
    "StreamControl",
    "cli_create_key",
    "cli_list_keys",
    "cli_revoke_key",
    "cli_rotate_key",
    "create_api_app",
    "make_jwt",
    "password_hasher",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from otlp_gateway.streams.control import StreamControl

    from .app import create_api_app
    from .auth import Principal, make_jwt
    from .context import ApiContext
    from .keys import (
        KeyNotFoundError,
        KeyRevokedError,
        cli_create_key,
        cli_list_keys,
        cli_revoke_key,
        cli_rotate_key,
        password_hasher,
    )
    from .server import ApiApplicationLoader, ApiServer
