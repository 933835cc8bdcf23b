"""Request and response bodies of the REST API (the OpenAPI document is generated from these)."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from detectors.profiles import Profile
from otlp_gateway.incidents.records import duration_seconds
from otlp_gateway.store.base import AnomalyRecord, ApiKey, AuditEntry, IncidentRecord, ScoreBucket, StreamInfo
from otlp_gateway.streams.settings import ProfileName, StreamSettings

Severity = Literal["low", "medium", "high", "critical"]
AnomalyStatus = Literal["open", "acknowledged", "confirmed", "false_positive", "dismissed"]
Verdict = Literal["confirmed", "false_positive", "dismissed"]
Signal = Literal["traces", "metrics", "logs"]
StreamState = Literal["warming", "active", "drifted", "evicted"]
Role = Literal["admin", "operator", "read"]
IncidentStatus = Literal["open", "resolved", "accepted", "false_positive"]


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339_only(value: Any) -> Any:
    """Query timestamps are RFC 3339 with an offset, as documented; pydantic alone would also take
    unix numbers and bare dates, which the OpenAPI document does not promise."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 timestamp with offset, e.g. 2026-11-01T12:00:00Z")
    return value


Timestamp = Annotated[dt.datetime, BeforeValidator(_rfc3339_only)]


def finite(value: float | None) -> float | None:
    """JSON has no NaN/inf: report them as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- anomalies

def explanation_sentence(rec: AnomalyRecord) -> str:
    for key in ("sentence", "summary", "text"):
        text = rec.explanation.get(key)
        if isinstance(text, str) and text:
            return text
    score = finite(rec.score)
    p_value = finite(rec.p_value)
    score_text = f"score {score:.3g}" if score is not None else "score n/a"
    p_text = f"p={p_value:.2g}" if p_value is not None else "p=n/a"
    kind = "drift" if rec.is_drift else "anomaly"
    return f"{rec.severity} {kind} in {rec.signal} stream {rec.stream_id} ({score_text}, {p_text})"


class AnomalySummary(_Out):
    id: str
    stream_id: str
    signal: str
    service: str
    severity: Severity
    status: AnomalyStatus
    score: float | None
    p_value: float | None
    is_drift: bool
    window_start: dt.datetime
    window_end: dt.datetime
    window_start_offset: int
    window_end_offset: int
    detected_at: dt.datetime
    detector: str
    summary: str
    """One sentence explaining why the window was flagged."""
    figures: dict[str, float | None]

    @classmethod
    def from_record(cls, rec: AnomalyRecord) -> AnomalySummary:
        return cls(**_summary_fields(rec))


def _summary_fields(rec: AnomalyRecord) -> dict[str, Any]:
    return dict(id=rec.id, stream_id=rec.stream_id, signal=rec.signal, service=rec.service,
                severity=rec.severity, status=rec.status, score=finite(rec.score),
                p_value=finite(rec.p_value), is_drift=rec.is_drift, window_start=rec.window_start,
                window_end=rec.window_end, window_start_offset=rec.window_start_offset,
                window_end_offset=rec.window_end_offset, detected_at=rec.detected_at,
                detector=rec.detector, summary=explanation_sentence(rec),
                figures={str(k): finite(v) for k, v in rec.figures.items()})


class AnomalyDetail(AnomalySummary):
    explanation: dict[str, Any]
    evidence: list[dict[str, str]]
    """The blamed events (trace/span ids; logs may carry only what they have)."""
    config_hash: str
    seed: int
    engine_version: str

    @classmethod
    def from_record(cls, rec: AnomalyRecord) -> AnomalyDetail:
        return cls(**_summary_fields(rec), explanation=json_safe(rec.explanation),
                   evidence=[{str(k): str(v) for k, v in e.items()} for e in rec.evidence],
                   config_hash=rec.config_hash, seed=rec.seed, engine_version=rec.engine_version)


class AnomalyPage(_Out):
    items: list[AnomalySummary]
    next_cursor: str | None
    """Pass as ``cursor`` to get the next page; null on the last page."""


class FeedbackIn(_In):
    verdict: Verdict
    comment: str | None = Field(None, max_length=2000)


# --- streams

class Warmup(_Out):
    events: int
    """Events the stream's detector has learned from (equal to ``needed`` once it is warm)."""
    needed: int
    """Events it needs before it scores: the baseline, then the windows that calibrate its p-values."""


class EffectiveProfile(_Out):
    baseline: int
    window: int
    hop: int
    false_alarm_target: float


class StreamOut(_Out):
    stream_id: str
    signal: str
    service: str
    name: str
    state: StreamState
    profile: str
    settings: dict[str, Any]
    """Settings changed through the API (profile, baseline, window, hop, false_alarm_target, enabled); they
    win over the configuration's per-stream overrides."""
    effective: EffectiveProfile | None
    """The profile the detector runs with: the configuration's layers and the API's (null if they
    contradict each other)."""
    events_seen: int
    updated_at: dt.datetime
    warmup: Warmup
    open_incident_id: str | None
    """The stream's open incident, if it has one."""

    @classmethod
    def from_info(cls, info: StreamInfo, effective_profile: Profile | None, warmup: tuple[int, int],
                  open_incident_id: str | None) -> StreamOut:
        effective = None
        if effective_profile is not None:
            effective = EffectiveProfile(baseline=effective_profile.baseline, window=effective_profile.window,
                                         hop=effective_profile.hop,
                                         false_alarm_target=effective_profile.false_alarm_target)
        return cls(stream_id=info.stream_id, signal=info.signal, service=info.service, name=info.name,
                   state=info.state, profile=info.profile, settings=json_safe(info.settings),
                   effective=effective, events_seen=info.events_seen, updated_at=info.updated_at,
                   warmup=Warmup(events=warmup[0], needed=warmup[1]), open_incident_id=open_incident_id)


class StreamList(_Out):
    items: list[StreamOut]
    next_cursor: str | None
    """Pass as ``cursor`` to get the next page; null on the last page."""


class ServiceList(_Out):
    items: list[str]
    """The services, in code-point order."""
    truncated: bool
    """More services exist than ``limit``."""


class StreamPatch(StreamSettings):
    """Only the fields present change; ``null`` on a numeric field clears the API's value (the stream then
    runs with the configured one). The fields and their bounds are those of ``StreamSettings``, the type of
    the configuration's per-stream overrides."""

    model_config = ConfigDict(extra="forbid", frozen=False, json_schema_extra={"minProperties": 1})

    profile: ProfileName | SkipJsonSchema[None] = None
    enabled: bool | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _not_empty(self) -> StreamPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give at least one of "
                             "profile, baseline, window, hop, false_alarm_target, enabled")
        if "profile" in self.model_fields_set and self.profile is None:
            raise ValueError("profile cannot be null")
        if "enabled" in self.model_fields_set and self.enabled is None:
            raise ValueError("enabled cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set)


# --- incidents

class IncidentOut(_Out):
    id: str
    stream_id: str
    signal: str
    service: str
    name: str
    status: IncidentStatus
    severity: Severity
    """The peak severity so far."""
    opened_at: dt.datetime
    """Event time of the first event of the window that opened it (RFC 3339, UTC)."""
    last_anomalous_at: dt.datetime
    resolved_at: dt.datetime | None
    """When it closed (resolved, accepted or marked a false positive); null while open."""
    duration_seconds: float
    """Event time from opening to its close, or to its last anomalous window while open."""
    anomalous_windows: int
    min_p_value: float | None
    summary: str
    """One sentence saying what changed, in plain words."""
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    url: str
    """The incident's page in the web UI."""

    @classmethod
    def from_record(cls, rec: IncidentRecord, url: str) -> IncidentOut:
        return cls(**_incident_fields(rec, url))


def _incident_fields(rec: IncidentRecord, url: str) -> dict[str, Any]:
    return dict(id=rec.id, stream_id=rec.stream_id, signal=rec.signal, service=rec.service, name=rec.name,
                status=rec.status, severity=rec.severity, opened_at=rec.opened_at,
                last_anomalous_at=rec.last_anomalous_at, resolved_at=rec.resolved_at,
                duration_seconds=duration_seconds(rec), anomalous_windows=rec.anomalous_windows,
                min_p_value=finite(rec.min_p_value), summary=rec.summary, acknowledged_by=rec.acknowledged_by,
                acknowledged_at=rec.acknowledged_at, url=url)


class FieldChangeOut(_Out):
    """One row of the field explanation."""

    field: str
    """``http.response.status_code``, ``status``, ``duration``, ``log.template``, ``severity``..."""
    change: str
    """new_key, new_value, rare_value, share, shift, new_template or band."""
    before: str
    now: str
    unusual: str
    """Why it is unusual, e.g. ``never seen in 400 reference events``."""
    bits: float | None
    """What the field cost against the reference (the engine's detail)."""
    example: str | None
    """One real masked example (a log line, a span) where meaningful."""


class EvidenceOut(_Out):
    """One blamed event."""

    trace_id: str | None
    span_id: str | None
    time_unix_nano: str | None
    """Event time in unix nanoseconds, as a string (JSON numbers cannot hold it exactly)."""
    text: str


class ScorePoint(_Out):
    t: dt.datetime
    """Start of the bucket (event time)."""
    min_p: float | None
    """The lowest p-value of the bucket's windows."""
    max_score: float | None
    windows: int
    anomalous: int


class ScoreSeriesOut(_Out):
    bucket_seconds: int
    threshold_p: float | None
    """The stream's false-alarm target per window: windows below it are anomalous."""
    points: list[ScorePoint]
    around_incident_id: str | None = None
    """Set when the window asked for held no bucket and ``fallback=latest_incident`` answered the hour of
    this incident (the stream's most recently opened) instead."""

    @classmethod
    def from_buckets(cls, buckets: list[ScoreBucket], bucket_seconds: int,
                     threshold_p: float | None) -> ScoreSeriesOut:
        return cls(bucket_seconds=bucket_seconds, threshold_p=threshold_p,
                   points=[ScorePoint(t=b.bucket_start, min_p=finite(b.min_p), max_score=finite(b.max_score),
                                      windows=b.windows, anomalous=b.anomalous) for b in buckets])


class IncidentDetail(IncidentOut):
    fields: list[FieldChangeOut]
    evidence: list[EvidenceOut]
    series: ScoreSeriesOut
    """The stream's scores from 30 minutes before the incident opened to 30 minutes after it ended."""
    change_point: dt.datetime
    """Where the change began: the first event of the window that opened the incident."""

    @classmethod
    def build(cls, rec: IncidentRecord, url: str, series: ScoreSeriesOut) -> IncidentDetail:
        fields = [FieldChangeOut(field=str(f.get("field", "")), change=str(f.get("change", "")),
                                 before=str(f.get("before", "")), now=str(f.get("now", "")),
                                 unusual=str(f.get("unusual", "")), bits=_float_or_none(f.get("bits")),
                                 example=None if f.get("example") is None else str(f["example"]))
                  for f in rec.fields if isinstance(f, dict)]
        evidence = [EvidenceOut(trace_id=_str_or_none(e.get("trace_id")),
                                span_id=_str_or_none(e.get("span_id")),
                                time_unix_nano=_str_or_none(e.get("time_unix_nano")),
                                text=str(e.get("text", "")))
                    for e in rec.evidence if isinstance(e, dict)]
        return cls(**_incident_fields(rec, url), fields=fields, evidence=evidence, series=series,
                   change_point=rec.opened_at)


def _float_or_none(value: Any) -> float | None:
    try:
        return finite(float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class IncidentPage(_Out):
    items: list[IncidentOut]
    next_cursor: str | None
    """Pass as ``cursor`` to get the next page; null on the last page."""


class IncidentActionIn(_In):
    note: str | None = Field(None, max_length=2000)
    """Why (kept in the audit log)."""


# --- API keys

class ApiKeyOut(_Out):
    key_id: str
    name: str
    role: Role
    created_at: dt.datetime
    rotated_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @classmethod
    def from_key(cls, key: ApiKey) -> ApiKeyOut:
        return cls(key_id=key.key_id, name=key.name, role=key.role, created_at=key.created_at,
                   rotated_at=key.rotated_at, revoked_at=key.revoked_at, last_used_at=key.last_used_at)


class ApiKeyList(_Out):
    items: list[ApiKeyOut]


class ApiKeyCreate(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w .@:/+-]+$")
    role: Role


class ApiKeyIssued(_Out):
    key: ApiKeyOut
    secret: str
    """The full key ``dlk_<key_id>.<secret>``. Shown only in this response; store it now."""


# --- audit

class AuditOut(_Out):
    id: int | None
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: dt.datetime

    @classmethod
    def from_entry(cls, entry: AuditEntry) -> AuditOut:
        return cls(id=entry.id, actor=entry.actor, action=entry.action, target=entry.target,
                   before=json_safe(entry.before), after=json_safe(entry.after), at=entry.at)


class AuditPage(_Out):
    items: list[AuditOut]
    next_cursor: str | None


# --- health

class HealthOut(_Out):
    status: Literal["ok", "unavailable"]
    phase: Literal["starting", "serving", "draining", "stopped"]


class DbHealthOut(_Out):
    status: Literal["ok", "failing"]
    backend: str
    latency_seconds: float | None = None
    error: str | None = None


class ConfigHealthOut(_Out):
    status: Literal["ok", "invalid"]
    loaded: bool
    valid: bool
    config_hash: str
    """Hash of the resolved configuration without its secrets: equal on replicas configured alike, and
    it reveals nothing about a secret."""
    loaded_at: str
    """When this configuration was loaded (the process start), ISO 8601 UTC."""
    secrets_set: dict[str, bool]
    """Which secrets are configured (never their values)."""
    errors: list[str] = []


class ReadyOut(_Out):
    status: Literal["ready", "not_ready"]
    phase: Literal["starting", "serving", "draining", "stopped"]
    components: dict[str, bool]
    reasons: dict[str, str] = {}
    """Why each component that is not ready is not (for example ingest being refused)."""


# --- debug

class MemoryAllocation(_Out):
    where: str
    size_bytes: int
    count: int


class ObjectTypeCount(_Out):
    type: str
    count: int


class MemoryReport(_Out):
    rss_bytes: int
    heap_bytes: int
    traced_seconds: float
    """How long allocations were traced for this report (0 when tracing was already on)."""
    traced_current_bytes: int
    traced_peak_bytes: int
    top_allocations: list[MemoryAllocation]
    """Live allocations by source line, largest first (only those made while tracing)."""
    object_types: list[ObjectTypeCount]
    """The most numerous live objects tracked by the garbage collector."""
