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

from otlp_gateway.store.base import AnomalyRecord, ApiKey, AuditEntry, Page, StreamInfo
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
        time(rec.detected_at),
    )


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
            status=row["status"], detected_at=self.time(row["detected_at"]),
        )

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
