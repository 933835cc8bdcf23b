"""Why compression alone misses a latency x 5 and an error-log share x 10, and what the field test sees.

    python bench/field_shift_power.py

A detectors-only reproduction of the two scenario faults (bench/scenarios: ``latency_x5`` on the
``GET /product/{id}`` span stream, ``error_log_share_x10`` on the ``shop.orders`` log stream): canonical
events shaped like the scenario's (same attributes, rates irrelevant: one event per 0.1 s), 4,000 normal
events, 3,000 faulty, 1,500 normal. For each, the balanced profile with and without the field test:
window bits (mean per window, and per byte) before and in the first 400 events of the fault (the
baseline's size: later a baseline that learns has absorbed the fault), the median window p-values of cbad
and of the field test there, and the incidents (where they opened, how they closed).
"""

from __future__ import annotations

import math
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import EventBatch, registry
from detectors.canonical import canonical_log, canonical_span

NORMAL, FAULT, AFTER = 4000, 3000, 1500
AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0", "okhttp/4.12.0", "shop-ios/7.3.1")


def product_span(rng: random.Random, faulty: bool) -> bytes:
    ms = rng.lognormvariate(math.log(30.0 * (5.0 if faulty else 1.0)), 0.4)
    attrs = {"http.request.method": "GET", "http.route": "/product/{id}", "http.response.status_code": 200,
             "url.scheme": "https", "server.address": "shop.example.com",
             "network.protocol.version": rng.choice(("1.1", "2")), "user_agent.original": rng.choice(AGENTS),
             "client.address": f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
             "enduser.id": f"u-{rng.randrange(1_000_000):06d}",
             "url.path": f"/product/{int(50_000 * rng.random() ** 3)}"}
    return canonical_span("GET /product/{id}", 2, 0, int(ms * 1e6), attrs)


def order_log(rng: random.Random, faulty: bool) -> bytes:
    order, roll = 4_000_000 + rng.randrange(1_000_000), rng.random()
    error_share = 0.10 if faulty else 0.01
    if roll < error_share:
        body = (f"payment declined for order {order}: insufficient funds" if rng.random() < 0.5
                else f"order {order} failed validation: shipping address incomplete")
        return canonical_log(body, 17, {"code.function": "handle"})
    if roll < error_share + 0.03:
        body = f"inventory low for sku SKU-{rng.randrange(10**6):06d}: {rng.randrange(1, 9)} left"
        return canonical_log(body, 13, {"code.function": "handle"})
    body = rng.choice((f"payment authorized for order {order} in {int(rng.lognormvariate(4.0, 0.4))} ms",
                       f"cart {rng.randrange(10**8):08d} updated: {1 + rng.randrange(4)} items",
                       f"inventory reserved for order {order} in warehouse {rng.choice(('fra-1', 'ams-2'))}"))
    return canonical_log(body, 9, {"code.function": "handle"})


def run(name: str, make: Callable[[random.Random, bool], bytes]) -> None:
    rng = random.Random(name)
    events = [make(rng, NORMAL <= i < NORMAL + FAULT) for i in range(NORMAL + FAULT + AFTER)]
    times = [1.7e9 + 0.1 * i for i in range(len(events))]
    for field_test in (False, True):
        det = registry.create("cbad", profile="balanced", seed=1, field_test=field_test)
        result = det.update(EventBatch(events, times))
        before = [w for w in result if w.start_offset >= 2000 and w.end_offset <= NORMAL]
        # the fault's first B events: later a baseline that learns (no incident frozen) has absorbed it
        during = [w for w in result if w.start_offset >= NORMAL and w.end_offset <= NORMAL + 400]
        bits = [statistics.mean(w.figures[k] for w in part) for part in (before, during)
                for k in ("novelty_bits", "novelty_bits_per_byte")]
        cbad_p = statistics.median(w.figures.get("cbad_p_value", w.p_value) for w in during)
        field_p = statistics.median(w.figures.get("field_p_value", 1.0) for w in during)
        opened = [u for u in result.incidents if u.status != "open"] or result.incidents[-1:]
        spans = [(u.opened_offset, u.status) for u in opened]
        print(f"{name:20} field_test={field_test!s:5}  bits/window {bits[0]:7.0f} -> {bits[2]:7.0f}  "
              f"bits/byte {bits[1]:.3f} -> {bits[3]:.3f}  median p cbad {cbad_p:.2g}, fields {field_p:.2g}  "
              f"incidents (opened at, status) {spans}")


def main() -> int:
    print(f"balanced profile; fault from event {NORMAL} to {NORMAL + FAULT}")
    run("latency_x5", product_span)
    run("error_log_share_x10", order_log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
