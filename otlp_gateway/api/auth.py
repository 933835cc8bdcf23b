"""Who is calling ``/v1``: an API key (``Authorization: Bearer dlk_...`` or ``X-API-Key``) or an HS256 JWT.

Secure by default: no credentials, a malformed or unknown key, a revoked or rotated-away secret, or a bad,
expired or unsigned JWT all get 401 with ``WWW-Authenticate``. Roles: ``read`` may only GET; ``admin``
may do everything. JWTs carry ``sub``, ``role`` and ``exp`` (and ``iss`` must match when present).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from otlp_gateway.store.base import ApiRole

from .errors import ApiError
from .keys import KEY_PREFIX, ROLES, KeyVerifier, parse_key

log = logging.getLogger(__name__)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_JWT_LEEWAY_SECONDS = 5
_CHALLENGE = 'Bearer realm="driftlock"'

bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="An API key `dlk_<key_id>.<secret>` or an HS256 JWT (claims sub, role, exp)")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                              description="An API key `dlk_<key_id>.<secret>`")


@dataclass(frozen=True, slots=True)
class Principal:
    actor: str
    """The audit name: ``key:<key_id>``, ``jwt:<sub>`` or ``anonymous`` (auth turned off)."""
    role: ApiRole


def _unauthorized(detail: str, invalid: bool = True) -> ApiError:
    challenge = f'{_CHALLENGE}, error="invalid_token"' if invalid else _CHALLENGE
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": challenge})


def make_jwt(secret: str, subject: str, role: ApiRole, ttl_seconds: float = 3600.0,
             issuer: str | None = "driftlock") -> str:
    """Mint a bearer token the API accepts (ops tooling and tests)."""
    now = dt.datetime.now(dt.UTC)
    claims: dict[str, object] = {"sub": subject, "role": role, "iat": now,
                                 "exp": now + dt.timedelta(seconds=ttl_seconds)}
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_jwt(token: str, secret: str, issuer: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], leeway=_JWT_LEEWAY_SECONDS,
                            options={"require": ["sub", "role", "exp"]})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("the bearer token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise _unauthorized(f"the bearer token is not valid: {exc}") from None
    if "iss" in claims and claims["iss"] != issuer:
        raise _unauthorized(f"the bearer token's issuer is not {issuer!r}")
    role = claims.get("role")
    if role not in ROLES:
        raise _unauthorized(f"the bearer token's role must be one of {', '.join(ROLES)}")
    return Principal(actor=f"jwt:{claims['sub']}", role=role)


async def _principal_from(request: Request, presented: str) -> Principal:
    ctx = request.app.state.ctx
    if presented.startswith(KEY_PREFIX):
        verifier: KeyVerifier = request.app.state.key_verifier
        key = await verifier.verify(presented)
        if key is None:
            # The runbook's compromised-key step starts with "review logs for unauthorized access".
            parsed = parse_key(presented)
            log.warning("refused API key %s from %s", parsed[0] if parsed else "<malformed>",
                        request.client.host if request.client else "?")
            raise _unauthorized("the API key is unknown, revoked, rotated or malformed")
        return Principal(actor=f"key:{key.key_id}", role=key.role)
    secret = ctx.config.api.jwt_secret
    if secret is None:
        raise _unauthorized("bearer tokens are not accepted here (no JWT_SECRET configured); use an API key")
    return decode_jwt(presented, secret.get_secret_value(), ctx.config.api.jwt_issuer)


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """Router-wide dependency for ``/v1``: resolves the caller and enforces the read role's GET-only rule."""
    presented = api_key or (bearer.credentials if bearer else None)
    if presented:
        principal = await _principal_from(request, presented.strip())
    elif not request.app.state.ctx.config.api.auth_required:
        principal = Principal(actor="anonymous", role="admin")
    else:
        raise _unauthorized("credentials required: send `Authorization: Bearer <API key or JWT>`",
                            invalid=False)
    if principal.role != "admin" and request.method not in _READ_METHODS:
        raise ApiError(403, "forbidden", f"role {principal.role!r} may only read; this needs an admin key")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if principal.role != "admin":
        raise ApiError(403, "forbidden", "this route needs an admin key or token")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]
