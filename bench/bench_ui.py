"""Web UI load time with 10,000 incidents stored: each page loaded in Debian's headless Chromium, timed by the
browser's own navigation timing, against a real gateway (in this process) whose store holds the incidents.

    python bench/bench_ui.py [--incidents 10000] [--streams 480] [--loads 15] [--database-url postgresql://...]
    python bench/bench_ui.py --compare ../before [--loads 11]   # before/after, loads alternating

``--compare CHECKOUT``: another checkout (``git worktree add ../before <commit>`` and this script copied
into it) and this one, each seeded alike in a child gateway (``--serve``), measured in one browser with
their loads alternating, so both see the same moments of a shared machine's load; the CPU column is then
each child gateway's alone.

Per page (the incidents list, a filtered list, one incident, one stream), warm (one tab loading the page
again: the UI's files cached for good under their versioned URLs, as when moving between pages) and cold
(a fresh browser context per load: empty cache, new sessionStorage): the median and 95th percentile over
``--loads`` loads after two warm-up loads, of
  * ``shell``: navigation start to the HTML shell's last byte (responseEnd),
  * ``dom``: DOMContentLoaded done (the ES modules fetched and run),
  * ``rendered``: the page's ``driftlock:rendered`` mark (its data fetched from /v1 and in the DOM),
  * ``painted``: the page's ``driftlock:painted`` mark, the task after the first animation frame that
    follows ``rendered`` (that frame draws the plots and paints; "—" for a checkout without the mark),
  * ``frame``: painted minus rendered within each load (that frame alone: less moved by a slow start),
  * ``fcp`` and ``lcp``: the browser's own First Contentful Paint and Largest Contentful Paint (the
    ``largest-contentful-paint`` entry's renderTime: when the largest text or image was presented, the
    web's standard "loaded" figure), read two frames and 250 ms after the painted mark,
and the ratio of the rendered median to the 300 ms goal; plus the gateway's CPU time per load (this
process's CPU clock: the gateway and the thin Playwright client; Chromium runs in its own processes).
Timing starts once the gateway's ``/readyz`` answers 200 (its kernels loaded). The incidents are never
repeated (distinct ids, times and streams); the machine is shared, so wall figures move between runs:
compare the CPU column across runs, and the wall columns within one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from otlp_gateway.store.base import StreamInfo
from tests.fixtures.waiting import wait_until
from tests.ui import seed
from tests.ui.conftest import CHROMIUM, CHROMIUM_FLAGS, UiGateway, start_gateway

GOAL_MS = 300.0
NOT_FOUND = ("Stream not found", "Incident not found", "Page not found")
TIMING = """() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const mark = performance.getEntriesByName("driftlock:rendered")[0];
    const painted = performance.getEntriesByName("driftlock:painted")[0];
    return {shell: nav.responseEnd, dom: nav.domContentLoadedEventEnd,
            rendered: mark ? mark.startTime : null, painted: painted ? painted.startTime : null};
}"""
# "painted" once the page's driftlock:painted mark is made; "rendered" when only driftlock:rendered is, 5 s
# after it (a checkout without the painted mark); "timeout" without either within 30 s.
WAIT_MARKS = """new Promise((resolve) => {
    let late = null;
    const seen = () => {
        if (performance.getEntriesByName("driftlock:painted").length) resolve("painted");
        else if (performance.getEntriesByName("driftlock:rendered").length && late === null)
            late = setTimeout(() => resolve("rendered"), 5000);
    };
    new PerformanceObserver(seen).observe({type: "mark", buffered: true});
    seen();
    setTimeout(() => resolve("timeout"), 30000);
})"""
# The paint entries two frames and 250 ms after the painted mark (the last candidate has been presented by
# then: an LCP entry is queued when its frame is presented). Buffered: the observer sees earlier entries.
PAINTS = """() => new Promise((resolve) => {
    const seen = {lcp: null, fcp: null};
    const lcp = new PerformanceObserver((list) => {
        const last = list.getEntries().at(-1);
        seen.lcp = last.renderTime || last.startTime;
    });
    lcp.observe({type: "largest-contentful-paint", buffered: true});
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    seen.fcp = fcp ? fcp.startTime : null;
    requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => {
        for (const last of lcp.takeRecords().slice(-1)) seen.lcp = last.renderTime || last.startTime;
        lcp.disconnect();
        resolve(seen);
    }, 250)));
})"""


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
    # the streams too: without its record a stream's page is "Stream not found" (a cheaper page)
    for stream_id in dict.fromkeys(r.stream_id for r in rows):
        signal, service, name = stream_id.split("/", 2)
        gw.run(store.upsert_stream(StreamInfo(stream_id=stream_id, signal=signal, service=service, name=name,
                                              state="active", profile="balanced", settings={},
                                              events_seen=5000, updated_at=dt.datetime.now(dt.UTC))))
    target = rows[0]
    gw.run(store.write_scores(seed.score_buckets(target.stream_id, target.opened_at, 7.0)))
    return target.id, target.stream_id


def wait_ready(gw: UiGateway) -> float:
    """Seconds until ``/readyz`` answers 200: the detectors' kernels are loaded (compiled first when the JIT
    cache is cold, e.g. a fresh checkout for --compare: about a minute of CPU that would otherwise land in
    the loads' CPU column and slow both gateways' loads)."""
    started = time.perf_counter()
    wait_until(lambda: gw.get("/readyz").status_code == 200, 1800, "the gateway's /readyz")
    return time.perf_counter() - started


class Target:
    """A gateway serving the seeded store: in this process, or a ``--serve`` child (``--compare``)."""

    def __init__(self, label: str, url: str, incident_id: str, stream_id: str, cpu: Callable[[], float]):
        self.label, self.url, self.cpu = label, url, cpu
        self.pages = {
            "incidents list": "/",
            "filtered list": "/?status=resolved&service=payments&severity=high",
            "one incident": f"/incidents/{incident_id}",
            "one stream": "/streams/" + "/".join(quote(p) for p in stream_id.split("/")),
        }


class Loader:
    """Loads of one page: ``cold``, a new browser context per load (empty cache); else one tab navigating to
    the page again (the assets cached for good under their versioned URLs, as when moving between pages)."""

    def __init__(self, browser: Any, cold: bool):
        self.browser, self.cold = browser, cold
        self.context = browser.new_context(viewport={"width": 1920, "height": 1080})
        self.page = self.context.new_page()
        self.cdp = self.context.new_cdp_session(self.page)
        keys = ("shell", "dom", "rendered", "painted", "frame", "fcp", "lcp", "cpu")
        self.out: dict[str, list[float]] = {key: [] for key in keys}
        self.painted = True  # until a page without the mark (an older checkout) says otherwise

    def load(self, url: str, cpu: Callable[[], float], keep: bool) -> None:
        if self.cold:
            self.context.close()
            self.context = self.browser.new_context(viewport={"width": 1920, "height": 1080})
            self.page = self.context.new_page()
            self.cdp = self.context.new_cdp_session(self.page)
        used = cpu()
        self.page.goto(url)
        # Waited for through a CDP session of its own: one small expression whose promise the page resolves
        # (a PerformanceObserver of its marks). Playwright's own waits (wait_for_selector, wait_for_function)
        # first evaluate its injected script in the page, 10-22 ms of the renderer's main thread on a cold
        # load (seen in Chrome traces), which landed between the load event and the painted mark: the
        # harness's work, timed as the page's.
        state = self.cdp.send("Runtime.evaluate", {"expression": WAIT_MARKS, "awaitPromise": True,
                                                   "returnByValue": True})["result"]["value"]
        if state == "timeout":
            raise PlaywrightTimeout(f"{url}: no driftlock:rendered mark within 30 s")
        self.painted = self.painted and state == "painted"
        used = cpu() - used
        timing = self.page.evaluate(TIMING)
        timing.update(self.page.evaluate(PAINTS))
        heading = self.page.locator("main h1").first.text_content()
        if heading in NOT_FOUND:
            raise SystemExit(f"{url}: the page says {heading!r}")
        if keep:  # not the warm-ups: the gateway's first queries, Chromium's first start of a renderer
            for key in ("shell", "dom", "rendered", "painted", "fcp", "lcp"):
                if timing[key] is not None:
                    self.out[key].append(float(timing[key]))
            if timing["painted"] is not None and timing["rendered"] is not None:
                self.out["frame"].append(float(timing["painted"] - timing["rendered"]))
            self.out["cpu"].append(used * 1000)

    def close(self) -> None:
        self.context.close()


def measure(browser: Any, targets: list[Target], loads: int) -> None:
    """Every page warm, then cold; with two targets their loads alternate (the same moments of a shared
    machine's load for both)."""
    print(f"{'page':<34} {'shell ms':>14} {'dom ms':>14} {'rendered ms':>14} {'vs 300 ms':>10} "
          f"{'painted ms':>14} {'frame ms':>12} {'FCP ms':>14} {'LCP ms':>14} {'CPU ms/load':>12}"
          f"   (median / p95 of {loads} loads)")
    for cold in (False, True):
        for name in targets[0].pages:
            loaders = [Loader(browser, cold) for _ in targets]
            for n in range(loads + 2):
                for target, loader in zip(targets, loaders, strict=True):
                    loader.load(target.url + target.pages[name], target.cpu, keep=n >= 2)
            for target, loader in zip(targets, loaders, strict=True):
                loader.close()
                m = loader.out
                cells = [f"{statistics.median(m[k]):6.0f} /{p95(m[k]):5.0f}"
                         for k in ("shell", "dom", "rendered")]
                label = f"{name} ({'cold' if cold else 'warm'}) {target.label}".strip()
                ratio = statistics.median(m["rendered"]) / GOAL_MS
                painted = (f"{statistics.median(m['painted']):6.0f} /{p95(m['painted']):5.0f}"
                           if len(m["painted"]) == len(m["rendered"]) else "—")
                frame = (f"{statistics.median(m['frame']):5.0f} /{p95(m['frame']):4.0f}"
                         if painted != "—" else "—")
                paints = [f"{statistics.median(m[k]):6.0f} /{p95(m[k]):5.0f}"
                          if len(m[k]) == len(m["rendered"]) else "—" for k in ("fcp", "lcp")]
                print(f"{label:<34} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14} {ratio:>9.2f}x "
                      f"{painted:>14} {frame:>12} {paints[0]:>14} {paints[1]:>14} "
                      f"{statistics.median(m['cpu']):>12.1f}", flush=True)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def serve_child(checkout: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[str], Target]:
    """``checkout``'s bench_ui.py --serve in a child process (its own otlp_gateway and UI files)."""
    command = [sys.executable, str(checkout / "bench" / "bench_ui.py"), "--serve",
               "--incidents", str(args.incidents), "--streams", str(args.streams)]
    if args.database_url:
        command += ["--database-url", args.database_url]
    child = subprocess.Popen(command, cwd=checkout, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        sys.exit(f"{checkout}: bench_ui.py --serve did not start")
    served = json.loads(line)
    process = psutil.Process(child.pid)

    def cpu() -> float:
        times = process.cpu_times()
        return times.user + times.system

    return child, Target(checkout.name, served["url"], served["incident_id"], served["stream_id"], cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=480)
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--database-url", default=None, help="Postgres DSN (default: the embedded SQLite)")
    parser.add_argument("--compare", type=Path, default=None, metavar="CHECKOUT",
                        help="another checkout (e.g. a git worktree of an older commit, this script copied "
                             "into it): both served by child gateways, their loads alternating")
    parser.add_argument("--serve", action="store_true",
                        help="seed, print the URL and ids as JSON, serve until stdin closes (for --compare)")
    args = parser.parse_args()
    if not CHROMIUM.exists() and not args.serve:
        sys.exit(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if args.compare is not None:
        compare(args)
        return
    store = {"store": {"database_url": args.database_url}} if args.database_url else {}
    gw = UiGateway(start_gateway(Path(tempfile.mkdtemp(prefix="bench-ui-")), auth_required=False, **store))
    try:
        started = time.perf_counter()
        incident_id, stream_id = seed_store(gw, args.incidents, args.streams)
        waited = wait_ready(gw)
        if args.serve:
            print(json.dumps({"url": gw.url, "incident_id": incident_id, "stream_id": stream_id}), flush=True)
            sys.stdin.read()
            return
        print(f"seeded {args.incidents} incidents over {args.streams} streams in "
              f"{time.perf_counter() - started - waited:.1f} s ({gw.gateway.gateway.store.backend}), ready "
              f"{waited:.1f} s later; "
              f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load average {load_average()}")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            measure(browser, [Target("", gw.url, incident_id, stream_id, time.process_time)], args.loads)
            browser.close()
        print(f"load average at the end: {load_average()} ({os.cpu_count()} cores)")
    finally:
        gw.gateway.stop()


def compare(args: argparse.Namespace) -> None:
    """This checkout and ``args.compare``, each in a child gateway; the CPU column is each child's."""
    here = Path(__file__).resolve().parent.parent
    children = [serve_child(checkout, args) for checkout in (args.compare.resolve(), here)]
    try:
        print(f"seeded both; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load average {load_average()}")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            measure(browser, [target for _, target in children], args.loads)
            browser.close()
        print(f"load average at the end: {load_average()} ({os.cpu_count()} cores)")
    finally:
        for child, _ in children:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=60)


if __name__ == "__main__":
    main()
