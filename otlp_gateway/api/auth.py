"""Who is calling ``/v1``: an API key (``Authorization: Bearer dlk_...`` or ``X-API-Key``) or an HS256 JWT.

Secure by default: no credentials, a malformed or unknown key, a revoked or rotated-away secret, or a bad,
expired or unsigned JWT all get 401 with ``WWW-Authenticate`` and a sentence saying which. Roles: ``read``
may only GET; ``operator`` may GET and act on incidents (the routes marked ``operator_action``); ``admin``
may do everything. JWTs must carry ``sub``, ``role`` and ``exp``, plus ``iss`` and
``aud`` equal to ``api.jwt_issuer`` / ``api.jwt_audience`` when those are set, and may live at most
``api.jwt_max_lifetime_seconds`` (``exp`` minus ``iat``, or minus now without ``iat``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from otlp_gateway.store.base import ApiRole

from .errors import ApiError
from .keys import KEY_PREFIX, ROLES, KeyVerifier, VerificationBusy, parse_key
from .limits import ApiRateLimits

log = logging.getLogger(__name__)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OPERATOR_ENDPOINTS: set[Callable[..., Any]] = set()
F = TypeVar("F", bound=Callable[..., Any])


def operator_action(endpoint: F) -> F:
    """Mark a route an ``operator`` may call (besides reading): the incident actions."""
    _OPERATOR_ENDPOINTS.add(endpoint)
    return endpoint
_JWT_LEEWAY_SECONDS = 5
_CHALLENGE = 'Bearer realm="driftlock"'

bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="An API key `dlk_<key_id>.<secret>` or an HS256 JWT (claims sub, role, exp, iss, aud)")
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
             issuer: str | None = "driftlock", audience: str | None = "driftlock-api") -> str:
    """Mint a bearer token the API accepts with the default settings (ops tooling and tests)."""
    now = dt.datetime.now(dt.UTC)
    claims: dict[str, object] = {"sub": subject, "role": role, "iat": now,
                                 "exp": now + dt.timedelta(seconds=ttl_seconds)}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True, slots=True)
class JwtPolicy:
    secret: str
    issuer: str | None
    audience: str | None
    max_lifetime_seconds: float


def decode_jwt(token: str, policy: JwtPolicy) -> Principal:
    required = ["sub", "role", "exp"]
    required += ["iss"] if policy.issuer else []
    required += ["aud"] if policy.audience else []
    try:
        claims = jwt.decode(token, policy.secret, algorithms=["HS256"], leeway=_JWT_LEEWAY_SECONDS,
                            issuer=policy.issuer, audience=policy.audience,
                            options={"require": required, "verify_aud": policy.audience is not None})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("the bearer token has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _unauthorized(f"the bearer token has no {exc.claim!r} claim") from None
    except jwt.InvalidIssuerError:
        raise _unauthorized(f"the bearer token's issuer (iss) is not {policy.issuer!r}") from None
    except jwt.InvalidAudienceError:
        raise _unauthorized(f"the bearer token's audience (aud) is not {policy.audience!r}") from None
    except jwt.ImmatureSignatureError:
        raise _unauthorized("the bearer token is not valid yet (nbf or iat in the future)") from None
    except jwt.InvalidSignatureError:
        raise _unauthorized("the bearer token's signature does not verify") from None
    except jwt.DecodeError:
        raise _unauthorized("the bearer token is neither an API key nor a well-formed HS256 JWT") from None
    except jwt.InvalidTokenError as exc:
        raise _unauthorized(f"the bearer token is not valid: {exc}") from None
    issued = claims.get("iat")
    start = issued if isinstance(issued, int | float) else dt.datetime.now(dt.UTC).timestamp()
    lifetime = claims["exp"] - start
    if lifetime > policy.max_lifetime_seconds + _JWT_LEEWAY_SECONDS:
        raise _unauthorized(f"the bearer token lives {lifetime:.0f} s, longer than the "
                            f"{policy.max_lifetime_seconds:.0f} s allowed (api.jwt_max_lifetime_seconds)")
    role = claims.get("role")
    if role not in ROLES:
        raise _unauthorized(f"the bearer token's role must be one of {', '.join(ROLES)}")
    return Principal(actor=f"jwt:{claims['sub']}", role=role)


async def _principal_from(request: Request, presented: str) -> Principal:
    ctx = request.app.state.ctx
    if presented.startswith(KEY_PREFIX):
        verifier: KeyVerifier = request.app.state.key_verifier
        try:
            key = await verifier.verify(presented)
        except VerificationBusy as exc:
            raise ApiError(429, "rate_limited", str(exc), {"Retry-After": "1"}) from None
        if key is None:
            # The runbook's compromised-key step starts with "review logs for unauthorized access".
            parsed = parse_key(presented)
            log.warning("refused API key %s from %s", parsed[0] if parsed else "<malformed>",
                        request.client.host if request.client else "?")
            if parsed is None:
                raise _unauthorized("the API key is malformed (expected dlk_<16 hex>.<secret>)")
            raise _unauthorized("the API key is unknown, revoked or rotated, or its secret is wrong")
        return Principal(actor=f"key:{key.key_id}", role=key.role)
    api = ctx.config.api
    if api.jwt_secret is None:
        raise _unauthorized("bearer tokens are not accepted here (no JWT_SECRET configured); use an API key")
    policy = JwtPolicy(api.jwt_secret.get_secret_value(), api.jwt_issuer, api.jwt_audience,
                       api.jwt_max_lifetime_seconds)
    return decode_jwt(presented, policy)


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
        if principal.role != "operator":
            raise ApiError(403, "forbidden",
                           f"role {principal.role!r} may only read; this needs an admin key")
        if request.scope.get("endpoint") not in _OPERATOR_ENDPOINTS:
            raise ApiError(403, "forbidden", "role 'operator' may read and act on incidents; this needs an "
                                             "admin key")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


async def rate_limit_caller(request: Request, principal: CurrentPrincipal) -> None:
    """Router-wide dependency for ``/v1`` after ``authenticate``: the caller's own bucket, then the shared
    one (429 + Retry-After)."""
    limits: ApiRateLimits = request.app.state.rate_limits
    retry_after = limits.after_auth(principal.actor)
    if retry_after is not None:
        raise ApiError(429, "rate_limited", f"too many requests from {principal.actor}; retry after "
                                            f"{retry_after} s", {"Retry-After": str(retry_after)})


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if principal.role != "admin":
        raise ApiError(403, "forbidden", "this route needs an admin key or token")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]
