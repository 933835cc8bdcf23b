"""Web UI load time with 10,000 incidents stored: each page loaded in Debian's headless Chromium, timed by the
browser's own navigation timing, against a real gateway (in this process) whose store holds the incidents.

    python bench/bench_ui.py [--incidents 10000] [--streams 480] [--loads 15] [--database-url postgresql://...]

Per page (the incidents list, a filtered list, one incident, one stream), warm (one tab loading the page
again: the UI's files cached for good under their versioned URLs, as when moving between pages) and cold
(a fresh browser context per load: empty cache, new sessionStorage): the median and 95th percentile over
``--loads`` loads after two warm-up loads, of
  * ``shell``: navigation start to the HTML shell's last byte (responseEnd),
  * ``dom``: DOMContentLoaded done (the ES modules fetched and run),
  * ``rendered``: the page's ``driftlock:rendered`` mark (its data fetched from /v1 and in the DOM),
and the ratio of the rendered median to the 300 ms goal; plus the gateway's CPU time per load (this
process's CPU clock: the gateway and the thin Playwright client; Chromium runs in its own processes).
The incidents are never repeated (distinct ids, times and streams); the machine is shared, so wall figures
move between runs: compare the CPU column across runs, and the wall columns within one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from tests.ui import seed
from tests.ui.conftest import CHROMIUM, CHROMIUM_FLAGS, UiGateway, start_gateway

GOAL_MS = 300.0
TIMING = """() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const mark = performance.getEntriesByName("driftlock:rendered")[0];
    return {shell: nav.responseEnd, dom: nav.domContentLoadedEventEnd,
            rendered: mark ? mark.startTime : null};
}"""


def seed_store(gw: UiGateway, incidents: int, streams: int) -> tuple[str, str]:
    store = gw.gateway.gateway.store
    rows = []
    for i, rec in enumerate(seed.incidents(incidents)):
        service = seed.SERVICES[i % len(seed.SERVICES)]
        rec.stream_id = f"traces/{service}/{seed.ROUTES[i % len(seed.ROUTES)]} #{i % streams}"
        rec.name = rec.stream_id.split("/", 2)[2]
        rec.id = ""
        rec.__post_init__()
        rows.append(rec)
    for start in range(0, len(rows), 1000):
        gw.run(store.upsert_incidents(rows[start:start + 1000]), timeout=300)
    target = rows[0]
    gw.run(store.write_scores(seed.score_buckets(target.stream_id, target.opened_at, 7.0)))
    return target.id, target.stream_id


def measure(browser, url: str, loads: int, cold: bool) -> dict[str, list[float]]:
    """``cold``: a new browser context per load (empty cache); else one tab navigating to the page again
    (the assets cached for good under their versioned URLs, as for an engineer moving between pages)."""
    out: dict[str, list[float]] = {"shell": [], "dom": [], "rendered": [], "cpu": []}
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    for n in range(loads + 2):
        if cold:
            context.close()
            context = browser.new_context(viewport={"width": 1920, "height": 1080})
            page = context.new_page()
        cpu = time.process_time()
        page.goto(url)
        page.wait_for_selector("html[data-ready='true']", state="attached", timeout=30_000)
        cpu = time.process_time() - cpu
        timing = page.evaluate(TIMING)
        if n < 2:
            continue  # warm-up: the gateway's first queries, Chromium's first start of a renderer
        for key in ("shell", "dom", "rendered"):
            out[key].append(float(timing[key]))
        out["cpu"].append(cpu * 1000)
    context.close()
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=480)
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--database-url", default=None, help="Postgres DSN (default: the embedded SQLite)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    store = {"store": {"database_url": args.database_url}} if args.database_url else {}
    gw = UiGateway(start_gateway(Path(tempfile.mkdtemp(prefix="bench-ui-")), auth_required=False, **store))
    try:
        started = time.perf_counter()
        incident_id, stream_id = seed_store(gw, args.incidents, args.streams)
        print(f"seeded {args.incidents} incidents over {args.streams} streams in "
              f"{time.perf_counter() - started:.1f} s ({gw.gateway.gateway.store.backend}); "
              f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        pages = {
            "incidents list": "/",
            "filtered list": "/?status=resolved&service=payments&severity=high",
            "one incident": f"/incidents/{incident_id}",
            "one stream": "/streams/" + "/".join(quote(p) for p in stream_id.split("/")),
        }
        print(f"{'page':<22} {'shell ms':>14} {'dom ms':>14} {'rendered ms':>14} {'vs 300 ms':>10} "
              f"{'CPU ms/load':>12}   (median / p95 of {args.loads} loads)")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            for cold in (False, True):
                for name, path in pages.items():
                    m = measure(browser, gw.url + path, args.loads, cold)
                    cells = [f"{statistics.median(m[k]):6.0f} /{p95(m[k]):5.0f}"
                             for k in ("shell", "dom", "rendered")]
                    ratio = statistics.median(m["rendered"]) / GOAL_MS
                    label = f"{name} ({'cold' if cold else 'warm'})"
                    print(f"{label:<22} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14} {ratio:>9.2f}x "
                          f"{statistics.median(m['cpu']):>12.1f}")
            browser.close()
    finally:
        gw.gateway.stop()


if __name__ == "__main__":
    main()
