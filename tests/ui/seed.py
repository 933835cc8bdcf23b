"""Incidents and score buckets written straight into a gateway's store, for the pages that must hold many of
them (120 for the browser tests, 10,000 for the load-time benchmark). Made deterministically from a seed: the
same call gives the same rows. ``test_incident_live.py`` makes its incident the real way (the SDK through a
gateway and its incident engine).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator

from otlp_gateway.store.base import SCORE_BUCKET_SECONDS, IncidentRecord, ScoreBucket

SERVICES = ("checkout", "cart", "payments", "search", "auth", "catalog", "shipping", "inventory")
ROUTES = ("GET /cart", "POST /checkout", "GET /item/{id}", "POST /login", "GET /search", "PUT /order/{id}")
SEVERITIES = ("low", "medium", "high", "critical")
BASE = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

FIELDS = [
    {"field": "http.response.status_code", "change": "new_value", "before": "200 (100 %)",
     "now": "503 (31 %)", "unusual": "never seen in 400 reference events", "bits": 812.5, "example": None},
    {"field": "duration", "change": "shift", "before": "40 ms median", "now": "240 ms median (x 6)",
     "unusual": "p < 1e-6", "bits": 310.2, "example": None},
    {"field": "log.template", "change": "new_template", "before": "never seen",
     "now": "upstream <IP> timed out after <N1> retries", "unusual": "new template", "bits": 190.0,
     "example": "upstream <IP> timed out after <N1> retries (request <UUID>)"},
]


def evidence(rng: random.Random, n: int, at_ns: int) -> list[dict[str, str]]:
    return [{"trace_id": f"{rng.getrandbits(128):032x}", "span_id": f"{rng.getrandbits(64):016x}",
             "time_unix_nano": str(at_ns + i * 2_000_000),
             "text": f"POST /checkout -> 503 in <N3> ms: upstream <IP> timed out after <N1> retries ({i})"}
            for i in range(n)]


def incident(i: int, *, rng: random.Random | None = None, stream_id: str | None = None,
             status: str | None = None, severity: str | None = None, opened_at: dt.datetime | None = None,
             minutes: float = 7.0) -> IncidentRecord:
    """Incident number ``i``: spread over services and routes, one in 50 still open."""
    rng = rng or random.Random(i)
    service = SERVICES[i % len(SERVICES)]
    route = ROUTES[(i // len(SERVICES)) % len(ROUTES)]
    stream = stream_id or f"traces/{service}/{route}"
    signal, service, name = stream.split("/", 2)
    opened = opened_at or BASE - dt.timedelta(minutes=15 * i)
    last = opened + dt.timedelta(minutes=minutes)
    chosen = status or ("open" if i % 50 == 0 else ("resolved", "accepted", "false_positive")[i % 3])
    return IncidentRecord(
        stream_id=stream, seq=i, opened_offset=1000 + 100 * i, signal=signal, service=service, name=name,
        profile="balanced", status=chosen,  # type: ignore[arg-type]
        severity=severity or SEVERITIES[i % 4],  # type: ignore[arg-type]
        opened_at=opened, last_anomalous_at=last, last_anomalous_offset=1200 + 100 * i,
        resolved_at=None if chosen == "open" else last + dt.timedelta(minutes=2),
        anomalous_windows=5 + i % 40, min_p_value=10.0 ** -(4 + i % 9),
        summary=f"{name} on {service} started answering 503 to 31 % of requests, 6x slower (#{i})",
        fields=FIELDS, evidence=evidence(rng, 3, int(opened.timestamp() * 1e9)))


def incidents(n: int, seed: int = 1) -> Iterator[IncidentRecord]:
    rng = random.Random(seed)
    for i in range(n):
        yield incident(i, rng=rng)


def score_buckets(stream_id: str, opened: dt.datetime, minutes: float, around: float = 30.0,
                  seed: int = 2) -> list[ScoreBucket]:
    """Quiet buckets for ``around`` minutes either side of an incident of ``minutes``, anomalous inside it."""
    rng = random.Random(seed)
    start = opened - dt.timedelta(minutes=around)
    end = opened + dt.timedelta(minutes=minutes + around)
    out = []
    t = start
    while t < end:
        inside = opened <= t < opened + dt.timedelta(minutes=minutes)
        p = 10.0 ** -rng.uniform(5.0, 9.0) if inside else 10.0 ** -rng.uniform(0.0, 2.2)
        out.append(ScoreBucket(stream_id=stream_id, bucket_start=t, windows=1, anomalous=int(inside),
                               min_p=p, max_score=round(-math.log10(p), 3)))
        t += dt.timedelta(seconds=SCORE_BUCKET_SECONDS)
    return out
