"""Anomalies: list with filters and cursor pages, one with its evidence, feedback and acknowledgement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from otlp_gateway.store.base import AnomalyFilter, AnomalyRecord

from ..audit import anomaly_view, record_change
from ..auth import CurrentPrincipal, Principal
from ..errors import ApiError, check_time_range, cursor_errors, error_responses
from ..schemas import (
    AnomalyDetail,
    AnomalyPage,
    AnomalyStatus,
    AnomalySummary,
    FeedbackIn,
    Severity,
    Signal,
    Timestamp,
)

router = APIRouter(prefix="/anomalies", tags=["anomalies"])
AnomalyId = Annotated[str, Path(min_length=1, max_length=128, description="The anomaly id")]


@router.get("", response_model=AnomalyPage, responses=error_responses(400),
            summary="Anomalies, newest first, filtered; follow next_cursor for more")
async def list_anomalies(
    request: Request,
    _: CurrentPrincipal,
    since: Annotated[Timestamp | None, Query(description="detected at or after (RFC 3339)")] = None,
    until: Annotated[Timestamp | None, Query(description="detected before (RFC 3339)")] = None,
    stream: Annotated[str | None, Query(max_length=512, description="exact stream id")] = None,
    service: Annotated[str | None, Query(max_length=256)] = None,
    signal: Signal | None = None,
    severity: Severity | None = None,
    status: AnomalyStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AnomalyPage:
    check_time_range(since, until)
    flt = AnomalyFilter(since=since, until=until, stream_id=stream, service=service, signal=signal,
                        severity=severity, status=status)
    with cursor_errors():
        page = await request.app.state.ctx.store.query_anomalies(flt, limit, cursor)
    return AnomalyPage(items=[AnomalySummary.from_record(r) for r in page.items],
                       next_cursor=page.next_cursor)


async def _load(request: Request, anomaly_id: str) -> AnomalyRecord:
    rec = await request.app.state.ctx.store.get_anomaly(anomaly_id)
    if rec is None:
        raise ApiError(404, "not_found", f"no anomaly with id {anomaly_id!r}")
    return rec


@router.get("/{anomaly_id}", response_model=AnomalyDetail, responses=error_responses(404),
            summary="One anomaly with its figures, explanation and evidence")
async def get_anomaly(request: Request, _: CurrentPrincipal, anomaly_id: AnomalyId) -> AnomalyDetail:
    return AnomalyDetail.from_record(await _load(request, anomaly_id))


async def _set_status(request: Request, who: Principal, anomaly_id: str, status: str, action: str,
                      comment: str | None = None) -> AnomalyDetail:
    store = request.app.state.ctx.store
    before = await _load(request, anomaly_id)
    after = await store.set_anomaly_status(anomaly_id, status)
    if after is None:  # deleted between the two calls
        raise ApiError(404, "not_found", f"no anomaly with id {anomaly_id!r}")
    after_view = anomaly_view(after)
    if comment:
        after_view["comment"] = comment
    await record_change(store, who, action, f"anomaly:{anomaly_id}", anomaly_view(before), after_view)
    return AnomalyDetail.from_record(after)


@router.post("/{anomaly_id}/feedback", response_model=AnomalyDetail, responses=error_responses(404),
             summary="Record a verdict: confirmed, false_positive or dismissed (admin)")
async def feedback(request: Request, who: CurrentPrincipal, anomaly_id: AnomalyId,
                   body: FeedbackIn) -> AnomalyDetail:
    return await _set_status(request, who, anomaly_id, body.verdict, "anomaly.feedback", body.comment)


@router.post("/{anomaly_id}/acknowledge", response_model=AnomalyDetail, responses=error_responses(404),
             summary="Mark an anomaly as seen (admin)")
async def acknowledge(request: Request, who: CurrentPrincipal, anomaly_id: AnomalyId) -> AnomalyDetail:
    return await _set_status(request, who, anomaly_id, "acknowledged", "anomaly.acknowledge")
