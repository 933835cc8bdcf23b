"""Synthetic canonical streams: a stationary service's logs and spans, with anomalies where asked.

Used by the detectors' example events (the gateway's start-up warm-up runs them), the evaluation's
stationary streams and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.canonical import canonical_log, canonical_span

_HOSTS = ("web-1", "web-2", "web-3", "worker-1")
_ROUTES = ("/api/cart", "/api/products/{id}", "/api/checkout", "/api/users/{id}")


def _log_event(rng: np.random.Generator) -> bytes:
    host = _HOSTS[int(rng.integers(len(_HOSTS)))]
    common = {"service.name": "shop", "host.name": host, "thread": f"pool-{int(rng.integers(1, 9))}"}
    kind = int(rng.choice(8, p=[0.34, 0.2, 0.12, 0.1, 0.1, 0.07, 0.05, 0.02]))
    if kind == 0:
        route = _ROUTES[int(rng.integers(len(_ROUTES)))]
        path = route.replace("{id}", str(int(rng.integers(1, 99999))))
        ms = int(rng.lognormal(3.0, 0.6))
        return canonical_log(f"GET {path} 200 in {ms} ms", 9, {
            **common, "http.method": "GET", "http.route": route, "http.status_code": 200,
            "request_id": f"{int(rng.integers(1 << 62)):016x}"})
    if kind == 1:
        user, a, b = int(rng.integers(1, 5000)), int(rng.integers(256)), int(rng.integers(256))
        return canonical_log(f"user u{user} logged in from 10.0.{a}.{b}", 9,
                             {**common, "auth.method": "password"})
    if kind == 2:
        ratio, shard = rng.uniform(0.5, 0.99), int(rng.integers(16))
        return canonical_log(f"cache hit ratio {ratio:.3f} for shard {shard}", 5, common)
    if kind == 3:
        return canonical_log(f"processed batch of {int(rng.integers(50, 500))} records in "
                             f"{int(rng.lognormal(4, 0.5))} ms", 9, {**common, "queue": "orders"})
    if kind == 4:
        size, active = int(rng.integers(10, 40)), int(rng.integers(0, 10))
        return canonical_log(f"connection pool size={size} active={active}", 5, common)
    if kind == 5:
        day, minute = int(rng.integers(1, 9)), int(rng.integers(10, 59))
        return canonical_log(f"scheduled job sync-inventory finished at 2025-03-0{day}T12:{minute}:00Z", 9,
                             common)
    if kind == 6:
        return canonical_log(f"slow query {int(rng.lognormal(6, 0.3))} ms on table orders", 13,
                             {**common, "db.system": "postgresql"})
    return canonical_log(f"timeout calling payment-service after {int(rng.integers(1000, 3000))} ms", 17,
                         {**common, "peer.service": "payment"})


def _log_anomaly(rng: np.random.Generator) -> bytes:
    line = int(rng.integers(100, 400))
    return canonical_log(
        f"java.lang.NullPointerException: Cannot invoke \"Cart.items()\" because \"cart\" is null at "
        f"com.shop.cart.CartService.checkout(CartService.java:{line})", 17,
        {"service.name": "shop", "host.name": "web-2", "exception.type": "java.lang.NullPointerException"})


_SPAN_OPS = (  # name, kind, typical duration (ns), attributes
    ("GET /api/cart", 2, 8e6, {"http.method": "GET", "http.route": "/api/cart", "http.status_code": 200}),
    ("SELECT cart_items", 3, 1.5e6, {"db.system": "postgresql", "db.operation": "SELECT"}),
    ("redis GET", 3, 2e5, {"db.system": "redis", "net.peer.name": "cache"}),
    ("POST /api/checkout", 2, 4e7,
     {"http.method": "POST", "http.route": "/api/checkout", "http.status_code": 200}),
    ("charge card", 1, 2e7, {"payment.provider": "stripe"}),
    ("publish order-created", 4, 5e5, {"messaging.system": "kafka", "messaging.destination": "orders"}),
)


def _span_event(rng: np.random.Generator, anomalous: bool = False) -> bytes:
    pick = int(rng.choice(len(_SPAN_OPS), p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]))
    name, kind, typical, attrs = _SPAN_OPS[pick]
    attrs = {**attrs, "service.name": "cart", "host.name": _HOSTS[int(rng.integers(3))]}
    duration = int(typical * rng.lognormal(0.0, 0.4))
    status = 1 if rng.random() < 0.3 else 0
    if anomalous:
        duration *= 30
        status = 2
        if "http.status_code" in attrs:
            attrs["http.status_code"] = 503
        attrs["error.type"] = "UpstreamUnavailable"
    return canonical_span(name, kind, status, duration, attrs)


def synthetic_logs(n: int, seed: int, anomalies: Sequence[int] = ()) -> list[bytes]:
    """``n`` canonical log events of a stationary service log; events at ``anomalies`` are a new error."""
    rng = np.random.default_rng(seed)
    marked = set(anomalies)
    return [_log_anomaly(rng) if i in marked else _log_event(rng) for i in range(n)]


def synthetic_spans(n: int, seed: int, anomalies: Sequence[int] = ()) -> list[bytes]:
    """``n`` canonical spans of a stationary service; spans at ``anomalies`` fail with a 30x latency."""
    rng = np.random.default_rng(seed)
    marked = set(anomalies)
    return [_span_event(rng, i in marked) for i in range(n)]
