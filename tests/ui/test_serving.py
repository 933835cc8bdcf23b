"""The UI as the server delivers it, without a browser: one shell for every page under a strict
content-security policy (the shell's inline script and style elements allowed by their hashes, nothing else
inline), self-contained assets (no CDN, no build step at install: the committed page bundles are checked
against the sources), the pages' settings, ``/v1/me``, packaging."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pydantic import ValidationError

from otlp_gateway.api.routes.ui import UI_DIR
from otlp_gateway.api.settings import UiSettings
from otlp_gateway.health import Phase
from tests.api.conftest import LiveApi, auth

REPO = Path(__file__).resolve().parents[2]
PAGE_OF = {"/": "incidents", "/incidents/inc_0123456789abcdef": "incident", "/streams": "streams",
           "/streams/traces/checkout/GET%20/cart": "stream", "/admin/keys": "keys", "/admin/audit": "audit",
           "/signin": "signin"}
PAGES = list(PAGE_OF)
TEMPLATE = "http://jaeger:16686/trace/{trace_id}"


@pytest.fixture
def ui_api(tmp_path: Path) -> Iterator[Callable[..., LiveApi]]:
    made: list[LiveApi] = []

    def make(**api_overrides: object) -> LiveApi:
        made.append(LiveApi(tmp_path / f"api{len(made)}", api_overrides=dict(api_overrides)))
        return made[-1]

    yield make
    for api in made:
        api.close()


def directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def sha256_source(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


class _Inline(HTMLParser):
    """A served shell's script and style elements: (tag, attributes, text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found: list[tuple[str, dict[str, str | None], str]] = []
        self._open: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._open, self._text = (tag, dict(attrs)), []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            self.found.append((*self._open, "".join(self._text)))
            self._open = None


def inline_elements(text: str) -> list[tuple[str, dict[str, str | None], str]]:
    parser = _Inline()
    parser.feed(text)
    return parser.found


def test_every_page_is_the_shell_under_a_strict_policy(ui_api):
    """Nothing inline runs but the shell's own three elements, each allowed by its hash: js/early.js (a
    classic script), the stylesheet and the page's bundle (a module); no 'unsafe-inline', no eval, no
    script or style from anywhere but this origin."""
    api = ui_api()
    early = (UI_DIR / "js" / "early.js").read_text()
    style = (UI_DIR / "style.css").read_text()
    for path in PAGES:
        response = api.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        policy = directives(response.headers["content-security-policy"])
        bundle = (UI_DIR / "js" / "bundle" / f"{PAGE_OF[path]}.js").read_text()
        assert policy["default-src"] == ["'none'"]
        assert policy["script-src"] == ["'self'", sha256_source(early), sha256_source(bundle)], path
        assert policy["style-src"] == ["'self'", sha256_source(style)], path
        assert not [v for values in policy.values() for v in values
                    if v in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'strict-dynamic'")]
        assert policy["connect-src"] == ["'self'"] and policy["img-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
        assert policy["require-trusted-types-for"] == ["'script'"] and policy["trusted-types"] == ["'none'"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert inline_elements(response.text) == [("script", {}, early), ("style", {}, style),
                                                  ("script", {"type": "module"}, bundle)], path
        assert "<script src=" not in response.text and 'rel="stylesheet"' not in response.text, path
    streams = (BUNDLE / "streams.js").read_text()
    # the list, as js/early.js routes it
    assert f'<script type="module">{streams}</script>' in api.client.get("/streams/").text
    assert api.client.get("/incidents/a/b").status_code == 404  # only the documented pages are pages
    assert api.client.get("/nope").json()["error"] == "not_found"


class _InlineFinder(HTMLParser):
    """Collects what a strict CSP would refuse: inline scripts, style elements and attributes, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.references: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{n} handler on <{tag}>" for n in names if n.startswith("on")]
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.problems.append("inline <script>")
        for attr in ("src", "href"):
            if names.get(attr):
                self.references.append(names[attr] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def ui_files() -> list[Path]:
    return sorted(p for p in UI_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_the_shell_has_nothing_inline_and_references_only_this_origin():
    finder = _InlineFinder()
    finder.feed((UI_DIR / "index.html").read_text())
    assert finder.problems == []
    for ref in finder.references:
        assert ref.startswith(("/", "#")) and not ref.startswith("//"), ref
        if ref.startswith("/ui/"):
            assert (UI_DIR / ref.removeprefix("/ui/")).is_file(), ref


_IMPORT = re.compile(r"""(?:from\s+|\bimport\s*\(?\s*)["']([^"']+)["']""")  # also a bare `import "./x.js"`
_HTML_SINKS = re.compile(
    r"\binnerHTML\b|\bouterHTML\b|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\b")
_ELSEWHERE = re.compile(r"https?://")


def test_modules_import_only_shipped_files_and_never_parse_markup():
    scripts = [p for p in ui_files() if p.suffix == ".js"]
    assert len(scripts) >= 10
    for script in scripts:
        text = script.read_text()
        for target in _IMPORT.findall(text):
            assert target.startswith("./") or target.startswith("../"), f"{script.name} imports {target}"
            assert (script.parent / target).resolve().is_file(), f"{script.name} imports missing {target}"
        assert not _HTML_SINKS.search(text), f"{script.name} uses an HTML/eval sink"
        # the SVG namespace is a name, not a place anything is loaded from
        assert not _ELSEWHERE.search(text.replace('"http://www.w3.org/2000/svg"', "")), \
            f"{script.name} loads something from another origin"
    css = (UI_DIR / "style.css").read_text()
    assert "url(" not in css and "@import" not in css


def test_assets_are_served_with_their_types_and_cached_by_version(ui_api):
    api = ui_api()
    shell = api.client.get("/").text
    prefix = re.search(r'href="(/ui/v/[0-9a-f]{16}/)favicon.png"', shell).group(1)  # type: ignore[union-attr]
    assert not re.search(r'(href|src)="/ui/(?!v/)', shell)  # every asset under the version
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png",
             ".html": "text/html"}
    for path in ui_files():
        name = path.relative_to(UI_DIR).as_posix()
        plain, versioned = api.client.get("/ui/" + name), api.client.get(prefix + name)
        assert plain.status_code == versioned.status_code == 200, path
        assert plain.content == versioned.content == path.read_bytes()
        assert versioned.headers["content-type"].startswith(types[path.suffix]), (path, versioned.headers)
        assert versioned.headers["x-content-type-options"] == "nosniff"
        assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert plain.headers["cache-control"] == "no-cache"  # unversioned: revalidate
        again = api.client.get("/ui/" + name, headers={"If-None-Match": plain.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    head = api.client.head(prefix + "js/main.js")
    assert head.status_code == 200 and head.content == b""
    assert api.client.get("/ui/js/missing.js").status_code == 404
    assert api.client.get("/ui/v/0000000000000000/js/main.js").headers["cache-control"] == "no-cache"
    assert api.client.post("/ui/js/main.js").status_code == 405


BUNDLE = UI_DIR / "js" / "bundle"


def test_each_page_runs_one_bundle_that_imports_nothing():
    """A page's code is one file, js/bundle/<page>.js, written into its shell (no import to fetch on a cold
    load): it imports nothing, statically or dynamically, and boots its page; every source module a page
    runs is in its bundle (js/first.js too: it only exports what js/early.js, the shell's classic script,
    set up); every source module is in some bundle."""
    files = sorted(p.name for p in BUNDLE.iterdir())
    pages = sorted(p.stem for p in (UI_DIR / "js" / "pages").glob("*.js"))
    assert files == [f"{page}.js" for page in pages] and set(PAGE_OF.values()) == set(pages)
    held: set[str] = set()
    for name in files:
        text = (BUNDLE / name).read_text()
        assert "import(" not in text and not _IMPORT.findall(text), name
        assert re.search(rf'^boot\("{name[:-3]}", \{{ render(: \w+)? \}}\);$', text, re.M), name
        held.update(re.findall(r"^// (otlp_gateway/api/ui/js/\S+\.js)$", text, re.M))
        for needed in ("main.js", "first.js", "api.js", f"pages/{name}"):
            assert f"// otlp_gateway/api/ui/js/{needed}\n" in text, (name, needed)
    sources = {p.relative_to(REPO).as_posix() for p in (UI_DIR / "js").rglob("*.js")
               if "bundle" not in p.parts and p.name != "early.js"}
    assert held == sources


def test_the_committed_bundles_are_built_from_the_sources(tmp_path: Path):
    """The page entries and shared chunks are committed (installs need no build step); after an edit of js/
    without `npm run build:ui`, this fails, as it does for a chunk file left over from an older build.
    Needs `npm ci` (tests/run.sh runs it)."""
    esbuild = REPO / "node_modules" / "esbuild"
    node = shutil.which("node")
    if node is None or not esbuild.is_dir():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("node and the npm packages (npm ci) are needed to check the UI bundles")
        pytest.skip("no node or no node_modules/esbuild (run `npm ci`)")
    subprocess.run([node, str(REPO / "tools" / "build_ui.mjs"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=120)
    built = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in (UI_DIR / "js" / "bundle").iterdir()}
    assert sorted(built) == sorted(committed), "stale UI bundle files: run `npm run build:ui`, commit them"
    stale = [name for name in built if built[name] != committed[name]]
    assert stale == [], f"stale UI bundles {stale}: run `npm run build:ui` and commit them"


def test_every_ui_file_is_packaged():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["otlp_gateway"]
    package = REPO / "otlp_gateway"
    for path in ui_files():
        relative = path.relative_to(package).as_posix()
        # setuptools' patterns do not cross "/": a pattern matches only at its own depth
        assert any(fnmatch.fnmatch(relative, p) and relative.count("/") == p.count("/")
                   for p in patterns), relative


def test_settings_for_the_pages(ui_api):
    api = ui_api(auth_required=False, ui={"trace_url_template": TEMPLATE, "poll_seconds": "2s"})
    body = api.client.get("/ui/settings.json").json()
    assert body["trace_url_template"] == TEMPLATE and body["poll_seconds"] == 2.0
    assert body["auth_required"] is False and body["jwt_accepted"] is True and body["version"]
    default = ui_api().client.get("/ui/settings.json").json()
    assert default["trace_url_template"] is None and default["auth_required"] is True


def shell_settings(text: str) -> dict:
    found = re.findall(r'<meta name="driftlock-settings" content="([^"]*)">', text)
    assert len(found) == 1, text
    return json.loads(html.unescape(found[0]))


def test_the_shell_carries_the_settings_and_starts_the_first_requests(ui_api):
    """No page waits a round trip for its settings: they are in every shell (escaped: a trace template
    with quotes and angle brackets stays data), the same as /ui/settings.json; js/early.js, which reads them
    and starts the page's first requests, is a classic (parser-blocking) script in the shell after them and
    before the stylesheet and the page's module: it runs as the parser meets it, and no file is fetched
    before it can."""
    template = 'https://traces.example/t/{trace_id}?q="<b>&x=1'
    api = ui_api(auth_required=False, ui={"trace_url_template": template, "poll_seconds": "3s"})
    served = api.client.get("/ui/settings.json").json()
    early = (UI_DIR / "js" / "early.js").read_text()
    for path in PAGES:
        text = api.client.get(path).text
        assert shell_settings(text) == served and served["trace_url_template"] == template
        assert served["auth_required"] is False and served["poll_seconds"] == 3.0
        at = text.index(f"<script>{early}</script>")
        assert text.index('name="driftlock-settings"') < at < text.index("<style>"), path
        assert text.index("<style>") < text.index('<script type="module">'), path
    assert shell_settings(ui_api().client.get("/").text)["auth_required"] is True


def test_status_is_an_answer_even_when_not_ready(ui_api):
    api = ui_api()
    assert api.client.get("/ui/status.json").json() == {"ready": True, "phase": "serving", "reasons": {}}
    api.health.set_phase(Phase.DRAINING)
    response = api.client.get("/ui/status.json")
    assert response.status_code == 200 and response.json()["ready"] is False
    assert response.json()["phase"] == "draining"
    assert api.client.get("/readyz").status_code == 503  # probes keep their status code


@pytest.mark.parametrize(("template", "message"), [
    ("http://jaeger/trace/{span_id}", "must contain {trace_id}"),
    ("http://jaeger/trace/{trace_id}/{tenant}", "unknown placeholder(s) tenant"),
    ("javascript:alert({trace_id})", "http:// or https://"),
])
def test_trace_url_template_is_validated(template: str, message: str):
    with pytest.raises(ValidationError, match=re.escape(message)):
        UiSettings(trace_url_template=template)
    assert UiSettings(trace_url_template=TEMPLATE + "?span={span_id}").trace_url_template


def test_me_says_who_and_what_the_ui_may_offer(ui_api):
    api = ui_api()
    admin, reader = api.new_key("admin", "ops"), api.new_key("read", "viewer")
    me = api.client.get("/v1/me", headers=auth(admin)).json()
    assert me["actor"].startswith("key:") and me["role"] == "admin" and me["auth_required"] is True
    assert set(me["capabilities"]) == {"incidents.act", "streams.edit", "keys.manage", "audit.read"}
    assert "read" in me["roles"] and "admin" in me["roles"]
    assert api.client.get("/v1/me", headers=auth(reader)).json()["capabilities"] == []
    refused = api.client.get("/v1/me")
    assert refused.status_code == 401 and "credentials required" in refused.json()["detail"]
    anonymous = ui_api(auth_required=False).client.get("/v1/me").json()
    assert anonymous["actor"] == "anonymous" and anonymous["role"] == "admin"
    assert anonymous["auth_required"] is False
