"""Conversions shared by both backends and the spool: JSON, timestamps, cursors, record <-> plain data."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from dataclasses import fields
from typing import Any

from otlp_gateway.store.base import AnomalyRecord
from otlp_gateway.store.errors import InvalidCursorError

FIGURE_COLUMNS: tuple[str, ...] = (
    "novelty_bits_per_byte", "novelty_bits_per_event", "ncd", "compression_ratio_baseline",
    "compression_ratio_window", "entropy_baseline", "entropy_window", "delta_bits",
)


# Column lists shared by both backends (their SQL differs only in placeholders and casts).
ANOMALY_WRITE_COLUMNS: tuple[str, ...] = (
    "id", "stream_id", "signal", "service", "window_start", "window_end", "window_start_offset",
    "window_end_offset", "score", "p_value", "severity", *FIGURE_COLUMNS, "figures", "explanation",
    "evidence", "detector", "config_hash", "seed", "engine_version", "is_drift", "status", "detected_at",
)
ANOMALY_READ_COLUMNS = (
    "id, stream_id, signal, service, window_start_offset, window_end_offset, window_start, window_end, "
    "score, p_value, severity, figures, explanation, evidence, detector, config_hash, seed, engine_version, "
    "is_drift, status, detected_at")
STREAM_COLUMNS = "stream_id, signal, service, name, state, profile, settings, events_seen, updated_at"
KEY_COLUMNS = "key_id, name, role, secret_hash, created_at, revoked_at, rotated_at, last_used_at"
AUDIT_COLUMNS = "id, actor, action, target, before, after, at"
"""Detector figures stored as their own columns (all figures are also kept in the JSON ``figures``)."""

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
