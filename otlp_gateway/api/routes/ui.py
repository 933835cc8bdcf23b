"""The web UI: one HTML shell for every page, with the page's code and the stylesheet from
``otlp_gateway/api/ui`` written into it (no build step at install: each page's modules are built into one
committed bundle; nothing from another origin), the few settings the pages need, and ``/v1/me`` (who the
caller is and what the UI may offer them)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from otlp_gateway import __version__

from ..auth import CurrentPrincipal
from ..keys import ROLES
from ..settings import ApiSettings

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

# Scripts, styles and data only from this origin, and the page's own inline script and style elements,
# each allowed by its SHA-256 (never 'unsafe-inline', no eval); pages may not be framed, forms post only
# here. Trusted Types with no policy: the UI never assigns HTML strings to the DOM (text nodes and elements
# only), so any sink that parses markup is refused by the browser. ``policy`` adds a page's hashes.
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


def csp_hash(text: str) -> str:
    """The CSP source that allows exactly this inline script or style element's text."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def policy(scripts: list[str], styles: list[str]) -> str:
    """CONTENT_SECURITY_POLICY with these inline scripts and styles allowed by their hashes."""
    allowed = {"script-src": scripts, "style-src": styles}
    return "; ".join(" ".join([part, *map(csp_hash, allowed.get(part.split()[0], []))])
                     for part in CONTENT_SECURITY_POLICY.split("; "))


COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                  "Cache-Control": "no-cache"}
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY",
                **COMMON_HEADERS}

router = APIRouter(include_in_schema=False)


def _page(request: Request, page: str) -> HTMLResponse:
    assets: UiAssets = request.app.state.ui_assets
    shell, page_policy = assets.shell(page)
    return HTMLResponse(shell, headers={**PAGE_HEADERS, "Content-Security-Policy": page_policy})


# Every page is the same shell; the page's module renders from the URL (links and reloads work).
@router.get("/")
async def incidents_page(request: Request) -> HTMLResponse:
    return _page(request, "incidents")


@router.get("/incidents/{incident_id}")
async def incident_page(request: Request,
                        incident_id: Annotated[str, PathParam(max_length=128)]) -> HTMLResponse:
    return _page(request, "incident")


@router.get("/streams")
async def streams_page(request: Request) -> HTMLResponse:
    return _page(request, "streams")


@router.get("/streams/{stream_id:path}")
async def stream_page(request: Request, stream_id: Annotated[str, PathParam(max_length=512)]) -> HTMLResponse:
    # "/streams/" is the list, as the pages' own routing reads it (js/early.js strips trailing slashes)
    return _page(request, "stream" if stream_id.strip("/") else "streams")


@router.get("/admin/keys")
async def keys_page(request: Request) -> HTMLResponse:
    return _page(request, "keys")


@router.get("/admin/audit")
async def audit_page(request: Request) -> HTMLResponse:
    return _page(request, "audit")


@router.get("/signin")
async def signin_page(request: Request) -> HTMLResponse:
    return _page(request, "signin")


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """Browsers ask for it on any document of this origin (the JSON ones too)."""
    return FileResponse(UI_DIR / "favicon.svg", media_type="image/svg+xml", headers=COMMON_HEADERS)


def page_settings(api: ApiSettings) -> dict[str, Any]:
    """What the pages need before signing in: nothing secret."""
    return {"version": __version__, "auth_required": api.auth_required,
            "jwt_accepted": api.jwt_secret is not None, "trace_url_template": api.ui.trace_url_template,
            "poll_seconds": api.ui.poll_seconds}


@router.get("/ui/settings.json")
async def ui_settings(request: Request) -> JSONResponse:
    """The settings the shell carries, for other clients."""
    return JSONResponse(page_settings(request.app.state.ctx.config.api), headers=COMMON_HEADERS)


@router.get("/ui/status.json")
async def ui_status(request: Request) -> JSONResponse:
    """The readiness the header shows, always with 200: a gateway that is not ready is an answer for the
    page, not a failed request (``/readyz`` keeps its 503 for probes)."""
    health = request.app.state.ctx.health
    reasons = health.reasons()
    body = {"ready": health.serving and not reasons, "phase": health.phase.value, "reasons": reasons}
    return JSONResponse(body, headers=COMMON_HEADERS)


_PAGE_MARK = ("<!-- page: the server writes here the page's code, js/bundle/<page>.js (built by "
              "tools/build_ui.mjs), as an inline module -->\n")
_SETTINGS_MARK = "<!-- settings: the server writes here the gateway's settings for the pages -->\n"
_EARLY = '<script src="/ui/js/early.js"></script>'
_STYLE = '<link rel="stylesheet" href="/ui/style.css">'


class UiAssets:
    """The UI's files, read once into memory and served without a thread hop. A page's shell carries what a
    load needs before its data, so a cold load fetches none of it: js/early.js (the classic script that
    starts the page's first requests), the stylesheet and the page's bundle are written into it as inline
    elements, each allowed by its hash in that page's policy. The files stay served too: ``/ui/<path>``
    revalidates by ETag; ``/ui/v/<digest>/<path>``, the URLs the shell uses (the icon), is immutable: a new
    version of any file changes the digest."""

    TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
             ".svg": "image/svg+xml", ".png": "image/png", ".html": "text/html; charset=utf-8"}

    def __init__(self, root: Path = UI_DIR, settings: dict[str, Any] | None = None):
        self.files: dict[str, tuple[bytes, str, str]] = {}
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in self.TYPES):
            name = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest.update(name.encode() + b"\0" + body)
            self.files[name] = (body, self.TYPES[path.suffix], f'"{hashlib.sha256(body).hexdigest()[:20]}"')
        self.version = digest.hexdigest()[:16]
        self.prefix = f"/ui/v/{self.version}/"
        shell = self.files["index.html"][0].decode()
        # js/early.js first (parser-blocking on purpose: it starts the page's first requests as the parser
        # meets it), then the stylesheet: inline, so neither waits for a round trip. Written in last (after
        # the shell's own rewriting), so that the text the browser runs is the text hashed in the policy.
        self._early = self.text("js/early.js")
        self._style = self.text("style.css")
        inline = ((_EARLY, f"<script>{self._early}</script>"), (_STYLE, f"<style>{self._style}</style>"))
        for marker, _ in inline:
            if shell.count(marker) != 1:
                raise LookupError(f"the shell should hold {marker} once")
        # The pages' settings travel in the shell (a <meta>: data, not script), so no page waits for a
        # round trip to learn them.
        meta = f'<meta name="driftlock-settings" content="{html.escape(json.dumps(settings or {}))}">\n'
        shell = shell.replace(_SETTINGS_MARK, meta.lstrip() if settings is not None else "")
        # The shell names its other assets (the icon) under the versioned prefix.
        for attr in ("href", "src"):
            shell = shell.replace(f'{attr}="/ui/', f'{attr}="{self.prefix}')
        for marker, element in inline:
            shell = shell.replace(marker.replace('="/ui/', f'="{self.prefix}'), element)
        self._shell = shell
        self._shells: dict[str, tuple[str, str]] = {}

    def text(self, name: str) -> str:
        """A file written into the shell: text that cannot end the element it is written into."""
        text = self.files[name][0].decode()
        if re.search(r"</(script|style)", text, re.I):
            raise ValueError(f"{name} contains a closing script or style tag: it cannot be inlined")
        return text

    def shell(self, page: str) -> tuple[str, str]:
        """The shell for ``page`` and its Content-Security-Policy. Its code is ``js/bundle/<page>.js``
        (committed, built from js/main.js and js/pages/<page>.js by tools/build_ui.mjs: one file that
        imports nothing), written at the end of the head as an inline module (deferred: it runs once the
        shell is parsed), after js/early.js and the stylesheet; the policy allows these three by their
        hashes and nothing else inline."""
        if page not in self._shells:
            entry = f"js/bundle/{page}.js"
            if entry not in self.files:
                raise LookupError(f"no UI bundle {entry}: run `npm run build:ui`")
            code = self.text(entry)
            self._shells[page] = (self._shell.replace(_PAGE_MARK, f'<script type="module">{code}</script>\n'),
                                  policy([self._early, code], [self._style]))
        return self._shells[page]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].removeprefix(scope.get("root_path", "")).lstrip("/")
        immutable = False
        if path.startswith("v/"):
            version, _, path = path[2:].partition("/")
            immutable = version == self.version
        found = self.files.get(path)
        if scope["method"] not in ("GET", "HEAD") or found is None:
            raise HTTPException(404 if found is None else 405)
        body, media_type, etag = found
        headers = {**COMMON_HEADERS, "ETag": etag}
        if immutable:
            headers["Cache-Control"] = "public, max-age=31536000, immutable"
        if etag in Headers(scope=scope).get("if-none-match", ""):
            response: Response = Response(status_code=304, headers=headers)
        else:
            content = body if scope["method"] == "GET" else b""
            response = Response(content, media_type=media_type, headers=headers)
        await response(scope, receive, send)


def static_files(api: ApiSettings) -> UiAssets:
    return UiAssets(settings=page_settings(api))


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
