"""The scenarios: eight faults and three controls, each a seeded script of event-time seconds.

A fault scenario is a normal warm-up, the fault (10 minutes of event time by default), then normal traffic
again; its ``target`` is the stream the fault is in, and the scenario also sends neighbour streams that do
not change (an incident there is a false one). A control is normal traffic only, with what makes normal
traffic hard: a daily-style cycle, rare-but-normal events, client restarts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from bench.scenarios.traffic import (
    COUNTER,
    CUMULATIVE,
    GAUGE,
    LOG_SCOPE,
    ROUTES,
    SERVICE,
    LogDraft,
    Shop,
    SpanDraft,
)

Kind = Literal["fault", "control"]
MINUTE = 60


@dataclass(frozen=True, slots=True)
class Tick:
    """One second of event time: ``second`` counts from the scenario's start."""

    second: int
    time_ns: int
    in_fault: bool


Step = Callable[[Shop, Tick], None]
Hook = Callable[[Shop, int], None]
"""Called before the second it names is played (restarts, deploys)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: Kind
    description: str
    target: str | None
    """Stream id of the fault (``signal/service/name``); None for a control."""
    step: Step
    warmup_s: int = 40 * MINUTE
    fault_s: int = 10 * MINUTE
    after_s: int = 20 * MINUTE
    hooks: Callable[[int], Hook | None] = lambda second: None

    @property
    def total_s(self) -> int:
        return self.warmup_s + self.fault_s + self.after_s

    @property
    def fault_start_s(self) -> int:
        return self.warmup_s

    @property
    def fault_end_s(self) -> int:
        return self.warmup_s + self.fault_s

    def scaled(self, warmup_s: int, fault_s: int, after_s: int) -> Scenario:
        if self.kind == "control":
            return replace(self, warmup_s=warmup_s, fault_s=0, after_s=fault_s + after_s)
        return replace(self, warmup_s=warmup_s, fault_s=fault_s, after_s=after_s)


def stream(signal: str, name: str) -> str:
    return f"{signal}/{SERVICE}/{name}"


# --- faults -------------------------------------------------------------------------------------------------
CHECKOUT, PRODUCT, CART, SEARCH = (ROUTES[n] for n in ("POST /checkout", "GET /product/{id}", "GET /cart",
                                                        "GET /search"))


def _new_error_type(shop: Shop, tick: Tick) -> None:
    def redis_timeout(draft: SpanDraft) -> None:
        if shop.rng.random() < 0.3:
            draft.attributes["http.response.status_code"] = 503
            draft.attributes["error.type"] = "RedisTimeout"
            draft.error = "redis: i/o timeout"
            draft.duration_ns = int(draft.duration_ns * 1.5)

    shop.spans(CHECKOUT, tick.time_ns, shape=redis_timeout if tick.in_fault else None)
    shop.spans(CART, tick.time_ns)


def _latency_x5(shop: Shop, tick: Tick) -> None:
    shop.spans(PRODUCT, tick.time_ns, latency_factor=5.0 if tick.in_fault else 1.0)
    shop.spans(CART, tick.time_ns)


NEW_TEMPLATE = "payment provider rejected card: gateway timeout after {n} retries (upstream={host})"


def _new_log_template(shop: Shop, tick: Tick) -> None:
    shop.logs(tick.time_ns)
    if tick.in_fault:
        rng = shop.rng
        for _ in range(rng.choice((1, 2, 2, 3))):
            host = rng.choice(("psp-a.example", "psp-b.example"))
            body = NEW_TEMPLATE.format(n=rng.randrange(3, 6), host=host)
            at = tick.time_ns + rng.randrange(10**9)
            shop.emit_log(LogDraft(at, "ERROR", body, {"code.function": "pay"}))
    shop.spans(CART, tick.time_ns)


def _error_log_share(shop: Shop, tick: Tick) -> None:
    shop.logs(tick.time_ns, error_share=0.10 if tick.in_fault else 0.01)
    shop.spans(CART, tick.time_ns)


def _gauge_shift(shop: Shop, tick: Tick) -> None:
    shop.gauge(tick.time_ns, 55.0 if tick.in_fault else 40.0)
    shop.counter(tick.time_ns, 20.0)


def _counter_rate(shop: Shop, tick: Tick) -> None:
    shop.counter(tick.time_ns, 60.0 if tick.in_fault else 20.0)
    shop.gauge(tick.time_ns, 40.0)


def _cumulative_rate(shop: Shop, tick: Tick) -> None:
    shop.cumulative_counter(tick.time_ns, 30.0 if tick.in_fault else 10.0)
    shop.gauge(tick.time_ns, 40.0)


def _deploy_attribute(shop: Shop, tick: Tick) -> None:
    def new_provider(draft: SpanDraft) -> None:
        draft.attributes["payment.provider"] = "card-processor-b"

    shop.spans(CHECKOUT, tick.time_ns, shape=new_provider if tick.in_fault else None)
    shop.spans(CART, tick.time_ns)


def _deploy_hooks(warmup_s: int, fault_s: int) -> Callable[[int], Hook | None]:
    def hook(second: int) -> Hook | None:
        if second == warmup_s:
            return lambda shop, _: shop.client.set_version("1.5.0")
        if second == warmup_s + fault_s:
            return lambda shop, _: shop.client.set_version("1.4.2")  # rolled back
        return None

    return hook


WORDS = ("red", "blue", "green", "black", "white", "wool", "linen", "cotton", "leather", "running", "trail",
         "winter", "summer", "rain", "jacket", "shoes", "boots", "socks", "shirt", "dress", "bag", "hat",
         "scarf", "gloves", "kids", "men", "women", "size", "xl", "slim", "vintage", "organic", "sale",
         "gift", "lamp", "desk", "chair", "sofa", "rug", "mug", "kettle", "pan", "knife", "phone", "case",
         "cable")


def _high_cardinality(shop: Shop, tick: Tick) -> None:
    def raw_query(draft: SpanDraft) -> None:
        rng = shop.rng
        words = [rng.choice(WORDS) for _ in range(rng.randrange(2, 5))]
        draft.attributes["search.query"] = " ".join(words) + f" {rng.randrange(100)}cm"

    shop.spans(SEARCH, tick.time_ns, shape=raw_query if tick.in_fault else None)
    shop.spans(CART, tick.time_ns)


# --- controls -----------------------------------------------------------------------------------------------
DAY_S = 60 * MINUTE
"""The daily-style cycle, compressed into one hour of event time (a day at 1/24 scale)."""


def _seasonal(shop: Shop, tick: Tick) -> None:
    phase = math.sin(2 * math.pi * tick.second / DAY_S)
    shop.spans(PRODUCT, tick.time_ns, rate_factor=1 + 0.6 * phase, latency_factor=1 + 0.3 * phase)
    shop.spans(CART, tick.time_ns, rate_factor=1 + 0.6 * phase)
    shop.logs(tick.time_ns, rate=5.0 * (1 + 0.6 * phase))
    shop.gauge(tick.time_ns, 40.0 + 15.0 * phase)
    shop.counter(tick.time_ns, 20.0 * (1 + 0.6 * phase))


def _rare_but_normal(shop: Shop, tick: Tick) -> None:
    rng = shop.rng

    def rare_product(draft: SpanDraft) -> None:
        roll = rng.random()
        if roll < 0.003:
            draft.attributes["http.response.status_code"] = 404
        elif roll < 0.005:
            draft.attributes["cache.result"] = "miss"
            draft.duration_ns *= 8

    def rare_checkout(draft: SpanDraft) -> None:
        if rng.random() < 0.005:
            draft.attributes["http.response.status_code"] = 402
            draft.attributes["error.type"] = "CardDeclined"
            draft.error = "card declined"

    def rare_log(draft: LogDraft) -> None:
        roll = rng.random()
        if roll < 0.002:
            draft.severity = "INFO"
            draft.body = f"config reloaded from /etc/shop/{rng.choice(('app', 'flags'))}.yaml"
        elif roll < 0.004:
            draft.severity = "WARN"
            table = rng.choice(("orders", "carts"))
            draft.body = f"slow query on table {table}: {rng.randrange(800, 3000)} ms"

    shop.spans(PRODUCT, tick.time_ns, shape=rare_product)
    shop.spans(CHECKOUT, tick.time_ns, shape=rare_checkout)
    shop.logs(tick.time_ns, shape=rare_log)


def _steady(shop: Shop, tick: Tick) -> None:
    shop.spans(PRODUCT, tick.time_ns)
    shop.spans(CHECKOUT, tick.time_ns)
    shop.logs(tick.time_ns)
    shop.gauge(tick.time_ns, 40.0)
    shop.counter(tick.time_ns, 20.0)
    shop.cumulative_counter(tick.time_ns, 10.0)


RESTART_EVERY_S = 15 * MINUTE


def _restart_hooks(every_s: int) -> Callable[[int], Hook | None]:
    def hook(second: int) -> Hook | None:
        if second and second % every_s == 0:
            return lambda shop, _: shop.client.restart()
        return None

    return hook


def catalog() -> list[Scenario]:
    """Every scenario at its full length (40 min warm-up, 10 min fault, 20 min after; controls 2-3 h)."""
    w, f = 40 * MINUTE, 10 * MINUTE
    return [
        Scenario("new_error_type", "fault", "POST /checkout: 30 % of spans 503 with error.type=RedisTimeout "
                 "(never seen) and status ERROR", stream("traces", CHECKOUT.name), _new_error_type),
        Scenario("latency_x5", "fault", "GET /product/{id} 5 times slower; GET /cart unchanged",
                 stream("traces", PRODUCT.name), _latency_x5),
        Scenario("new_log_template", "fault", "a new ERROR template at ~2 lines/s beside 5 normal lines/s",
                 stream("logs", LOG_SCOPE), _new_log_template),
        Scenario("error_log_share_x10", "fault", "share of known ERROR lines 1 % -> 10 %",
                 stream("logs", LOG_SCOPE), _error_log_share),
        Scenario("gauge_level_shift", "fault", "queue.depth 40 -> 55 (noise sd 3), one point/s",
                 stream("metrics", GAUGE), _gauge_shift),
        Scenario("counter_rate_change", "fault", "orders.placed (delta, one point/s) Poisson rate 20 -> 60",
                 stream("metrics", COUNTER), _counter_rate),
        Scenario("cumulative_counter_rate_change", "fault", "checkout.attempts (cumulative, the SDK's "
                 "default temporality; one point/s) rate 10 -> 30 per s", stream("metrics", CUMULATIVE),
                 _cumulative_rate),
        Scenario("deploy_attribute_change", "fault", "deploy 1.4.2 -> 1.5.0 (client restarted with the new "
                 "service.version): POST /checkout payment.provider a -> b; rolled back after",
                 stream("traces", CHECKOUT.name), _deploy_attribute, hooks=_deploy_hooks(w, f)),
        Scenario("high_cardinality_attribute", "fault", "GET /search spans gain search.query with raw "
                 "free-text values", stream("traces", SEARCH.name), _high_cardinality),
        Scenario("daily_seasonality", "control", "rates +-60 %, latency +-30 %, gauge 40 +- 15 over a "
                 "1 h cycle (a day compressed), 3 cycles", None, _seasonal, warmup_s=0, fault_s=0,
                 after_s=3 * DAY_S),
        Scenario("rare_but_normal", "control", "404s 0.3 %, cache misses x8 0.2 %, card declined 0.5 %, "
                 "rare log templates 0.2 %, all from the start", None, _rare_but_normal, warmup_s=0,
                 fault_s=0, after_s=150 * MINUTE),
        Scenario("client_restart", "control", "spans, logs, gauge, delta and cumulative counters; the SDK "
                 "restarted every 15 min (new instance id, new exporters, cumulative totals from 0)", None,
                 _steady, warmup_s=0, fault_s=0, after_s=120 * MINUTE, hooks=_restart_hooks(RESTART_EVERY_S)),
    ]


def with_phases(scenario: Scenario, warmup_s: int, fault_s: int, after_s: int) -> Scenario:
    """The scenario at other lengths (fast runs): the deploy follows its new fault window, the client
    restarts every quarter of the run."""
    scaled = scenario.scaled(warmup_s, fault_s, after_s)
    if scenario.name == "deploy_attribute_change":
        scaled = replace(scaled, hooks=_deploy_hooks(warmup_s, fault_s))
    if scenario.name == "client_restart":
        scaled = replace(scaled, hooks=_restart_hooks(max(1, scaled.total_s // 4)))
    return scaled
