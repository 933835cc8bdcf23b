"""Liveness, readiness, database and configuration checks (always open, never rate limited)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ..context import ApiContext
from ..schemas import ConfigHealthOut, DbHealthOut, HealthOut, ReadyOut

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])
DB_PING_TIMEOUT_SECONDS = 2.0


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def _json(model, status: int) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}},
            summary="Liveness: 200 while serving, 503 while starting or draining")
async def healthz(request: Request) -> JSONResponse:
    body, status = _ctx(request).health.liveness_answer()
    return _json(HealthOut.model_validate(body), status)


@router.get("/healthz/db", response_model=DbHealthOut, responses={503: {"model": DbHealthOut}},
            summary="A real round trip to the anomaly store")
async def healthz_db(request: Request) -> JSONResponse:
    store = _ctx(request).store
    backend = getattr(store, "backend", "unknown")
    try:
        latency = await asyncio.wait_for(store.ping(), DB_PING_TIMEOUT_SECONDS)
    except TimeoutError:
        return _json(DbHealthOut(status="failing", backend=backend,
                                 error=f"no answer within {DB_PING_TIMEOUT_SECONDS} s"), 503)
    except Exception as exc:  # any failure of the store is the answer here, not a crash
        # The driver's message can name hosts and users: log it, answer only its class (open endpoint).
        log.warning("health check: store round trip failed: %s: %s", type(exc).__name__, exc)
        return _json(DbHealthOut(status="failing", backend=backend, error=f"{type(exc).__name__}"), 503)
    return _json(DbHealthOut(status="ok", backend=backend, latency_seconds=latency), 200)


@router.get("/healthz/config", response_model=ConfigHealthOut, responses={503: {"model": ConfigHealthOut}},
            summary="The loaded configuration re-validates; a hash of its non-secret part identifies it")
async def healthz_config(request: Request) -> JSONResponse:
    config = _ctx(request).config
    errors: list[str] = []
    try:
        type(config).model_validate(config.model_dump(mode="python"))
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    valid = not errors
    body = ConfigHealthOut(status="ok" if valid else "invalid", loaded=True, valid=valid,
                           config_hash=config.config_hash(), loaded_at=_ctx(request).loaded_at.isoformat(),
                           secrets_set=config.secrets_set(), errors=errors)
    return _json(body, 200 if valid else 503)


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}},
            summary="Readiness: serving, every component ready (jit, store...), ingest not refused")
async def readyz(request: Request) -> JSONResponse:
    body, status = _ctx(request).health.readiness_answer()
    return _json(ReadyOut.model_validate(body), status)
