"""The normal behaviour of service ``shop``, one second of event time at a time, from a seeded generator.

Realistic cardinality: every span has its own trace and span id, a user id drawn from a million users, a
product path from 50,000 products (Zipf-like popularity), a client address; log lines carry order, cart
and SKU numbers. Rates are Poisson per second, durations log-normal per route. A fault changes a draft
(``SpanDraft``/``LogDraft``) before it is sent, so faulty items differ from normal ones only where the
fault says.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.scenarios.client import AttrValue, ServiceClient

SERVICE = "shop"
LOG_SCOPE = "shop.orders"
GAUGE = "queue.depth"
COUNTER = "orders.placed"
CUMULATIVE = "checkout.attempts"
NS = 1_000_000_000
MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    """The span name, which the gateway's default stream key includes: one stream per route."""
    rate: float
    """Spans per second of event time."""
    median_ms: float
    sigma: float


ROUTES = {r.name: r for r in (
    Route("GET /cart", 4.0, 25.0, 0.35),
    Route("POST /cart/items", 3.0, 40.0, 0.35),
    Route("POST /checkout", 3.0, 180.0, 0.4),
    Route("GET /product/{id}", 6.0, 30.0, 0.4),
    Route("GET /search", 3.0, 60.0, 0.45),
)}
USER_AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0",
               "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1)",
               "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1", "okhttp/4.12.0",
               "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "shop-ios/7.3.1")
CARRIERS = ("dhl", "ups", "gls", "dpd")
WAREHOUSES = ("fra-1", "ams-2", "waw-1")


@dataclass(slots=True)
class SpanDraft:
    route: Route
    start_ns: int
    duration_ns: int
    attributes: dict[str, AttrValue]
    error: str | None = None


@dataclass(slots=True)
class LogDraft:
    time_ns: int
    severity: str
    body: str
    attributes: dict[str, AttrValue] = field(default_factory=dict)


SpanShape = Callable[[SpanDraft], None]
LogShape = Callable[[LogDraft], None]


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method (rates here are small)."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Shop:
    """Normal traffic of service ``shop`` through one ``ServiceClient``."""

    def __init__(self, client: ServiceClient, rng: random.Random):
        self.client = client
        self.rng = rng

    def _times(self, second_ns: int, n: int) -> list[int]:
        return sorted(second_ns + self.rng.randrange(NS) for _ in range(n))

    # --- spans ----------------------------------------------------------------------------------------
    def spans(self, route: Route, second_ns: int, *, rate_factor: float = 1.0, latency_factor: float = 1.0,
              shape: SpanShape | None = None) -> None:
        rng = self.rng
        for start in self._times(second_ns, poisson(rng, route.rate * rate_factor)):
            duration_ms = rng.lognormvariate(math.log(route.median_ms * latency_factor), route.sigma)
            draft = SpanDraft(route, start, int(duration_ms * MS), self._attributes(route))
            if shape is not None:
                shape(draft)
            self.client.span(route.name, draft.start_ns, draft.duration_ns, draft.attributes,
                             error=draft.error)

    def _attributes(self, route: Route) -> dict[str, AttrValue]:
        rng = self.rng
        method, template = route.name.split(" ", 1)
        attrs: dict[str, AttrValue] = {
            "http.request.method": method, "http.route": template, "http.response.status_code": 200,
            "url.scheme": "https", "server.address": "shop.example.com",
            "network.protocol.version": rng.choice(("1.1", "2")),
            "client.address": f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "user_agent.original": rng.choice(USER_AGENTS),
            "enduser.id": f"u-{rng.randrange(1_000_000):06d}",
        }
        if template == "/product/{id}":
            product = int(50_000 * rng.random() ** 3)  # a few products are most of the views
            attrs["url.path"] = f"/product/{product}"
        elif template == "/checkout":
            attrs["url.path"] = template
            attrs["payment.provider"] = "card-processor-a"
            attrs["app.checkout.items"] = 1 + poisson(rng, 1.5)
        else:
            attrs["url.path"] = template
        return attrs

    # --- logs -----------------------------------------------------------------------------------------
    def logs(self, second_ns: int, *, rate: float = 5.0, error_share: float = 0.01, warn_share: float = 0.03,
             shape: LogShape | None = None) -> None:
        rng = self.rng
        for t in self._times(second_ns, poisson(rng, rate)):
            roll = rng.random()
            if roll < error_share:
                draft = self.error_line(t)
            elif roll < error_share + warn_share:
                draft = self._warn_line(t)
            else:
                draft = self._info_line(t)
            if shape is not None:
                shape(draft)
            self.emit_log(draft)

    def emit_log(self, draft: LogDraft) -> None:
        self.client.log(LOG_SCOPE, draft.time_ns, draft.severity, draft.body, draft.attributes)

    def _order(self) -> int:
        return 4_000_000 + self.rng.randrange(1_000_000)

    def _info_line(self, t: int) -> LogDraft:
        rng, order = self.rng, self._order()
        kind = rng.randrange(5)
        if kind == 0:
            body = (f"order {order} placed by user u-{rng.randrange(1_000_000):06d}: "
                    f"{1 + poisson(rng, 1.5)} items, total {rng.uniform(5, 400):.2f} EUR")
        elif kind == 1:
            body = f"payment authorized for order {order} in {int(rng.lognormvariate(4.0, 0.4))} ms"
        elif kind == 2:
            body = f"cart {rng.randrange(10**8):08d} updated: {1 + poisson(rng, 2)} items"
        elif kind == 3:
            body = f"inventory reserved for order {order} in warehouse {rng.choice(WAREHOUSES)}"
        else:
            body = f"shipping quote for order {order}: {rng.choice(CARRIERS)} {1 + rng.randrange(5)} days"
        return LogDraft(t, "INFO", body, {"code.function": "handle"})

    def _warn_line(self, t: int) -> LogDraft:
        rng = self.rng
        if rng.random() < 0.5:
            body = (f"payment retry {1 + rng.randrange(3)} for order {self._order()}: provider latency "
                    f"{int(rng.lognormvariate(6.5, 0.3))} ms")
        else:
            body = f"inventory low for sku SKU-{rng.randrange(10**6):06d}: {rng.randrange(1, 9)} left"
        return LogDraft(t, "WARN", body, {"code.function": "handle"})

    def error_line(self, t: int) -> LogDraft:
        """One of the service's known error lines."""
        rng = self.rng
        if rng.random() < 0.5:
            body = f"payment declined for order {self._order()}: insufficient funds"
        else:
            body = f"order {self._order()} failed validation: shipping address incomplete"
        return LogDraft(t, "ERROR", body, {"code.function": "handle"})

    # --- metrics --------------------------------------------------------------------------------------
    def gauge(self, second_ns: int, level: float, noise: float = 3.0) -> None:
        value = max(0.0, round(level + self.rng.gauss(0.0, noise), 1))
        self.client.gauge(GAUGE, second_ns, value)

    def counter(self, second_ns: int, rate: float) -> None:
        """``orders.placed``, delta temporality: each point is the count of its second."""
        self.client.delta_count(COUNTER, second_ns - NS, second_ns, poisson(self.rng, rate))

    def cumulative_counter(self, second_ns: int, rate: float) -> None:
        """``checkout.attempts``, cumulative temporality (the SDK's default): each point is the total."""
        self.client.cumulative_count(CUMULATIVE, second_ns, poisson(self.rng, rate))
