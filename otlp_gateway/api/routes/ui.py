"""The web UI: one HTML shell for every page, ES modules and CSS from ``otlp_gateway/api/ui`` (no build
step, nothing from another origin), the few settings the pages need, and ``/v1/me`` (who the caller is and
what the UI may offer them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response
from starlette.types import Scope

from otlp_gateway import __version__

from ..auth import CurrentPrincipal
from ..keys import ROLES

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

# Scripts, styles and data only from this origin, nothing inline (no 'unsafe-inline', no eval); pages may
# not be framed, forms post only here. Trusted Types with no policy: the UI never assigns HTML strings to
# the DOM (text nodes and elements only), so any sink that parses markup is refused by the browser.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
))
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                  "Cache-Control": "no-cache"}
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY",
                **COMMON_HEADERS}

router = APIRouter(include_in_schema=False)


def _page() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


# Every page is the same shell; the page's module renders from the URL (links and reloads work).
@router.get("/")
async def incidents_page() -> FileResponse:
    return _page()


@router.get("/incidents/{incident_id}")
async def incident_page(incident_id: Annotated[str, PathParam(max_length=128)]) -> FileResponse:
    return _page()


@router.get("/streams")
async def streams_page() -> FileResponse:
    return _page()


@router.get("/streams/{stream_id:path}")
async def stream_page(stream_id: Annotated[str, PathParam(max_length=512)]) -> FileResponse:
    return _page()


@router.get("/admin/keys")
async def keys_page() -> FileResponse:
    return _page()


@router.get("/admin/audit")
async def audit_page() -> FileResponse:
    return _page()


@router.get("/signin")
async def signin_page() -> FileResponse:
    return _page()


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """Browsers ask for it on any document of this origin (the JSON ones too)."""
    return FileResponse(UI_DIR / "favicon.svg", media_type="image/svg+xml", headers=COMMON_HEADERS)


@router.get("/ui/settings.json")
async def ui_settings(request: Request) -> JSONResponse:
    """What the pages need before signing in: nothing secret."""
    api = request.app.state.ctx.config.api
    body = {"version": __version__, "auth_required": api.auth_required,
            "jwt_accepted": api.jwt_secret is not None,
            "trace_url_template": api.ui.trace_url_template, "poll_seconds": api.ui.poll_seconds}
    return JSONResponse(body, headers=COMMON_HEADERS)


@router.get("/ui/status.json")
async def ui_status(request: Request) -> JSONResponse:
    """The readiness the header shows, always with 200: a gateway that is not ready is an answer for the
    page, not a failed request (``/readyz`` keeps its 503 for probes)."""
    health = request.app.state.ctx.health
    reasons = health.reasons()
    body = {"ready": health.serving and not reasons, "phase": health.phase.value, "reasons": reasons}
    return JSONResponse(body, headers=COMMON_HEADERS)


class _UiFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(COMMON_HEADERS)
        return response


def static_files() -> StaticFiles:
    return _UiFiles(directory=UI_DIR)


# --- /v1/me

CAPABILITIES: dict[str, tuple[str, ...]] = {
    "admin": ("incidents.act", "streams.edit", "keys.manage", "audit.read"),
    "operator": ("incidents.act",),
    "read": (),
}
"""What each role may do, as the UI offers it (the routes enforce it; the UI only hides what would be
refused)."""


class MeOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str
    """The audit name: ``key:<key_id>``, ``jwt:<sub>`` or ``anonymous`` (auth turned off)."""
    role: str
    capabilities: list[str]
    """Among incidents.act, streams.edit, keys.manage, audit.read."""
    auth_required: bool
    roles: list[str]
    """The roles an API key can be created with."""


session_router = APIRouter(tags=["session"])


@session_router.get("/me", response_model=MeOut, summary="Who the credentials belong to and what they may do")
async def me(request: Request, who: CurrentPrincipal) -> MeOut:
    return MeOut(actor=who.actor, role=who.role, capabilities=list(CAPABILITIES.get(who.role, ())),
                 auth_required=request.app.state.ctx.config.api.auth_required, roles=list(ROLES))
