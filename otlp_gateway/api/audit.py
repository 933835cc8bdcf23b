"""Writing the audit log: one row per change made through the API (who, what, when, before, after)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from otlp_gateway.store.base import AnomalyRecord, ApiKeyStore, AuditEntry, IncidentRecord, StreamInfo

from .auth import Principal
from .schemas import json_safe


def anomaly_view(rec: AnomalyRecord) -> dict[str, Any]:
    return {"id": rec.id, "stream_id": rec.stream_id, "status": rec.status, "severity": rec.severity}


def incident_view(rec: IncidentRecord) -> dict[str, Any]:
    return {"id": rec.id, "stream_id": rec.stream_id, "status": rec.status, "severity": rec.severity,
            "acknowledged_by": rec.acknowledged_by, "closed_by": rec.closed_by}


def stream_view(info: StreamInfo) -> dict[str, Any]:
    return {"stream_id": info.stream_id, "profile": info.profile, "settings": json_safe(info.settings),
            "state": info.state}


async def record_change(store: ApiKeyStore, who: Principal, action: str, target: str,
                        before: dict[str, Any] | None, after: dict[str, Any] | None) -> AuditEntry:
    entry = AuditEntry(actor=who.actor, action=action, target=target, before=before, after=after,
                       at=dt.datetime.now(dt.UTC))
    entry_id = await store.append_audit(entry)
    return dataclasses.replace(entry, id=entry_id)
