"""The anomaly store contract: Postgres in production, SQLite embedded; one ``SqlStore`` implements it over
either backend's connector."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Severity = Literal["low", "medium", "high", "critical"]
AnomalyStatus = Literal["open", "acknowledged", "confirmed", "false_positive", "dismissed"]
StreamState = Literal["warming", "active", "drifted", "evicted"]


def anomaly_id(stream_id: str, window_start_offset: int) -> str:
    """Deterministic id: the same stream and window always give the same id (idempotent writes)."""
    return hashlib.sha256(f"{stream_id}\x00{window_start_offset}".encode()).hexdigest()[:32]


@dataclass(slots=True)
class AnomalyRecord:
    stream_id: str
    signal: str
    service: str
    window_start_offset: int
    """Index of the first event of the window in the stream (the idempotency key with ``stream_id``)."""
    window_end_offset: int
    window_start: dt.datetime
    window_end: dt.datetime
    score: float
    p_value: float
    severity: Severity
    figures: dict[str, float]
    """Every figure the detector reported (novelty bits per byte/event, NCD, ratios, entropies...)."""
    explanation: dict[str, Any]
    evidence: list[dict[str, str]]
    """Blamed events: ``{"trace_id": hex, "span_id": hex}`` (logs may carry only what they have)."""
    detector: str
    config_hash: str
    seed: int
    engine_version: str
    is_drift: bool = False
    status: AnomalyStatus = "open"
    detected_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = anomaly_id(self.stream_id, self.window_start_offset)


@dataclass(slots=True)
class AnomalyFilter:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    stream_id: str | None = None
    service: str | None = None
    signal: str | None = None
    severity: Severity | None = None
    status: AnomalyStatus | None = None


@dataclass(slots=True)
class Page:
    items: list[AnomalyRecord]
    next_cursor: str | None


@dataclass(slots=True)
class StreamInfo:
    stream_id: str
    signal: str
    service: str
    name: str
    state: StreamState
    profile: str
    settings: dict[str, Any]
    """Per-stream overrides (baseline/window/hop/false_alarm_target/enabled) set through the API."""
    events_seen: int
    updated_at: dt.datetime


@dataclass(slots=True)
class StreamPage:
    items: list[StreamInfo]
    next_after: str | None
    """Pass as ``after`` for the next page; ``None`` on the last page."""


@dataclass(slots=True)
class PruneResult:
    streams: int
    """Stream records deleted."""
    snapshots: int
    """Detector snapshots deleted."""


class AnomalyStore(Protocol):
    backend: str
    """``postgres`` or ``sqlite`` (a metric label; the dialect of its queries)."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def migrate(self) -> list[str]:
        """Apply pending migrations in order; return the names applied (empty when up to date)."""
        ...
    async def ping(self) -> float:
        """A real round trip; returns seconds taken; raises on failure."""
        ...
    async def write_anomalies(self, rows: list[AnomalyRecord]) -> int:
        """Insert in one batch; a row whose (stream_id, window_start_offset) exists is skipped."""
        ...
    async def query_anomalies(self, flt: AnomalyFilter, limit: int, cursor: str | None) -> Page: ...
    async def get_anomaly(self, anomaly_id: str) -> AnomalyRecord | None: ...
    async def set_anomaly_status(self, anomaly_id: str, status: AnomalyStatus) -> AnomalyRecord | None: ...
    async def upsert_stream(self, info: StreamInfo) -> None: ...
    async def list_streams(self, after: str | None = None, limit: int = 500,
                           state: StreamState | None = None) -> StreamPage:
        """Streams ordered by id, at most ``limit``, starting after the id ``after`` (keyset paging), only
        those in ``state`` when given."""
        ...
    async def get_stream(self, stream_id: str) -> StreamInfo | None: ...
    async def save_state(self, stream_id: str, snapshot: bytes, at: dt.datetime | None = None) -> None:
        """Keep the stream's detector snapshot (``at``: when it was taken, default now)."""
        ...
    async def load_state(self, stream_id: str) -> bytes | None: ...
    async def prune_unseen(self, older_than: dt.datetime) -> PruneResult:
        """Delete stream records (except those with API settings) and detector snapshots last updated
        before ``older_than``, in small batches, and give the space back to the filesystem."""
        ...


ApiRole = Literal["admin", "read"]


@dataclass(slots=True)
class ApiKey:
    key_id: str
    """Public identifier, the part of the presented key before the dot (``dlk_<key_id>.<secret>``)."""
    name: str
    role: ApiRole
    secret_hash: str
    """Memory-hard hash (argon2id) of the secret part; the secret itself is never stored."""
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    rotated_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None


@dataclass(slots=True)
class AuditEntry:
    actor: str
    """``key:<key_id>``, ``jwt:<subject>`` or ``cli``."""
    action: str
    """For example ``api_key.create``, ``anomaly.feedback``, ``stream.update``."""
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    id: int | None = None


class ApiKeyStore(Protocol):
    """API keys and the audit log live in the same database as anomalies (same store object)."""

    async def create_api_key(self, key: ApiKey) -> None: ...
    async def get_api_key(self, key_id: str) -> ApiKey | None: ...
    async def list_api_keys(self) -> list[ApiKey]: ...
    async def update_api_key(self, key: ApiKey) -> None:
        """Replace the stored row with ``key`` (rotate: new secret_hash + rotated_at; revoke: revoked_at)."""
        ...
    async def touch_api_key(self, key_id: str, at: dt.datetime) -> None: ...
    async def append_audit(self, entry: AuditEntry) -> int: ...
    async def query_audit(self, since: dt.datetime | None, actor: str | None, limit: int,
                          cursor: str | None) -> tuple[list[AuditEntry], str | None]: ...


async def all_streams(store: AnomalyStore, page_size: int = 1000) -> list[StreamInfo]:
    """Every stream, page by page (for callers that still need the whole list; an API should page)."""
    streams: list[StreamInfo] = []
    after: str | None = None
    while True:
        page = await store.list_streams(after, page_size)
        streams.extend(page.items)
        if page.next_after is None:
            return streams
        after = page.next_after
