"""The generic JSON webhook: one POST per incident event, signed.

Body: ``{"id": "<incident id>:<event>", "type": "incident.<event>", "at": RFC 3339, "incident": {the API's
Incident JSON}}`` with event ``opened``, ``acknowledged``, ``resolved``, ``accepted`` or
``false_positive``. Headers: ``X-Driftlock-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes
with notify.webhook.secret>``, ``X-Driftlock-Event`` and ``X-Driftlock-Delivery`` (the body's ``id``).
Delivery is at least once: a receiver deduplicates on the ``id``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from otlp_gateway.incidents.records import incident_view, rfc3339
from otlp_gateway.store.base import IncidentRecord

SIGNATURE_HEADER = "X-Driftlock-Signature"


def event(kind: str, rec: IncidentRecord, url: str, now: dt.datetime) -> dict[str, Any]:
    return {"id": f"{rec.id}:{kind}", "type": f"incident.{kind}", "at": rfc3339(now),
            "incident": incident_view(rec, url)}


def payload(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def headers(secret: bytes, body: bytes) -> dict[str, str]:
    parsed = json.loads(body)
    return {SIGNATURE_HEADER: signature(secret, body), "X-Driftlock-Event": str(parsed.get("type", "")),
            "X-Driftlock-Delivery": str(parsed.get("id", ""))}


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(signature(secret, body), header)
