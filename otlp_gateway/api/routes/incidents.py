"""Incidents: the list (open first, then newest), one with its fields, evidence and score series, and the
operator's actions: acknowledge, resolve, accept, false-positive (``operator`` or ``admin``; audited with
before and after; 409 when the action does not apply to the incident's status).

A closing action is recorded in the store first (so the answer and every replica see it at once), then
given to the stream's live detector (which adopts the change on ``accept`` and learns the events on
``false-positive``); a stream that is not live takes it when it next loads.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request

from otlp_gateway.incidents.records import audit_target
from otlp_gateway.store.base import AnomalyStore, IncidentAction, IncidentFilter, IncidentRecord

from ..audit import incident_view, record_change
from ..auth import CurrentPrincipal, Principal, operator_action
from ..errors import ApiError, check_time_range, cursor_errors, error_responses
from ..schemas import (
    AuditOut,
    AuditPage,
    IncidentActionIn,
    IncidentDetail,
    IncidentOut,
    IncidentPage,
    IncidentStatus,
    Severity,
    Signal,
    Timestamp,
)
from .streams import score_series

router = APIRouter(prefix="/incidents", tags=["incidents"])
IncidentId = Annotated[str, Path(min_length=1, max_length=128, description="The incident id")]
SERIES_MARGIN = dt.timedelta(minutes=30)
ActionIn = Annotated[IncidentActionIn | None, Body(description="optional: a note for the audit log")]


def incident_url(request: Request, incident_id: str) -> str:
    """The incident's UI page: under ``api.public_url``, else under the URL the client used."""
    base = request.app.state.ctx.config.api.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/incidents/{incident_id}"


def _out(request: Request, rec: IncidentRecord) -> IncidentOut:
    return IncidentOut.from_record(rec, incident_url(request, rec.id))


@router.get("", response_model=IncidentPage, responses=error_responses(400),
            summary="Incidents: open ones first, then the most recently opened; follow next_cursor for more")
async def list_incidents(
    request: Request,
    _: CurrentPrincipal,
    status: IncidentStatus | None = None,
    service: Annotated[str | None, Query(max_length=256)] = None,
    signal: Signal | None = None,
    severity: Severity | None = None,
    since: Annotated[Timestamp | None, Query(description="opened at or after (RFC 3339)")] = None,
    until: Annotated[Timestamp | None, Query(description="opened before (RFC 3339)")] = None,
    stream_id: Annotated[str | None, Query(max_length=512, description="exact stream id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> IncidentPage:
    check_time_range(since, until)
    flt = IncidentFilter(status=status, service=service, signal=signal, severity=severity,
                         stream_id=stream_id, since=since, until=until)
    with cursor_errors():
        page = await request.app.state.ctx.store.query_incidents(flt, limit, cursor)
    return IncidentPage(items=[_out(request, r) for r in page.items], next_cursor=page.next_cursor)


async def _load(request: Request, incident_id: str) -> IncidentRecord:
    rec = await request.app.state.ctx.store.get_incident(incident_id)
    if rec is None:
        raise ApiError(404, "not_found", f"no incident with id {incident_id!r}")
    return rec


@router.get("/{incident_id}", response_model=IncidentDetail, responses=error_responses(404),
            summary="One incident: the fields that changed, the blamed events, the score series around it")
async def get_incident(request: Request, _: CurrentPrincipal, incident_id: IncidentId) -> IncidentDetail:
    rec = await _load(request, incident_id)
    end = rec.resolved_at or rec.last_anomalous_at
    info = await request.app.state.ctx.streams.get_stream(rec.stream_id)
    series = await score_series(request, rec.stream_id, rec.opened_at - SERIES_MARGIN,
                                max(end, rec.opened_at) + SERIES_MARGIN, info, rec.profile)
    return IncidentDetail.build(rec, incident_url(request, rec.id), series)


@router.get("/{incident_id}/audit", response_model=AuditPage, responses=error_responses(400, 404),
            summary="The incident's audit trail, newest first: who acknowledged or closed it, when, with "
                    "their notes (any role; the whole log is /v1/audit, admin only)")
async def incident_audit(
    request: Request,
    _: CurrentPrincipal,
    incident_id: IncidentId,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AuditPage:
    rec = await _load(request, incident_id)
    with cursor_errors():
        entries, next_cursor = await request.app.state.ctx.store.query_audit(
            None, None, limit, cursor, target=audit_target(rec.id))
    return AuditPage(items=[AuditOut.from_entry(e) for e in entries], next_cursor=next_cursor)


async def close_time(store: AnomalyStore, rec: IncidentRecord) -> dt.datetime:
    """An operator's close in the incident's event time: the stream's newest scored events (its newest score
    bucket), never before its last anomalous window. Every time of an incident is event time, so its
    duration stays event time when a person closes it, however far the stream's clock is from the wall
    clock (a stream replayed from last week would otherwise show an incident lasting a week); when the
    person acted is the audit entry's time and ``updated_at`` (wall clock)."""
    latest = await store.latest_score(rec.stream_id)
    return rec.last_anomalous_at if latest is None else max(rec.last_anomalous_at, latest.bucket_start)


async def _act(request: Request, who: Principal, incident_id: str, action: IncidentAction,
               body: IncidentActionIn | None) -> IncidentOut:
    ctx = request.app.state.ctx
    before = await _load(request, incident_id)
    verb = action.replace("_", " ")
    if not before.is_open:
        raise ApiError(409, "conflict", f"incident {incident_id} is {before.status.replace('_', ' ')}: "
                                        f"{verb} applies to open incidents only")
    closing = action != "acknowledge"
    closed_at = await close_time(ctx.store, before) if closing else None
    after = await ctx.store.act_on_incident(incident_id, action, who.actor, dt.datetime.now(dt.UTC),
                                            pending=closing, closed_at=closed_at)
    if after is None:  # closed between the two calls
        raise ApiError(409, "conflict", f"incident {incident_id} closed meanwhile: {verb} no longer applies")
    if ctx.incidents is not None:
        ctx.incidents.operator_acted(after, action, who.actor)
    detector: str | None = None
    if closing:
        detector = await ctx.streams.incident_action(after.stream_id, after.seq, action, actor=who.actor,
                                                     incident_id=incident_id)
        if detector != "pending":
            await ctx.store.clear_pending_action(incident_id)
            after.pending_action = None
    after_view = incident_view(after)
    if detector is not None:
        after_view["detector"] = detector
    if body is not None and body.note:
        after_view["note"] = body.note
    await record_change(ctx.store, who, f"incident.{action}", audit_target(incident_id),
                        incident_view(before), after_view)
    return _out(request, after)


_ACTION_DOC = error_responses(404, 409)


@router.post("/{incident_id}/acknowledge", response_model=IncidentOut, responses=_ACTION_DOC,
             summary="Say someone is on it; the incident stays open (operator or admin)")
@operator_action
async def acknowledge(request: Request, who: CurrentPrincipal, incident_id: IncidentId,
                      body: ActionIn = None) -> IncidentOut:
    return await _act(request, who, incident_id, "acknowledge", body)


@router.post("/{incident_id}/resolve", response_model=IncidentOut, responses=_ACTION_DOC,
             summary="Close an open incident as resolved (operator or admin)")
@operator_action
async def resolve(request: Request, who: CurrentPrincipal, incident_id: IncidentId,
                  body: ActionIn = None) -> IncidentOut:
    return await _act(request, who, incident_id, "resolve", body)


@router.post("/{incident_id}/accept", response_model=IncidentOut, responses=_ACTION_DOC,
             summary="Accept the change as the new normal: the baseline adopts it (operator or admin)")
@operator_action
async def accept(request: Request, who: CurrentPrincipal, incident_id: IncidentId,
                 body: ActionIn = None) -> IncidentOut:
    return await _act(request, who, incident_id, "accept", body)


@router.post("/{incident_id}/false-positive", response_model=IncidentOut, responses=_ACTION_DOC,
             summary="Close as a false positive: its events join the baseline (operator or admin)")
@operator_action
async def false_positive(request: Request, who: CurrentPrincipal, incident_id: IncidentId,
                         body: ActionIn = None) -> IncidentOut:
    return await _act(request, who, incident_id, "false_positive", body)
