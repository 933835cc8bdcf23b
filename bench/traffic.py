"""The benchmarks' one traffic generator: never-repeated OTLP trace and log requests of realistic cardinality.

What a gateway in front of a mid-size system sees, so that no cache in the gateway hits more often than it
would in production:

* every span and log record has its own trace and span ids and its own timestamp (time only moves forward),
  so no two requests are ever byte-identical, whatever the run length;
* spans: ``services`` services (8 by default) with 6 routes each (one stream per service and route under the
  default stream key), routes of unequal popularity; 7 attributes per span, of which ``url.path`` (ids and
  product slugs), ``enduser.id``, ``client.address`` and ``k8s.pod.name`` (replicas replaced by rolling
  deploys) are high-cardinality; durations log-normal per route with a slow tail (2 % of spans 8-30x
  slower), 5xx and 4xx statuses now and then;
* log records: ~20 message templates whose variable parts are ids, numbers, IP addresses, user names,
  durations, paths; severities mostly INFO, with DEBUG, WARN and ERROR; 4 attributes per record; one log
  stream per service and logger (6 loggers a service);
* a request carries ``resources_per_request`` resources (a collector's batch: several services' pods).

Seeded and deterministic: the same ``TrafficGenerator(seed=...)`` gives the same request sequence.
``streams`` scales the number of live streams: services are added (6 streams each) until there are at
least that many.

    gen = TrafficGenerator(seed=1)
    raw = gen.traces(512)           # one serialized ExportTraceServiceRequest of 512 spans
    raw = gen.logs(512)             # one serialized ExportLogsServiceRequest of 512 log records
"""

from __future__ import annotations

import math
import random
import string
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

ROUTES_PER_SERVICE = 6
LOGGERS_PER_SERVICE = 6
DEFAULT_SERVICES = 8
PODS_PER_SERVICE = 4
ROLLOUT_EVERY = 64
"""Requests between two pod replacements (a rolling deploy replaces one replica of one service)."""
START_NS = 1_760_000_000 * 10**9

_SERVICE_NAMES = ("frontend", "checkout", "cart", "payment", "catalog", "shipping", "accounts", "search")
_ROUTE_SHAPES = (  # (method, route template, url.path generator kind, median duration ms)
    ("GET", "/api/v1/products/{id}", "product", 4.0),
    ("GET", "/api/v1/search", "search", 18.0),
    ("POST", "/api/v1/cart/{cart_id}/items", "cart", 9.0),
    ("GET", "/api/v1/users/{user_id}/orders", "orders", 12.0),
    ("POST", "/api/v1/checkout", "plain", 45.0),
    ("GET", "/healthz", "plain", 0.4),
    ("PUT", "/api/v1/users/{user_id}/profile", "profile", 7.0),
    ("DELETE", "/api/v1/cart/{cart_id}/items/{item_id}", "cart_item", 6.0),
    ("GET", "/api/v1/recommendations", "plain", 25.0),
    ("GET", "/api/v2/inventory/{sku}", "sku", 3.0),
    ("POST", "/api/v1/payments/{payment_id}/capture", "payment", 80.0),
    ("GET", "/api/v1/shipping/quote", "plain", 30.0),
)
_ROUTE_WEIGHTS = (40, 22, 14, 10, 8, 6)
"""Popularity of a service's 6 routes (most popular first)."""
_WORDS = ("blue", "running", "shoes", "linen", "shirt", "oak", "table", "lamp", "wool", "scarf", "steel",
          "bottle", "leather", "wallet", "cotton", "socks", "ceramic", "mug", "desk", "chair", "kids", "pro",
          "mini", "max", "classic", "slim", "travel", "bag", "garden", "hose")
_FIRST = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
          "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara", "zoe", "omar",
          "li", "mei", "sven", "anna", "jonas", "ines", "pablo", "sara")
_LAST = ("smith", "jones", "garcia", "miller", "davis", "martin", "lopez", "wilson", "anderson", "thomas",
         "moore", "jackson", "white", "harris", "clark", "lewis", "walker", "young", "king", "wright",
         "nguyen", "kim", "novak", "berg", "rossi", "dubois", "silva", "sato", "khan", "meyer")
_STATUS = ((200, 9300), (201, 200), (204, 150), (304, 100), (400, 80), (401, 40), (404, 90), (409, 10),
           (429, 10), (500, 15), (502, 3), (503, 2))
_LOGGER_SUFFIXES = ("http.RequestLogger", "service.OrderService", "db.ConnectionPool", "auth.SessionManager",
                    "cache.RedisClient", "jobs.Scheduler")

# (severity number, template, weight); {…} fields are filled by _fill
_LOG_TEMPLATES = (
    (9, "GET {path} completed with {status} in {ms} ms", 120),
    (9, "user {user} logged in from {ip}", 60),
    (9, "order {order} placed by {user}: {n} items, total {amount} EUR", 40),
    (9, "payment {uuid} authorized for order {order} ({amount} EUR)", 30),
    (5, "cache miss for key product:{n}, loading from db", 80),
    (5, "cache hit ratio {ratio} over last {n} lookups", 20),
    (9, "processed batch of {n} events from partition {small} in {ms} ms", 40),
    (5, "connection pool stats: size={small} active={small2} idle={small3} waiting={tiny}", 30),
    (9, "session {hex} refreshed for {user}, expires at {ts}", 30),
    (13, "slow query on table orders took {ms_slow} ms (rows={n})", 15),
    (13, "retrying request to {peer} after {ms} ms (attempt {tiny})", 12),
    (9, "shipment {order} handed to carrier {carrier}, tracking {hex}", 15),
    (9, "inventory for sku {sku} updated: {n} left in warehouse {small}", 25),
    (5, "scheduled job {job} started at {ts}", 8),
    (9, "scheduled job {job} finished in {ms} ms, {n} rows touched", 8),
    (13, "rate limit reached for client {ip}: {n} requests in {small} s", 6),
    (17, "failed to charge card for order {order}: gateway returned {code5xx} after {ms_slow} ms", 3),
    (17, "timeout calling {peer} after {ms_slow} ms; circuit breaker {breaker}", 2),
    (9, "email confirmation sent to {user}@example.com for order {order}", 15),
    (1, "GET {path} headers parsed in {us} us from {ip}", 25),
)
_PEERS = ("payment-gateway", "inventory-db", "recommendation-svc", "shipping-api", "fraud-check", "redis-0")
_CARRIERS = ("dhl", "ups", "fedex", "postnl", "gls")
_JOBS = ("sync-inventory", "expire-carts", "reindex-search", "send-digests", "rotate-keys")


# --- protobuf wire encoding (a request is a few hundred thousand fields: message objects are 4x slower) -----
_U64 = struct.Struct("<Q")
_FIXED64_1, _FIXED64_7, _FIXED64_8, _FIXED64_11 = (bytes([n << 3 | 1]) for n in (1, 7, 8, 11))
"""Tags of fixed64 fields: LogRecord time_unix_nano (1) and observed_time_unix_nano (11); Span start (7)
and end (8)."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [_varint(n) for n in range(1 << 14)]


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (message, string or bytes); empty payloads are still written."""
    n = len(payload)
    return bytes((number << 3 | 2,)) + (_SMALL[n] if n < 16384 else _varint(n)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return bytes((number << 3,)) + _varint(value & 0xFFFFFFFFFFFFFFFF)


def _any_value(value: str | int) -> bytes:
    if isinstance(value, int):
        return _varint_field(3, value)
    return _field(1, value.encode())


def _key_value(key: str, value: str | int) -> bytes:
    return _field(1, key.encode()) + _field(2, _any_value(value))


def _attr(number: int, key: str, value: str | int) -> bytes:
    """An ``attributes`` field: number 9 on ``Span``, 6 on ``LogRecord``."""
    if type(value) is not str:
        return _field(number, _key_value(key, value))
    head = _HEADS.get((number, key))
    if head is None:
        head = _HEADS[(number, key)] = (bytes((number << 3 | 2,)), _field(1, key.encode()) + b"\x12")
    v = value.encode()
    n = len(v)
    if n > 120:
        return _field(number, _key_value(key, value))
    kv = head[1] + _SMALL[n + 2] + b"\n" + _SMALL[n] + v  # KeyValue{key, value: AnyValue{string_value}}
    return head[0] + _SMALL[len(kv)] + kv


_HEADS: dict[tuple[int, str], tuple[bytes, bytes]] = {}
SPAN, LOG = 9, 6
"""Field numbers of ``attributes`` on ``Span`` and on ``LogRecord``."""
_SERVER_KIND = _varint_field(6, 2)  # SPAN_KIND_SERVER
_ERROR_STATUS = _field(15, _field(2, b"upstream error") + _varint_field(3, 2))  # Status{message, code ERROR}
_TRACE_ID, _SPAN_ID, _PARENT_ID = b"\x0a\x10", b"\x12\x08", b"\x22\x08"  # Span fields 1, 2, 4
_LOG_TRACE_ID, _LOG_SPAN_ID = b"\x4a\x10", b"\x52\x08"  # LogRecord fields 9, 10
_SPAN_SCOPE = _field(1, _field(1, b"io.opentelemetry.spring-webmvc-6.0") + _field(2, b"2.10.0-alpha"))


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    path_kind: str
    median_ms: float
    sigma: float

    @property
    def span_name(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def name_field(self) -> bytes:
        return _field(5, self.span_name.encode())

    @property
    def attributes(self) -> bytes:
        """The attributes every span of the route shares."""
        return _attr(SPAN, "http.request.method", self.method) + _attr(SPAN, "http.route", self.template)


@dataclass(slots=True)
class Service:
    name: str
    version: str
    namespace: str
    routes: tuple[Route, ...]
    loggers: tuple[str, ...]
    pods: list[str]


class TrafficGenerator:
    """Never-repeated OTLP requests; see the module docstring. Not thread-safe."""

    def __init__(self, seed: int = 0, streams: int | None = None, resources_per_request: int = 4,
                 users: int = 50_000, first_service: int = 0):
        """``first_service``: number the services from here (generators with disjoint service ranges
        share no stream)."""
        self.seed = seed
        self._rng = random.Random(seed)
        self._np = np.random.default_rng(seed)
        n_services = DEFAULT_SERVICES if streams is None else max(DEFAULT_SERVICES,
                                                                  math.ceil(streams / ROUTES_PER_SERVICE))
        self.services = [self._service(first_service + i) for i in range(n_services)]
        self.resources_per_request = max(1, min(resources_per_request, n_services))
        self._users = [f"{_FIRST[k % len(_FIRST)]}.{_LAST[(k // len(_FIRST)) % len(_LAST)]}{k // 900 or ''}"
                       for k in range(users)]
        self._now = START_NS + seed * 10**12  # distinct seeds do not share timestamps either
        self._requests = 0
        self._next_service = 0
        self.items = 0

    @property
    def span_streams(self) -> int:
        return len(self.services) * ROUTES_PER_SERVICE

    @property
    def log_streams(self) -> int:
        return len(self.services) * LOGGERS_PER_SERVICE

    # --- the population -----------------------------------------------------------------------------
    def _service(self, i: int) -> Service:
        rng = self._rng
        base = _SERVICE_NAMES[i % len(_SERVICE_NAMES)]
        name = base if i < len(_SERVICE_NAMES) else f"{base}-{i // len(_SERVICE_NAMES):04d}"
        shapes = rng.sample(_ROUTE_SHAPES, ROUTES_PER_SERVICE)
        routes = tuple(Route(m, t, kind, med * rng.uniform(0.6, 1.6), rng.uniform(0.35, 0.8))
                       for m, t, kind, med in shapes)
        package = name.replace("-", "")
        loggers = tuple(f"com.shop.{package}.{suffix}" for suffix in _LOGGER_SUFFIXES)
        version = f"1.{rng.randrange(20)}.{rng.randrange(10)}"
        return Service(name, version, rng.choice(("shop", "payments", "platform")), routes, loggers,
                       [self._pod_name(name) for _ in range(PODS_PER_SERVICE)])

    def _pod_name(self, service: str) -> str:
        rng = self._rng
        replica_set = "".join(rng.choices("0123456789abcdef", k=9))
        suffix = "".join(rng.choices(string.ascii_lowercase + string.digits, k=5))
        return f"{service}-{replica_set}-{suffix}"

    def _draw_users(self, n: int) -> list[str]:
        """A few hundred very active users, a long tail of the others."""
        g = self._np
        k = np.where(g.random(n) < 0.3, g.integers(0, 300, n), g.integers(0, len(self._users), n))
        return [self._users[i] for i in k.tolist()]

    def _draw_ips(self, n: int) -> list[str]:
        return [f"10.{r >> 16}.{(r >> 8) & 255}.{r & 255}" for r in self._np.integers(0, 1 << 24, n).tolist()]

    def _user(self) -> str:
        rng = self._rng
        return self._users[rng.randrange(300) if rng.random() < 0.3 else rng.randrange(len(self._users))]

    def _ip(self) -> str:
        r = self._rng.getrandbits(24)
        return f"10.{r >> 16}.{(r >> 8) & 255}.{r & 255}"

    def _url_path(self, route: Route, r: int, user: str) -> str:
        """``r``: 64 random bits drawn for this span; ``user``: a user name drawn for it."""
        kind = route.path_kind
        if kind == "product":
            words = [_WORDS[(r >> s) % len(_WORDS)] for s in range(0, 5 * (2 + r % 3), 5)]
            return f"/api/v1/products/{'-'.join(words)}-{(r >> 24) % 100_000}"
        if kind == "search":
            return "/api/v1/search"
        if kind == "cart":
            return f"/api/v1/cart/{r >> 16:012x}/items"
        if kind == "cart_item":
            return f"/api/v1/cart/{r >> 16:012x}/items/{1 + r % 999_999}"
        if kind == "orders":
            return f"/api/v1/users/{user}/orders"
        if kind == "profile":
            return f"/api/v1/users/{user}/profile"
        if kind == "sku":
            return f"/api/v2/inventory/SKU-{r % 10**7:07d}"
        if kind == "payment":
            return f"/api/v1/payments/pay_{r:016x}/capture"
        return route.template

    def _rollout(self) -> None:
        """Every ``ROLLOUT_EVERY`` requests one replica of one service is replaced (new pod name)."""
        if self._requests % ROLLOUT_EVERY == 0 and self._requests:
            service = self._rng.choice(self.services)
            service.pods[self._rng.randrange(len(service.pods))] = self._pod_name(service.name)

    def _request_services(self) -> list[Service]:
        """The services of the next request: consecutive in a round robin, so every stream gets traffic."""
        n = len(self.services)
        start = self._next_service
        self._next_service = (start + self.resources_per_request) % n
        return [self.services[(start + i) % n] for i in range(self.resources_per_request)]

    @staticmethod
    def _resource(service: Service, pod: str) -> bytes:
        """A ``Resource``'s fields: 8 attributes (the field numbers of attributes are 1 there)."""
        attrs = (("service.name", service.name), ("service.version", service.version),
                 ("service.namespace", service.namespace), ("k8s.namespace.name", service.namespace),
                 ("k8s.pod.name", pod), ("host.name", f"node-{zlib.crc32(pod.encode()) % 24:02d}"),
                 ("telemetry.sdk.language", "java"), ("telemetry.sdk.name", "opentelemetry"))
        return b"".join(_field(1, _key_value(k, v)) for k, v in attrs)

    @staticmethod
    def _split(n: int, parts: int) -> list[int]:
        base, extra = divmod(n, parts)
        return [base + (1 if i < extra else 0) for i in range(parts)]

    def _times(self, n: int) -> list[int]:
        """``n`` increasing timestamps after the last one (20-400 us apart)."""
        gaps = self._np.integers(20_000, 400_000, n)
        times = (self._now + np.cumsum(gaps)).tolist()
        self._now = times[-1] if n else self._now
        return times

    # --- traces -----------------------------------------------------------------------------------
    def traces(self, n_spans: int = 512) -> bytes:
        """One serialized ``ExportTraceServiceRequest`` of ``n_spans`` spans."""
        g = self._np
        self._rollout()
        self._requests += 1
        resources = []
        counts = self._split(n_spans, self.resources_per_request)
        for service, count in zip(self._request_services(), counts, strict=True):
            pod = service.pods[int(g.integers(len(service.pods)))]
            pod_attr = _attr(SPAN, "k8s.pod.name", pod)
            route_ix = g.choice(ROUTES_PER_SERVICE, size=count, p=_ROUTE_P)
            mu = np.log([r.median_ms for r in service.routes])[route_ix]
            sigma = np.array([r.sigma for r in service.routes])[route_ix]
            slow = np.where(g.random(count) < 0.02, g.uniform(8, 30, count), 1.0)  # the slow tail
            duration_ms = g.lognormal(mu, sigma) * slow
            starts = self._times(count)
            ends = (np.array(starts, dtype=np.uint64) + (duration_ms * 1e6).astype(np.uint64)).tolist()
            codes = g.choice(_STATUS_CODES, size=count, p=_STATUS_P).tolist()
            has_parent = (g.random(count) < 0.7).tolist()
            ids = g.bytes(32 * count)
            bits = g.integers(0, 1 << 63, count).tolist()
            users, path_users, ips = self._draw_users(count), self._draw_users(count), self._draw_ips(count)
            spans = []
            for i, ix in enumerate(route_ix.tolist()):
                route = service.routes[ix]
                code = codes[i]
                o = 32 * i
                spans.append(_field(2, b"".join((
                    _TRACE_ID + ids[o:o + 16], _SPAN_ID + ids[o + 16:o + 24],
                    _PARENT_ID + ids[o + 24:o + 32] if has_parent[i] else b"", route.name_field,
                    _SERVER_KIND, _FIXED64_7 + _U64.pack(starts[i]), _FIXED64_8 + _U64.pack(ends[i]),
                    route.attributes, _attr(SPAN, "http.response.status_code", code),
                    _attr(SPAN, "url.path", self._url_path(route, bits[i], path_users[i])),
                    _attr(SPAN, "enduser.id", users[i]), _attr(SPAN, "client.address", ips[i]), pod_attr,
                    _ERROR_STATUS if code >= 500 else b""))))
            scope_spans = _field(2, _SPAN_SCOPE + b"".join(spans))
            resources.append(_field(1, _field(1, self._resource(service, pod)) + scope_spans))
        self.items += n_spans
        return b"".join(resources)

    # --- logs -------------------------------------------------------------------------------------
    def logs(self, n_records: int = 512) -> bytes:
        """One serialized ``ExportLogsServiceRequest`` of ``n_records`` log records."""
        g = self._np
        self._rollout()
        self._requests += 1
        resources = []
        counts = self._split(n_records, self.resources_per_request)
        for service, count in zip(self._request_services(), counts, strict=True):
            pod = service.pods[int(g.integers(len(service.pods)))]
            loggers = np.sort(g.choice(LOGGERS_PER_SERVICE, size=count, p=_ROUTE_P))
            times = self._times(count)
            delays = g.integers(0, 10**6, count).astype(np.uint64)
            observed = (np.array(times, dtype=np.uint64) + delays).tolist()
            kinds = g.choice(len(_LOG_TEMPLATES), size=count, p=_LOG_P).tolist()
            threads = g.integers(1, 201, count).tolist()
            ids = g.bytes(24 * count)
            users, ips = self._draw_users(count), self._draw_ips(count)
            scopes = []
            first = 0
            for logger, n in zip(*np.unique(loggers, return_counts=True), strict=True):
                function = _attr(LOG, "code.function", _LOGGER_SUFFIXES[logger].split(".")[1])
                records = []
                for i in range(first, first + int(n)):
                    severity, template, _ = _LOG_TEMPLATES[kinds[i]]
                    body = _field(5, _field(1, self._fill(template, service).encode()))
                    o = 24 * i
                    records.append(_field(2, b"".join((
                        _FIXED64_1 + _U64.pack(times[i]), _SEVERITY[severity], body,
                        _attr(LOG, "thread.name", f"http-nio-8080-exec-{threads[i]}"), function,
                        _attr(LOG, "enduser.id", users[i]), _attr(LOG, "client.address", ips[i]),
                        _LOG_TRACE_ID + ids[o:o + 16], _LOG_SPAN_ID + ids[o + 16:o + 24],
                        _FIXED64_11 + _U64.pack(observed[i])))))
                first += int(n)
                scope = _field(1, _field(1, service.loggers[logger].encode()))
                scopes.append(_field(2, scope + b"".join(records)))
            resources.append(_field(1, _field(1, self._resource(service, pod)) + b"".join(scopes)))
        self.items += n_records
        return b"".join(resources)

    def _fill(self, template: str, service: Service) -> str:
        values: dict[str, object] = {}
        for field in _FIELDS.get(template, ()):
            values[field] = self._template_value(field, service)
        return template.format(**values) if values else template

    def _template_value(self, name: str, service: Service) -> object:
        rng = self._rng
        if name == "path":
            return self._url_path(rng.choice(service.routes), rng.getrandbits(63), self._user())
        if name == "status":
            return rng.choices(_STATUS_CODES_LIST, weights=_STATUS_WEIGHTS)[0]
        if name == "ms":
            return int(rng.lognormvariate(3.0, 0.8))
        if name == "ms_slow":
            return int(rng.lognormvariate(7.5, 0.5))
        if name == "us":
            return int(rng.lognormvariate(4.0, 0.6))
        if name == "user":
            return self._user()
        if name == "ip":
            return self._ip()
        if name == "order":
            return f"ORD-{rng.randrange(10**8):08d}"
        if name == "uuid":
            h = f"{rng.getrandbits(128):032x}"
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if name == "hex":
            return f"{rng.getrandbits(64):016x}"
        if name == "amount":
            return f"{rng.lognormvariate(3.5, 0.9):.2f}"
        if name == "ratio":
            return f"{rng.uniform(0.6, 0.99):.3f}"
        if name == "n":
            return int(rng.lognormvariate(4.0, 1.2))
        if name in ("small", "small2", "small3"):
            return rng.randrange(1, 64)
        if name == "tiny":
            return rng.randrange(0, 5)
        if name == "ts":
            seconds = self._now // 10**9 + rng.randrange(3600)
            return f"2025-11-{1 + seconds % 28:02d}T{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:" \
                   f"{seconds % 60:02d}Z"
        if name == "peer":
            return rng.choice(_PEERS)
        if name == "carrier":
            return rng.choice(_CARRIERS)
        if name == "sku":
            return f"SKU-{rng.randrange(10**7):07d}"
        if name == "job":
            return rng.choice(_JOBS)
        if name == "code5xx":
            return rng.choice((500, 502, 503, 504))
        if name == "breaker":
            return rng.choice(("open", "half-open"))
        raise KeyError(name)

    # --- convenience ------------------------------------------------------------------------------
    def requests(self, signal: str, count: int, items: int = 512) -> list[bytes]:
        """``count`` consecutive requests of ``signal`` ("traces" or "logs")."""
        make = self.traces if signal == "traces" else self.logs
        return [make(items) for _ in range(count)]

    def stream(self, signal: str, items: int = 512) -> Iterator[bytes]:
        make = self.traces if signal == "traces" else self.logs
        while True:
            yield make(items)


def _probabilities(weights: list[int] | tuple[int, ...]) -> np.ndarray:
    w = np.array(weights, dtype=np.float64)
    return w / w.sum()


_STATUS_CODES = np.array([code for code, _ in _STATUS])
_STATUS_CODES_LIST = [code for code, _ in _STATUS]
_STATUS_WEIGHTS = [weight for _, weight in _STATUS]
_STATUS_P = _probabilities(_STATUS_WEIGHTS)
_LOG_P = _probabilities([weight for _, _, weight in _LOG_TEMPLATES])
_ROUTE_P = _probabilities(_ROUTE_WEIGHTS)
_SEVERITY = {number: _varint_field(2, number) + _field(3, text.encode())  # severity_number, severity_text
             for number, text in ((1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR"))}
_FIELDS = {template: tuple(part[1] for part in string.Formatter().parse(template) if part[1])
           for _, template, _ in _LOG_TEMPLATES}
