"""Streams: their state, warm-up and open incident, their score series, and per-stream profile and
threshold changes that apply without a restart.

Stream ids contain slashes (``traces/checkout/GET /cart``): ``/streams/<id>/scores`` is always the score
series route, so a stream whose own id ends in ``/scores`` is read through the list.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.convertors import PathConvertor, register_url_convertor

from detectors.profiles import resolve_profile
from otlp_gateway.store.base import SCORE_BUCKET_SECONDS, IncidentFilter, IncidentRecord, StreamInfo
from otlp_gateway.streams.control import (
    InvalidCursorError,
    InvalidStreamChange,
    StreamControl,
    UnknownStreamError,
)

from ..audit import record_change, stream_view
from ..auth import CurrentPrincipal
from ..errors import ApiError, check_time_range, error_responses
from ..schemas import ScoreSeriesOut, ServiceList, StreamList, StreamOut, StreamPatch, StreamState, Timestamp


class StreamIdConvertor(PathConvertor):
    """A stream id in a path: slashes allowed, but not ending in ``/scores`` (that is the series route; with
    ``:path`` every method of ``/streams/<id>/scores`` would also reach the stream's own routes)."""

    regex = "(?!.*/scores$).+"


register_url_convertor("stream", StreamIdConvertor())
router = APIRouter(prefix="/streams", tags=["streams"])
# Not under /streams: there a path is a stream id.
services_router = APIRouter(prefix="/services", tags=["streams"])
StreamId = Annotated[str, Path(min_length=1, max_length=512, description="The stream id")]
DEFAULT_SERIES_SECONDS = 3600.0
MAX_SERIES_SECONDS = 86_400.0
# An incident's hour, as the stream page's "around the latest incident" shows it: 50 minutes before its last
# anomalous window (or its close) to 10 minutes after.
BEFORE_INCIDENT_END = dt.timedelta(minutes=50)
AFTER_INCIDENT_END = dt.timedelta(minutes=10)
LATEST_INCIDENT_AMONG = 20
"""The stream's incidents the latest is picked from: the first page the stream page lists (open first)."""


def _control(request: Request) -> StreamControl:
    return request.app.state.ctx.streams


async def _outs(control: StreamControl, infos: list[StreamInfo]) -> list[StreamOut]:
    open_ids = await control.open_incident_ids([i.stream_id for i in infos])
    return [StreamOut.from_info(i, control.effective(i), control.warmup(i), open_ids.get(i.stream_id))
            for i in infos]


async def _out(control: StreamControl, info: StreamInfo) -> StreamOut:
    return (await _outs(control, [info]))[0]


def threshold_p(control: StreamControl, info: StreamInfo | None, profile: str) -> float | None:
    """The false-alarm target per window the stream runs with (its profile's when the stream is gone)."""
    effective = control.effective(info) if info is not None else None
    if effective is not None:
        return effective.false_alarm_target
    try:
        return resolve_profile(profile).false_alarm_target
    except ValueError:
        return None


async def score_series(request: Request, stream_id: str, since: dt.datetime, until: dt.datetime,
                       info: StreamInfo | None, profile: str) -> ScoreSeriesOut:
    buckets = await request.app.state.ctx.store.score_series(stream_id, since, until)
    return ScoreSeriesOut.from_buckets(buckets, SCORE_BUCKET_SECONDS,
                                       threshold_p(_control(request), info, profile))


@router.get("", response_model=StreamList, responses=error_responses(400),
            summary="Streams in id order with their state and effective profile; follow next_cursor for more")
async def list_streams(request: Request, _: CurrentPrincipal,
                       state: Annotated[StreamState | None, Query()] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       cursor: Annotated[str | None, Query(max_length=2048)] = None) -> StreamList:
    control = _control(request)
    try:
        page = await control.list_streams(limit=limit, cursor=cursor, state=state)
    except InvalidCursorError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    return StreamList(items=await _outs(control, page.items), next_cursor=page.next_cursor)


@services_router.get("", response_model=ServiceList,
                     summary="The distinct services of the streams, in code-point order (filter suggestions)")
async def list_services(request: Request, _: CurrentPrincipal,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 1000) -> ServiceList:
    found = await _control(request).services(limit + 1)
    return ServiceList(items=found[:limit], truncated=len(found) > limit)


@router.get("/{stream_id:path}/scores", response_model=ScoreSeriesOut, responses=error_responses(400, 404),
            summary="The stream's score series: its windows in 10 s buckets of event time")
async def get_scores(request: Request, _: CurrentPrincipal, stream_id: StreamId,
                     since: Annotated[Timestamp | None, Query(
                         description="buckets starting at or after (RFC 3339); default until - 1 h")] = None,
                     until: Annotated[Timestamp | None, Query(
                         description="buckets starting before (RFC 3339); default now")] = None,
                     fallback: Annotated[Literal["latest_incident"] | None, Query(
                         description="latest_incident: when [since, until) holds no bucket, answer the hour "
                                     "of the stream's most recently opened incident instead (50 minutes "
                                     "before its last anomalous window or close to 10 after; "
                                     "around_incident_id says so)")] = None,
                     ) -> ScoreSeriesOut:
    control = _control(request)
    info = await control.get_stream(stream_id)
    if info is None:
        raise ApiError(404, "not_found", f"no stream with id {stream_id!r}")
    end = until or dt.datetime.now(dt.UTC)
    start = since or end - dt.timedelta(seconds=DEFAULT_SERIES_SECONDS)
    check_time_range(start, end)
    if (end - start).total_seconds() > MAX_SERIES_SECONDS:
        raise ApiError(400, "bad_request", f"ask for at most {MAX_SERIES_SECONDS / 3600:.0f} hours at once")
    series = await score_series(request, stream_id, start, end, info, info.profile)
    if fallback is None or series.points:
        return series
    # A quiet stream, or one whose events carry older times: its latest incident's hour, in the same answer
    # (the stream page would otherwise ask again once its incidents are in: a third round trip).
    latest = await latest_incident(request, stream_id)
    if latest is None:
        return series
    close = latest.resolved_at or latest.last_anomalous_at
    around = await score_series(request, stream_id, close - BEFORE_INCIDENT_END, close + AFTER_INCIDENT_END,
                                info, info.profile)
    return around.model_copy(update={"around_incident_id": latest.id})


async def latest_incident(request: Request, stream_id: str) -> IncidentRecord | None:
    """The most recently opened of the stream's first incidents (open ones first, as the page lists them)."""
    page = await request.app.state.ctx.store.query_incidents(IncidentFilter(stream_id=stream_id),
                                                             LATEST_INCIDENT_AMONG, None)
    return max(page.items, key=lambda r: r.opened_at, default=None)


@router.get("/{stream_id:stream}", response_model=StreamOut, responses=error_responses(404),
            summary="One stream")
async def get_stream(request: Request, _: CurrentPrincipal, stream_id: StreamId) -> StreamOut:
    control = _control(request)
    info = await control.get_stream(stream_id)
    if info is None:
        raise ApiError(404, "not_found", f"no stream with id {stream_id!r}")
    return await _out(control, info)


@router.patch("/{stream_id:stream}", response_model=StreamOut, responses=error_responses(404, 409),
              summary="Change a stream's profile, window sizes, false-alarm target or enabled flag (admin)")
async def update_stream(request: Request, who: CurrentPrincipal, stream_id: StreamId,
                        body: StreamPatch) -> StreamOut:
    control = _control(request)
    before = await control.get_stream(stream_id)
    if before is None:
        raise ApiError(404, "not_found", f"no stream with id {stream_id!r}")
    try:
        after = await control.update_stream(stream_id, body.changes())
    except UnknownStreamError:
        raise ApiError(404, "not_found", f"no stream with id {stream_id!r}") from None
    except InvalidStreamChange as exc:  # valid alone, impossible with the stream's current settings
        raise ApiError(409, "conflict", f"body: {exc}") from None
    await record_change(request.app.state.ctx.store, who, "stream.update", f"stream:{stream_id}",
                        stream_view(before), stream_view(after))
    return await _out(control, after)
