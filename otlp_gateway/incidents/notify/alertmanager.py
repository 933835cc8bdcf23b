"""Alertmanager's v2 API: ``POST <url>/api/v2/alerts`` with a JSON array of alerts.

An incident is one alert: labels ``alertname=DriftlockIncident``, ``service``, ``signal``, ``stream``,
``severity`` (what Alertmanager groups, routes and deduplicates on: stable over the incident's life, except
the severity, which only rises: the alert under the old severity is ended when it does); annotations
``summary``, ``description`` and ``incident_id``; ``generatorURL`` = the incident's page in the UI.
``startsAt`` is when it opened (event time, never after now); an open incident is re-sent without
``endsAt`` (Alertmanager ends an alert that stops coming after its resolve_timeout); a closed one once with
``endsAt`` = when the gateway learned of the close.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from otlp_gateway.incidents.records import duration_seconds, rfc3339
from otlp_gateway.store.base import IncidentRecord

ALERTNAME = "DriftlockIncident"
PATH = "/api/v2/alerts"
MAX_ALERTS_PER_POST = 500


def labels(rec: IncidentRecord) -> dict[str, str]:
    return {"alertname": ALERTNAME, "service": rec.service, "signal": rec.signal, "stream": rec.stream_id,
            "severity": rec.severity}


def alert(rec: IncidentRecord, url: str, now: dt.datetime, *, ended: bool,
          as_severity: str | None = None) -> dict[str, Any]:
    """The alert of ``rec`` (``as_severity``: under a former severity, to end that alert)."""
    tags = labels(rec)
    if as_severity is not None:
        tags["severity"] = as_severity
    opened = min(rec.opened_at, now)
    state = "open" if not ended else rec.status.replace("_", " ")
    description = (f"{rec.signal} stream {rec.stream_id} of service {rec.service}: {state}, "
                   f"{rec.anomalous_windows} anomalous windows over {duration_seconds(rec):.0f} s, "
                   f"lowest p-value {rec.min_p_value:.2g}. Incident {rec.id}: {url}")
    body: dict[str, Any] = {
        "labels": tags,
        "annotations": {"summary": rec.summary or f"Incident on {rec.stream_id}", "description": description,
                        "incident_id": rec.id},
        "startsAt": rfc3339(opened),
        "generatorURL": url,
    }
    if ended:
        body["endsAt"] = rfc3339(max(now, opened))
    return body


def payload(alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps(alerts, separators=(",", ":"), allow_nan=False).encode()
