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
IncidentStatus = Literal["open", "resolved", "accepted", "false_positive"]
IncidentAction = Literal["acknowledge", "resolve", "accept", "false_positive"]
"""What an operator can do to an incident; the last three close an open one."""
CLOSING_ACTIONS: dict[str, IncidentStatus] = {"resolve": "resolved", "accept": "accepted",
                                              "false_positive": "false_positive"}


def anomaly_id(stream_id: str, window_start_offset: int) -> str:
    """Deterministic id: the same stream and window always give the same id (idempotent writes)."""
    return hashlib.sha256(f"{stream_id}\x00{window_start_offset}".encode()).hexdigest()[:32]


def incident_id(stream_id: str, seq: int, opened_offset: int) -> str:
    """Deterministic id of a stream's incident ``seq`` opened at stream offset ``opened_offset``: a retried or
    replayed update always names the same incident (and a new detector of the stream, whose numbers start
    again at 0, opens incidents at new offsets, so new ids)."""
    digest = hashlib.sha256(f"{stream_id}\x00{seq}\x00{opened_offset}".encode()).hexdigest()
    return f"inc_{digest[:16]}"


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
    incident_id: str | None = None
    """The incident the window belongs to (None: no incident was open)."""

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
    score_buckets: int = 0
    """Buckets of the streams' score series deleted."""


@dataclass(slots=True)
class IncidentRecord:
    """The stored form of one incident (upserted on every update of it, keyed on ``id``)."""

    stream_id: str
    seq: int
    opened_offset: int
    """Stream offset (the stream's ``offset_base`` included) of the first event of the opening window."""
    signal: str
    service: str
    name: str
    profile: str
    """The profile the stream ran with (false-incident rates are per profile)."""
    status: IncidentStatus
    severity: Severity
    """The peak severity."""
    opened_at: dt.datetime
    last_anomalous_at: dt.datetime
    last_anomalous_offset: int
    resolved_at: dt.datetime | None
    """When it closed (resolved, accepted or marked a false positive); None while open."""
    anomalous_windows: int
    min_p_value: float
    summary: str
    fields: list[dict[str, Any]]
    """The field explanation, ranked: ``{"field", "change", "before", "now", "unusual", "bits",
    "example"}``."""
    evidence: list[dict[str, Any]]
    """A bounded sample of blamed events: ``{"trace_id", "span_id", "time_unix_nano", "text"}``."""
    acknowledged_by: str | None = None
    acknowledged_at: dt.datetime | None = None
    closed_by: str | None = None
    """The operator who closed it; None when the detector did."""
    pending_action: str | None = None
    """An operator's closing action the stream's detector has not taken yet."""
    updated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = incident_id(self.stream_id, self.seq, self.opened_offset)

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(slots=True)
class IncidentFilter:
    status: IncidentStatus | None = None
    service: str | None = None
    signal: str | None = None
    severity: Severity | None = None
    stream_id: str | None = None
    since: dt.datetime | None = None
    """Opened at or after."""
    until: dt.datetime | None = None
    """Opened before."""


@dataclass(slots=True)
class IncidentPage:
    items: list[IncidentRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ScoreBucket:
    """A stream's scored windows within ``bucket_start + [0, SCORE_BUCKET_SECONDS)`` of event time."""

    stream_id: str
    bucket_start: dt.datetime
    windows: int
    anomalous: int
    min_p: float
    max_score: float


SCORE_BUCKET_SECONDS = 10


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
    async def stream_services(self, limit: int = 1000) -> list[str]:
        """The distinct services of the stored streams, in code-point order, at most ``limit``."""
        ...
    async def save_state(self, stream_id: str, snapshot: bytes, at: dt.datetime | None = None) -> None:
        """Keep the stream's detector snapshot (``at``: when it was taken, default now)."""
        ...
    async def load_state(self, stream_id: str) -> bytes | None: ...
    async def prune_unseen(self, older_than: dt.datetime) -> PruneResult:
        """Delete stream records (except those with API settings), detector snapshots last updated before
        ``older_than`` and score buckets older than it, in small batches, and give the space back to the
        filesystem."""
        ...
    async def upsert_incidents(self, rows: list[IncidentRecord]) -> int:
        """Insert or update by id in one batch. Idempotent, and only forward: a closed incident never
        changes again, and an update of an open one older than the stored one (fewer anomalous windows)
        is skipped. Operator fields (acknowledged, closed_by, pending_action) are never overwritten."""
        ...
    async def query_incidents(self, flt: IncidentFilter, limit: int, cursor: str | None) -> IncidentPage:
        """Open incidents first, then the most recently opened; keyset paging by ``cursor``."""
        ...
    async def get_incident(self, incident_id: str) -> IncidentRecord | None: ...
    async def act_on_incident(self, incident_id: str, action: IncidentAction, actor: str,
                              at: dt.datetime, pending: bool = False,
                              closed_at: dt.datetime | None = None) -> IncidentRecord | None:
        """Apply an operator's action to an open incident (``None`` when it is not open or unknown).
        A closing action with ``pending`` also records it for the stream's detector to take later.
        ``at``: when the operator acted (wall clock: ``acknowledged_at``, ``updated_at``); ``closed_at``:
        the close in the incident's event time (``resolved_at``; ``at`` when not given)."""
        ...
    async def pending_incident_actions(self, stream_id: str | None = None) -> list[IncidentRecord]:
        """Incidents with an operator's action the detector has not taken (of one stream, or all)."""
        ...
    async def clear_pending_action(self, incident_id: str) -> None: ...
    async def open_incident_ids(self, stream_ids: list[str]) -> dict[str, str]:
        """``stream_id -> id`` of the open incident of each given stream that has one (the newest)."""
        ...
    async def false_incident_counts(self) -> dict[str, tuple[int, int]]:
        """``profile -> (incidents operators marked false positives, events scored)`` over stored streams."""
        ...
    async def write_scores(self, buckets: list[ScoreBucket]) -> int:
        """Upsert buckets in one batch; a bucket's values are cumulative, so a stored bucket with more
        windows is never replaced by one with fewer (a late replay)."""
        ...
    async def latest_score(self, stream_id: str) -> ScoreBucket | None:
        """The stream's newest score bucket (event time): how far its events have been scored."""
        ...
    async def score_series(self, stream_id: str, since: dt.datetime, until: dt.datetime) -> list[ScoreBucket]:
        """The stream's buckets starting in ``[since, until)``, oldest first."""
        ...


ApiRole = Literal["admin", "operator", "read"]
"""admin: everything; operator: read, and act on incidents; read: GET only."""


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
                          cursor: str | None, target: str | None = None,
                          ) -> tuple[list[AuditEntry], str | None]:
        """Newest first; ``target``: only the entries about it (e.g. ``incident:<id>``)."""
        ...


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
