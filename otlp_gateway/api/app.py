"""Assembles the :8080 application: health and metrics (open), ``/v1`` (authenticated, rate limited), UI."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from otlp_gateway import __version__

from .auth import authenticate, rate_limit_caller
from .context import ApiContext
from .errors import error_responses, install_error_handlers
from .keys import KeyVerifier, password_hasher
from .limits import ApiRateLimits
from .middleware import RateLimitMiddleware, RequestMetricsMiddleware
from .profiling import Diagnostics
from .routes import anomalies, audit, debug, health, incidents, keys, metrics, streams, ui


def create_api_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Driftlock OTLP gateway",
        version=__version__,
        description="Incidents, anomalies, streams, API keys, audit log and diagnostics of one gateway. "
                    "`/v1` needs `Authorization: Bearer <dlk_ API key or HS256 JWT>`.",
        openapi_url="/openapi.json",
        docs_url=None,  # Swagger UI would load assets from a CDN; the OpenAPI document is enough
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.key_verifier = KeyVerifier(ctx.store, ctx.config.api.key_verification, ctx.metrics)
    app.state.rate_limits = limits = ApiRateLimits(ctx.config.api.rate_limit, ctx.rate_limiter, ctx.metrics)
    app.state.key_hasher = password_hasher(ctx.config.api.key_hash)
    app.state.diagnostics = Diagnostics()
    install_error_handlers(app)

    app.include_router(health.router)
    app.include_router(metrics.router)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authenticate), Depends(rate_limit_caller)],
                   responses=error_responses(400, 401, 403, 422, 429, 503))
    for module in (incidents, anomalies, streams, keys, audit, debug):
        v1.include_router(module.router)
    v1.include_router(streams.services_router)
    v1.include_router(ui.session_router)
    app.include_router(v1)
    app.include_router(ui.router)
    app.state.ui_assets = assets = ui.static_files(ctx.config.api)
    app.mount("/ui", assets, name="ui")

    # Added last = outermost: metrics see every request, including the ones the buckets refuse.
    app.add_middleware(RateLimitMiddleware, limits=limits)
    app.add_middleware(RequestMetricsMiddleware, metrics=ctx.metrics)
    return app
