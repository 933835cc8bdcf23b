"""What a scenario's incidents (and anomalous windows) say against the fault it injected; pure functions
over the API's JSON, all times event times."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

AFTERMATH_S = 300
"""An incident on the faulty stream opened up to this long after the fault ended still belongs to the
fault (the return to normal is a change too); later ones are false."""


def ts(value: str) -> float:
    """RFC 3339 -> unix seconds."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    end: float


def union_within(spans: list[Span], lo: float, hi: float) -> float:
    """Length of the union of ``spans`` clipped to [lo, hi]."""
    total, reach = 0.0, lo
    for s in sorted(spans, key=lambda s: s.start):
        start, end = max(s.start, reach), min(s.end, hi)
        if end > start:
            total += end - start
            reach = end
    return total


def incident_span(incident: dict[str, Any], traffic_end: float) -> Span:
    closed = incident.get("resolved_at")
    return Span(ts(incident["opened_at"]), ts(closed) if closed else traffic_end)


def window_span(anomaly: dict[str, Any]) -> Span:
    """An anomalous window's event-time span. The gateway stamps ``window_start`` with the wall clock when
    the window's first event has already left its ring of recent events; such a window counts from its end."""
    start, end = ts(anomaly["window_start"]), ts(anomaly["window_end"])
    return Span(min(start, end), end)


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """Two-sided upper bound of a Poisson mean after ``k`` counts (Garwood), by bisection on the CDF."""
    tail = (1 - confidence) / 2

    def cdf(lam: float) -> float:
        term = total = math.exp(-lam)
        for i in range(1, k + 1):
            term *= lam / i
            total += term
        return total

    lo, hi = 0.0, 10.0 + 10 * k
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > tail else (lo, mid)
    return hi


@dataclass
class FaultResult:
    incidents: int
    """Incidents on the faulty stream during the fault or its aftermath (goal: exactly 1)."""
    detect_s: float | None
    """Event time from the fault's start to the first of them opening."""
    open_share: float
    """Share of the fault covered by them."""
    resolve_s: float | None
    """Event time from the fault's end to the last of them closing; None while one is still open."""
    statuses: list[str]
    false_incidents: int
    """Incidents anywhere else (other streams, or the faulty one outside the fault)."""
    window_detect_s: float | None
    """The same from anomalous windows (the detectors' output before incidents)."""
    window_share: float
    windows_in_fault: int
    windows_outside: int
    summaries: list[str] = field(default_factory=list)
    """The one-sentence summary of each of them, as the API gives it (what a person is told)."""

    @property
    def passed(self) -> bool:
        return (1 <= self.incidents <= 2 and self.open_share >= 0.9 and self.resolve_s is not None
                and self.resolve_s >= 0 and all(status == "resolved" for status in self.statuses))


@dataclass
class ControlResult:
    false_incidents: int
    normal_events: int
    """Events scored after each stream's warm-up."""
    declared_per_million: float | None
    windows: int
    statuses: list[str] = field(default_factory=list)

    @property
    def per_million(self) -> float:
        return 1e6 * self.false_incidents / max(1, self.normal_events)

    @property
    def upper_per_million(self) -> float:
        return 1e6 * poisson_upper(self.false_incidents) / max(1, self.normal_events)

    @property
    def passed(self) -> bool | None:
        if self.declared_per_million is None:
            return None
        return self.per_million <= 1.5 * self.declared_per_million


def fault_result(incidents: list[dict[str, Any]], anomalies: list[dict[str, Any]], target: str,
                 fault_start: float, fault_end: float, traffic_end: float) -> FaultResult:
    ours: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for inc in incidents:
        span = incident_span(inc, traffic_end)
        belongs = (inc["stream_id"] == target and span.end >= fault_start
                   and span.start <= fault_end + AFTERMATH_S)
        (ours if belongs else others).append(inc)
    spans = [incident_span(i, traffic_end) for i in ours]
    fault_len = fault_end - fault_start
    detect = min((s.start for s in spans), default=None)
    resolve = None
    if ours and all(i.get("resolved_at") for i in ours):
        resolve = max(s.end for s in spans) - fault_end
    windows = [window_span(a) for a in anomalies if a["stream_id"] == target]
    in_fault = [w for w in windows if w.end >= fault_start and w.start <= fault_end]
    first_window = min((w.end for w in in_fault), default=None)
    return FaultResult(
        incidents=len(ours), detect_s=None if detect is None else detect - fault_start,
        open_share=union_within(spans, fault_start, fault_end) / fault_len,
        resolve_s=resolve, statuses=[i["status"] for i in ours], false_incidents=len(others),
        window_detect_s=None if first_window is None else first_window - fault_start,
        window_share=union_within(in_fault, fault_start, fault_end) / fault_len,
        windows_in_fault=len(in_fault), windows_outside=len(anomalies) - len(in_fault),
        summaries=[str(i.get("summary") or "") for i in ours])


def normal_events(streams: list[dict[str, Any]]) -> int:
    return sum(max(0, int(s["events_seen"]) - int(s["warmup"]["needed"])) for s in streams)


def control_result(incidents: list[dict[str, Any]], anomalies: list[dict[str, Any]],
                   streams: list[dict[str, Any]], declared: float | None) -> ControlResult:
    return ControlResult(false_incidents=len(incidents), normal_events=normal_events(streams),
                         declared_per_million=declared, windows=len(anomalies),
                         statuses=[i["status"] for i in incidents])
