"""One error shape for every API failure: ``{"error": <code>, "detail": <what was wrong>}``.

Handlers map framework exceptions (unknown route, wrong method, validation) onto the same body, so a
client never has to parse two shapes, and a client mistake is never answered with a 500.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from otlp_gateway.errors import RetryableError

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    path: str
    """Where the problem is, e.g. ``query.limit`` or ``body.verdict``."""
    message: str


class ErrorBody(BaseModel):
    error: str
    """Short machine-readable code (``unauthorized``, ``validation_failed``, ``not_found``...)."""
    detail: str
    """A sentence saying what was wrong."""
    fields: list[FieldError] | None = None


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as ``ErrorBody`` with ``status``."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def check_time_range(since: dt.datetime | None, until: dt.datetime | None) -> None:
    """400 when a list's time range is upside down."""
    if since is not None and until is not None and since > until:
        raise ApiError(400, "bad_request", "since must not be after until")


@contextlib.contextmanager
def cursor_errors() -> Iterator[None]:
    """Around a store's paged query: its ``ValueError`` for a cursor it did not issue becomes a 400."""
    try:
        yield
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"invalid cursor: {exc}") from None


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None,
                   fields: list[FieldError] | None = None) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail, fields=fields).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "rate_limited"}


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "<request>"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail, exc.headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names only the first route's).

    Asks the router itself, one method at a time, so included routers are covered without relying on
    how FastAPI stores them.
    """
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error" if exc.status_code >= 500 else "client_error")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such route"
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
    elif exc.status_code == 400 and detail == "There was an error parsing the body":
        detail = "the request body could not be parsed"
    return error_response(exc.status_code, code, detail, headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [FieldError(path=_field_path(err.get("loc", ())), message=str(err.get("msg", "invalid")))
              for err in exc.errors()]
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return error_response(400, "malformed_json", "the request body is not valid JSON", fields=fields)
    summary = "; ".join(f"{f.path}: {f.message}" for f in fields[:5])
    return error_response(422, "validation_failed", summary or "the request is not valid", fields=fields)


async def _retryable(_: Request, exc: Exception) -> JSONResponse:
    """A dependency (the store) is failing right now: 503, with the peer's hint when there is one."""
    assert isinstance(exc, RetryableError)
    retry_after = max(1, math.ceil(exc.retry_after)) if exc.retry_after else 1
    return error_response(503, "unavailable", f"a dependency is unavailable: {exc}",
                          {"Retry-After": str(retry_after)})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", f"the server failed: {type(exc).__name__}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RetryableError, _retryable)
    app.add_exception_handler(Exception, _unexpected)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting ``ErrorBody`` for each status."""
    described = {400: "Malformed request", 401: "Missing or invalid credentials",
                 403: "The credentials' role may not do this", 404: "Not found",
                 409: "Conflicts with the current state", 422: "Validation failed (field paths in `fields`)",
                 429: "Rate limited; retry after the `Retry-After` seconds", 503: "Not available now"}
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": described.get(status, "Error")}
        if status in (429, 503):
            entry["headers"] = {"Retry-After": {"description": "seconds to wait",
                                                "schema": {"type": "integer"}}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"description": "the accepted schemes",
                                                     "schema": {"type": "string"}}}
        out[status] = entry
    return out
