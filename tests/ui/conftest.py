"""Browser tests of the web UI: Playwright for Python driving Debian's Chromium (never a downloaded browser)
against a real gateway on loopback.

* ``browser``: one headless Chromium per test module (``/usr/bin/chromium``, or ``DRIFTLOCK_CHROMIUM``);
  without it the tests skip, and under ``CI=true`` they fail.
* ``open_page(url, width=...)``: a fresh browser context (its own sessionStorage) and page. Every console
  error and uncaught page error fails the test at teardown, except the network errors a test declares it
  expects (``page.expect_console_error("status of 401")``).
* ``shoot(page, name)``: a full-page screenshot in the artifact directory (``DRIFTLOCK_UI_ARTIFACTS``, by
  default ``<tmp>/driftlock-ui-artifacts``).
* ``ui_gateway``: a real gateway (auth required, an admin, an operator-less read key, fast key hashing) in
  this process, shared by a module; ``open_gateway``: one with ``api.auth_required: false``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from otlp_gateway.api import cli_create_key, password_hasher
from otlp_gateway.api.settings import KeyHashSettings
from otlp_gateway.config import load_config
from tests.e2e.sdk import emit, sdk_client
from tests.fixtures.gateway import ThreadedGateway, gateway_config_dict
from tests.fixtures.required import missing
from tests.fixtures.waiting import wait_until

CHROMIUM = Path(os.environ.get("DRIFTLOCK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = 390
DESKTOP = 1920
WIDTHS = (PHONE, DESKTOP)
TRACE_TEMPLATE = "http://jaeger.example:16686/trace/{trace_id}?uiFind={span_id}"
JWT_SECRET = "ui-tests-0123456789abcdef0123456789abcdef"
FAST_HASH = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1}
ACTION_TIMEOUT_MS = 15_000
OPEN_RATE = {"rps": 10_000, "burst": 10_000, "per_client_rps": 10_000, "per_client_burst": 10_000,
             "per_key_rps": 10_000, "per_key_burst": 10_000}


def artifact_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "driftlock-ui-artifacts"
    path = Path(os.environ.get("DRIFTLOCK_UI_ARTIFACTS") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: while Playwright's sync API runs, this thread has a running asyncio
    # loop, and a later test elsewhere calling asyncio.run() would fail.
    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM} (apt-get install chromium; tests/run.sh does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class WatchedPage:
    """A page whose console errors are collected; ``expect_console_error`` allows one by substring."""

    page: Any
    context: Any
    errors: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def expect_console_error(self, fragment: str) -> None:
        self.allowed.append(fragment)

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., WatchedPage]]:
    opened: list[WatchedPage] = []

    def open_(url: str, width: int = DESKTOP, height: int | None = None, *, credential: str | None = None,
              wait_ready: bool = True, **context_options: Any) -> WatchedPage:
        viewport = {"width": width, "height": height or (844 if width <= PHONE else 1080)}
        context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="Europe/Berlin",
                                      **context_options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = context.new_page()
        watched = WatchedPage(page, context)
        page.on("console", lambda msg: watched.errors.append(f"console: {msg.text} ({msg.location})")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: watched.errors.append(f"page error: {exc}"))
        opened.append(watched)
        if credential is not None:
            # sessionStorage belongs to the origin: open a static file of it first, then store the key
            parts = urlsplit(url)
            page.goto(f"{parts.scheme}://{parts.netloc}/ui/favicon.svg")
            page.evaluate("key => sessionStorage.setItem('driftlock.credential', key)", credential)
        page.goto(url)
        if wait_ready:
            wait_rendered(watched)
        return watched

    yield open_
    failures = []
    for watched in opened:
        failures += watched.unexpected_errors()
        watched.context.close()
    assert not failures, "the browser reported errors:\n" + "\n".join(failures)


def wait_rendered(page: WatchedPage | Any) -> None:
    """Until the page's module has rendered (``<html data-ready>``), or the sign-in page took over."""
    # A selector, not wait_for_function: the page's CSP forbids the eval that a function predicate needs.
    page.wait_for_selector("html[data-ready='true']", state="attached")


AXE = Path(__file__).with_name("vendor") / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_violations(page: WatchedPage | Any) -> list[str]:
    """axe-core's WCAG A/AA findings on the page as rendered (colour contrast, names, labels, structure)."""
    page.evaluate(AXE.read_text())
    found = page.evaluate("""async (tags) => {
        const options = {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]};
        const result = await axe.run(document, options);
        return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} -- ` +
            v.nodes.slice(0, 5).map((n) => `${n.target.join(" ")}: ${n.failureSummary}`).join(" | "));
    }""", AXE_TAGS)
    return list(found)


def no_horizontal_scroll(page: WatchedPage | Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def shoot(page: WatchedPage | Any, name: str) -> Path:
    path = artifact_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- gateways


@dataclass
class UiGateway:
    gateway: ThreadedGateway
    admin_key: str = ""
    read_key: str = ""

    @property
    def url(self) -> str:
        return self.gateway.api_url

    @property
    def grpc(self) -> str:
        return self.gateway.grpc_endpoint

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.gateway.loop).result(timeout)

    def get(self, path: str, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(self.url + path, headers=headers, timeout=30)

    def post(self, path: str, key: str | None = None, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(self.url + path, headers=headers, json=body, timeout=30)

    def new_key(self, role: str, name: str) -> str:
        hasher = password_hasher(KeyHashSettings(**FAST_HASH))
        _, presented = self.run(cli_create_key(self.gateway.gateway.store, name, role, hasher))
        return presented


def start_gateway(data_dir: Path, *, auth_required: bool, **sections: Any) -> ThreadedGateway:
    api = {"auth_required": auth_required, "key_hash": FAST_HASH, "rate_limit": OPEN_RATE,
           "jwt_secret": JWT_SECRET, "ui": {"trace_url_template": TRACE_TEMPLATE, "poll_seconds": 1}}
    api.update(sections.pop("api", {}))
    data = gateway_config_dict(data_dir, ephemeral_ports=True, api=api, **sections)
    config = load_config(None, env={}, overrides={(key,): value for key, value in data.items()})
    return ThreadedGateway(config).start()


@pytest.fixture(scope="module")
def ui_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiGateway]:
    gw = UiGateway(start_gateway(tmp_path_factory.mktemp("ui-gw"), auth_required=True))
    gw.admin_key = gw.new_key("admin", "ui-admin")
    gw.read_key = gw.new_key("read", "ui-reader")
    yield gw
    gw.gateway.stop()


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiGateway]:
    gw = UiGateway(start_gateway(tmp_path_factory.mktemp("ui-open"), auth_required=False))
    yield gw
    gw.gateway.stop()


# --- a gateway with streams, fed by the OpenTelemetry SDK

SERVICE = "checkout"
LOG_STREAM = f"logs/{SERVICE}/sdk.{SERVICE}.grpc"
SPAN_STREAM = f"traces/{SERVICE}/GET /item/0"


@pytest.fixture(scope="module")
def fed_gateway(ui_gateway: UiGateway) -> Iterator[UiGateway]:
    """A few hundred spans and log records through the SDK's OTLP gRPC exporters: streams that are warming."""
    with sdk_client("grpc", ui_gateway.grpc, service=SERVICE) as client:
        emit(client, n_spans=200, n_logs=120)

    def seen() -> bool:
        stream = ui_gateway.get("/v1/streams/" + quote(LOG_STREAM), ui_gateway.admin_key)
        return stream.status_code == 200 and stream.json()["events_seen"] >= 120

    wait_until(seen, 60, "the SDK's log records scored by the gateway")
    yield ui_gateway


def stream_url(gw: UiGateway, stream_id: str) -> str:
    return gw.url + "/streams/" + "/".join(quote(part) for part in stream_id.split("/"))
