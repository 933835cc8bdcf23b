"""Conversions shared by every backend and the spool: JSON, timestamps, cursors, record <-> plain data,
query parameters and row decoding. What differs per backend (how times, booleans and JSON are stored)
comes in as the connector's converters."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from otlp_gateway.store.base import (
    AnomalyRecord,
    ApiKey,
    AuditEntry,
    IncidentPage,
    IncidentRecord,
    Page,
    ScoreBucket,
    StreamInfo,
)
from otlp_gateway.store.errors import InvalidCursorError

FIGURE_COLUMNS: tuple[str, ...] = (
    "novelty_bits_per_byte", "novelty_bits_per_event", "ncd", "compression_ratio_baseline",
    "compression_ratio_window", "entropy_baseline", "entropy_window", "delta_bits",
)
"""Detector figures stored as their own columns (all figures are also kept in the JSON ``figures``)."""


# The order anomaly rows are encoded in for bulk inserts (the named parameters of insert_anomalies).
ANOMALY_WRITE_COLUMNS: tuple[str, ...] = (
    "id", "stream_id", "signal", "service", "window_start", "window_end", "window_start_offset",
    "window_end_offset", "score", "p_value", "severity", *FIGURE_COLUMNS, "figures", "explanation",
    "evidence", "detector", "config_hash", "seed", "engine_version", "is_drift", "status", "detected_at",
    "incident_id",
)
ANOMALY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AnomalyRecord))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def finite_or(value: float, default: float) -> float:
    """``value`` as a float, or ``default`` when it is NaN or infinite (NOT NULL columns)."""
    value = float(value)
    return value if math.isfinite(value) else default


# One encoder for every row: json.dumps with options builds a new encoder per call (a third of the cost).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str)


def dumps_json(value: Any) -> str:
    """Standard JSON (Postgres rejects NaN/Infinity): non-finite floats become null, odd types strings."""
    try:
        return _ENCODER.encode(value)
    except ValueError:
        return _ENCODER.encode(_finite(value))


def as_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; a naive one is taken to be UTC already."""
    tz = value.tzinfo
    if tz is dt.UTC:
        return value
    if tz is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def figure_value(figures: dict[str, float], name: str) -> float | None:
    value = figures.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def epoch_us(value: dt.datetime) -> int:
    delta = as_utc(value) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value)


def encode_cursor(at: dt.datetime, row_id: str | int) -> str:
    """Opaque keyset cursor: the (time, id) of the last row of a page."""
    raw = json.dumps([epoch_us(at), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, id_type: type) -> tuple[dt.datetime, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at_us, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}: not issued by this API") from exc
    if not isinstance(at_us, int) or not isinstance(row_id, id_type) or isinstance(row_id, bool):
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}: not issued by this API")
    try:
        return from_epoch_us(at_us), row_id
    except OverflowError as exc:
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}: time out of range") from exc


def record_to_plain(rec: AnomalyRecord) -> dict[str, Any]:
    """JSON-ready dict of a record (the spool's line format); inverse of ``record_from_plain``."""
    out = {name: getattr(rec, name) for name in ANOMALY_FIELDS}
    for name in ("window_start", "window_end", "detected_at"):
        out[name] = as_utc(out[name]).isoformat()
    return out


def record_from_plain(data: dict[str, Any]) -> AnomalyRecord:
    values = dict(data)
    for name in ("window_start", "window_end", "detected_at"):
        values[name] = dt.datetime.fromisoformat(values[name])
    return AnomalyRecord(**{k: v for k, v in values.items() if k in ANOMALY_FIELDS})


# --- shared by every backend: parameters, row decoding and keyset pages

def _as_is(value: Any) -> Any:
    return value


def anomaly_values(rec: AnomalyRecord, time: Callable[[dt.datetime], Any] = _as_is,
                   flag: Callable[[bool], Any] = _as_is) -> tuple[Any, ...]:
    """One anomaly's values in ``ANOMALY_WRITE_COLUMNS`` order; ``time``/``flag`` adapt to the backend
    (a tuple, not a dict: bulk inserts encode hundreds of rows per batch)."""
    figures = rec.figures
    return (
        rec.id, rec.stream_id, rec.signal, rec.service, time(rec.window_start), time(rec.window_end),
        rec.window_start_offset, rec.window_end_offset, rec.score, rec.p_value, rec.severity,
        *(figure_value(figures, name) for name in FIGURE_COLUMNS),
        dumps_json(figures), dumps_json(rec.explanation), dumps_json(rec.evidence),
        rec.detector, rec.config_hash, rec.seed, rec.engine_version, flag(rec.is_drift), rec.status,
        time(rec.detected_at), rec.incident_id,
    )


# --- incidents and score buckets

INCIDENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(IncidentRecord))
_INCIDENT_TIMES = ("opened_at", "last_anomalous_at", "resolved_at", "acknowledged_at", "updated_at")


def incident_params(rec: IncidentRecord, time: Callable[[dt.datetime], Any]) -> dict[str, Any]:
    """Named parameters of ``upsert_incidents`` (one row)."""
    def optional(value: dt.datetime | None) -> Any:
        return None if value is None else time(value)

    return {"id": rec.id, "stream_id": rec.stream_id, "seq": rec.seq, "opened_offset": rec.opened_offset,
            "signal": rec.signal, "service": rec.service, "name": rec.name, "profile": rec.profile,
            "status": rec.status, "severity": rec.severity, "opened_at": time(rec.opened_at),
            "last_anomalous_at": time(rec.last_anomalous_at),
            "last_anomalous_offset": rec.last_anomalous_offset,
            "resolved_at": optional(rec.resolved_at), "anomalous_windows": rec.anomalous_windows,
            "min_p_value": finite_or(rec.min_p_value, 0.0), "summary": rec.summary,
            "fields": dumps_json(rec.fields), "evidence": dumps_json(rec.evidence),
            "closed_by": rec.closed_by, "updated_at": time(rec.updated_at)}


def incident_to_plain(rec: IncidentRecord) -> dict[str, Any]:
    """JSON-ready dict of an incident (the spool's line format); inverse of ``incident_from_plain``."""
    out = {name: getattr(rec, name) for name in INCIDENT_FIELDS}
    for name in _INCIDENT_TIMES:
        if out[name] is not None:
            out[name] = as_utc(out[name]).isoformat()
    return out


def incident_from_plain(data: dict[str, Any]) -> IncidentRecord:
    values = {k: v for k, v in data.items() if k in INCIDENT_FIELDS}
    for name in _INCIDENT_TIMES:
        if values.get(name) is not None:
            values[name] = dt.datetime.fromisoformat(values[name])
    if values.get("min_p_value") is None:  # a non-finite p-value went out as null
        values["min_p_value"] = 0.0
    return IncidentRecord(**values)


def score_params(bucket: ScoreBucket, time: Callable[[dt.datetime], Any]) -> dict[str, Any]:
    """Named parameters of ``write_scores`` (one bucket)."""
    return {"stream_id": bucket.stream_id, "bucket_start": time(bucket.bucket_start),
            "windows": bucket.windows, "anomalous": bucket.anomalous,
            "min_p": finite_or(bucket.min_p, 0.0), "max_score": finite_or(bucket.max_score, 0.0)}


def score_to_plain(bucket: ScoreBucket) -> dict[str, Any]:
    return {"stream_id": bucket.stream_id, "bucket_start": as_utc(bucket.bucket_start).isoformat(),
            "windows": bucket.windows, "anomalous": bucket.anomalous, "min_p": _finite(bucket.min_p),
            "max_score": _finite(bucket.max_score)}


def score_from_plain(data: dict[str, Any]) -> ScoreBucket:
    return ScoreBucket(stream_id=data["stream_id"],
                       bucket_start=dt.datetime.fromisoformat(data["bucket_start"]),
                       windows=int(data["windows"]), anomalous=int(data["anomalous"]),
                       min_p=float(data["min_p"]) if data["min_p"] is not None else 1.0,
                       max_score=float(data["max_score"]) if data["max_score"] is not None else 0.0)


def encode_incident_cursor(rec: IncidentRecord) -> str:
    """Opaque keyset cursor of the incident list: (closed, opened_at, id) of a page's last row."""
    raw = json.dumps(["i", 0 if rec.is_open else 1, epoch_us(rec.opened_at), rec.id],
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_incident_cursor(cursor: str) -> tuple[int, dt.datetime, str]:
    bad = InvalidCursorError(f"invalid cursor {cursor[:40]!r}: not issued by this API")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, closed, at_us, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise bad from exc
    if tag != "i" or closed not in (0, 1) or isinstance(closed, bool) or not isinstance(at_us, int) \
            or isinstance(at_us, bool) or not isinstance(row_id, str):
        raise bad
    try:
        return closed, from_epoch_us(at_us), row_id
    except OverflowError as exc:
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}: time out of range") from exc


def incident_page(rows: Sequence[Row], limit: int, decoder: RowDecoder) -> IncidentPage:
    items = [decoder.incident(r) for r in rows[:limit]]
    return IncidentPage(items, encode_incident_cursor(items[-1]) if len(rows) > limit else None)


def stream_params(info: StreamInfo, time: Callable[[dt.datetime], Any]) -> dict[str, Any]:
    """Named parameters of ``upsert_stream``."""
    return {"stream_id": info.stream_id, "signal": info.signal, "service": info.service, "name": info.name,
            "state": info.state, "profile": info.profile, "settings": dumps_json(info.settings),
            "events_seen": info.events_seen, "updated_at": time(info.updated_at)}


def api_key_params(key: ApiKey, time: Callable[[dt.datetime], Any]) -> dict[str, Any]:
    """Named parameters of ``create_api_key`` / ``update_api_key``."""
    def optional(value: dt.datetime | None) -> Any:
        return None if value is None else time(value)

    return {"key_id": key.key_id, "name": key.name, "role": key.role, "secret_hash": key.secret_hash,
            "created_at": time(key.created_at), "revoked_at": optional(key.revoked_at),
            "rotated_at": optional(key.rotated_at), "last_used_at": optional(key.last_used_at)}


def audit_params(entry: AuditEntry, time: Callable[[dt.datetime], Any]) -> dict[str, Any]:
    """Named parameters of ``append_audit``."""
    return {"actor": entry.actor, "action": entry.action, "target": entry.target,
            "before": None if entry.before is None else dumps_json(entry.before),
            "after": None if entry.after is None else dumps_json(entry.after), "at": time(entry.at)}


class Row(Protocol):
    """A result row addressed by column name (psycopg's dict row, ``sqlite3.Row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class RowDecoder:
    """Rows to records; only how a backend returns times and JSON columns differs."""

    time: Callable[[Any], dt.datetime]
    json: Callable[[Any], Any]

    def _optional_time(self, value: Any) -> dt.datetime | None:
        return None if value is None else self.time(value)

    def _optional_json(self, value: Any) -> Any:
        return None if value is None else self.json(value)

    def anomaly(self, row: Row) -> AnomalyRecord:
        return AnomalyRecord(
            id=row["id"], stream_id=row["stream_id"], signal=row["signal"], service=row["service"],
            window_start_offset=row["window_start_offset"], window_end_offset=row["window_end_offset"],
            window_start=self.time(row["window_start"]), window_end=self.time(row["window_end"]),
            score=row["score"], p_value=row["p_value"], severity=row["severity"],
            figures=self.json(row["figures"]), explanation=self.json(row["explanation"]),
            evidence=self.json(row["evidence"]), detector=row["detector"], config_hash=row["config_hash"],
            seed=row["seed"], engine_version=row["engine_version"], is_drift=bool(row["is_drift"]),
            status=row["status"], detected_at=self.time(row["detected_at"]), incident_id=row["incident_id"],
        )

    def incident(self, row: Row) -> IncidentRecord:
        return IncidentRecord(
            id=row["id"], stream_id=row["stream_id"], seq=row["seq"], opened_offset=row["opened_offset"],
            signal=row["signal"], service=row["service"], name=row["name"], profile=row["profile"],
            status=row["status"], severity=row["severity"], opened_at=self.time(row["opened_at"]),
            last_anomalous_at=self.time(row["last_anomalous_at"]),
            last_anomalous_offset=row["last_anomalous_offset"],
            resolved_at=self._optional_time(row["resolved_at"]), anomalous_windows=row["anomalous_windows"],
            min_p_value=row["min_p_value"] if row["min_p_value"] is not None else 0.0,
            summary=row["summary"], fields=self.json(row["fields"]), evidence=self.json(row["evidence"]),
            acknowledged_by=row["acknowledged_by"],
            acknowledged_at=self._optional_time(row["acknowledged_at"]),
            closed_by=row["closed_by"], pending_action=row["pending_action"],
            updated_at=self.time(row["updated_at"]))

    def score(self, row: Row) -> ScoreBucket:
        return ScoreBucket(stream_id=row["stream_id"], bucket_start=self.time(row["bucket_start"]),
                           windows=row["windows"], anomalous=row["anomalous"],
                           min_p=row["min_p"] if row["min_p"] is not None else 1.0,
                           max_score=row["max_score"] if row["max_score"] is not None else 0.0)

    def stream(self, row: Row) -> StreamInfo:
        return StreamInfo(
            stream_id=row["stream_id"], signal=row["signal"], service=row["service"], name=row["name"],
            state=row["state"], profile=row["profile"], settings=self.json(row["settings"]),
            events_seen=row["events_seen"], updated_at=self.time(row["updated_at"]))

    def api_key(self, row: Row) -> ApiKey:
        return ApiKey(
            key_id=row["key_id"], name=row["name"], role=row["role"], secret_hash=row["secret_hash"],
            created_at=self.time(row["created_at"]), revoked_at=self._optional_time(row["revoked_at"]),
            rotated_at=self._optional_time(row["rotated_at"]),
            last_used_at=self._optional_time(row["last_used_at"]))

    def audit(self, row: Row) -> AuditEntry:
        return AuditEntry(
            id=row["id"], actor=row["actor"], action=row["action"], target=row["target"],
            before=self._optional_json(row["before"]), after=self._optional_json(row["after"]),
            at=self.time(row["at"]))


def check_limit(limit: int) -> None:
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")


def anomaly_page(rows: Sequence[Row], limit: int, decoder: RowDecoder) -> Page:
    """A page from ``limit + 1`` fetched rows: the extra row only says there is a next page."""
    items = [decoder.anomaly(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(items[-1].detected_at, items[-1].id)
    return Page(items, next_cursor)


def audit_page(rows: Sequence[Row], limit: int, decoder: RowDecoder) -> tuple[list[AuditEntry], str | None]:
    """Entries and next cursor from ``limit + 1`` fetched rows."""
    entries = [decoder.audit(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(entries[-1].at, int(entries[-1].id or 0))
    return entries, next_cursor
