"""The stored form of an incident update, and the links to its page (pure)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from otlp_gateway.store.base import IncidentRecord, Severity
from otlp_gateway.streams.incidents import IncidentChange
from otlp_gateway.streams.ring import RingItem

MAX_EVIDENCE = 20
MAX_FIELDS = 8
_ITEM_NOUN = {"traces": "span", "logs": "log record", "metrics": "point"}


def severity_of(value: str) -> Severity:
    """The store's scale: the detector's ``none`` (a window under the bar) counts as ``low``."""
    return value if value in ("low", "medium", "high", "critical") else "low"  # type: ignore[return-value]


def ns_to_dt(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)


def evidence_entry(item: RingItem, signal: str, name: str) -> dict[str, Any]:
    """One blamed event as the API shows it: its ids, its time (a string: nanoseconds do not fit a JSON
    number exactly) and a line of text saying what it is."""
    when = ns_to_dt(item.time_unix_nano).isoformat().replace("+00:00", "Z") if item.time_unix_nano else None
    text = f"{_ITEM_NOUN.get(signal, 'event')} {name!r}" + (f" at {when}" if when else "")
    return {"trace_id": item.trace_id.hex() if item.trace_id else None,
            "span_id": item.span_id.hex() if item.span_id else None,
            "time_unix_nano": str(item.time_unix_nano) if item.time_unix_nano else None,
            "text": text}


def with_subject(service: str, name: str, summary: str) -> str:
    """``summary`` led by the stream's service and name, as a person reads it in an alert or a list."""
    subject = f"{service} {name}".strip()
    return summary if not subject or summary.startswith(subject) else f"{subject}: {summary}"


def incident_record(change: IncidentChange, now: dt.datetime) -> IncidentRecord:
    """The row ``change`` upserts (``now``: when the gateway learned it)."""
    u = change.update
    key = change.key
    closed = u.status != "open"
    closed_ns = u.closed_time_ns if u.closed_time_ns is not None else u.last_anomalous_time_ns
    return IncidentRecord(
        stream_id=key.stream_id, seq=u.seq, opened_offset=change.opened_offset, signal=key.signal,
        service=key.service, name=key.name, profile=change.profile, status=u.status,
        severity=severity_of(u.severity), opened_at=ns_to_dt(u.opened_time_ns),
        last_anomalous_at=ns_to_dt(u.last_anomalous_time_ns),
        last_anomalous_offset=change.last_anomalous_offset,
        resolved_at=ns_to_dt(closed_ns) if closed else None, anomalous_windows=u.anomalous_windows,
        min_p_value=float(u.min_p_value), summary=with_subject(key.service, key.name, u.summary),
        fields=[dataclasses.asdict(f) for f in u.fields[:MAX_FIELDS]],
        evidence=[evidence_entry(item, key.signal, key.name) for item in change.evidence[:MAX_EVIDENCE]],
        closed_by=change.actor if closed else None, updated_at=now, id=change.incident_id)


class IncidentLinks:
    """Where an incident's page is: ``<base>/incidents/<id>``, ``base`` asked for when needed (the API's
    port is known only once it listens)."""

    def __init__(self, base: Callable[[], str]):
        self._base = base

    def url(self, incident_id: str) -> str:
        return f"{self._base().rstrip('/')}/incidents/{incident_id}"


def audit_target(incident_id: str) -> str:
    """The audit log's name of an incident (its trail is the entries with this target)."""
    return f"incident:{incident_id}"


def rfc3339(value: dt.datetime | None) -> str | None:
    """UTC, ``Z``-suffixed (the API's and the notifications' time format)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def duration_seconds(rec: IncidentRecord) -> float:
    """How long it lasted in event time: to its close, or to its last anomalous window while open."""
    end = rec.resolved_at if rec.resolved_at is not None else rec.last_anomalous_at
    return max(0.0, (end - rec.opened_at).total_seconds())


def incident_view(rec: IncidentRecord, url: str) -> dict[str, Any]:
    """The Incident JSON of the API and the webhook (one shape, see docs/incidents in the design)."""
    return {"id": rec.id, "stream_id": rec.stream_id, "signal": rec.signal, "service": rec.service,
            "name": rec.name, "status": rec.status, "severity": rec.severity,
            "opened_at": rfc3339(rec.opened_at), "last_anomalous_at": rfc3339(rec.last_anomalous_at),
            "resolved_at": rfc3339(rec.resolved_at), "duration_seconds": duration_seconds(rec),
            "anomalous_windows": rec.anomalous_windows,
            "min_p_value": rec.min_p_value if rec.min_p_value == rec.min_p_value else None,
            "summary": rec.summary, "acknowledged_by": rec.acknowledged_by,
            "acknowledged_at": rfc3339(rec.acknowledged_at), "url": url}
